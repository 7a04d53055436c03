"""The run directory, the unit of record (DESIGN.md): its file names, atomic writes, and reading it back.

No other module spells a run-directory file name: writers and readers both go through RunDir.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml
from omegaconf import DictConfig, OmegaConf
from PIL import Image

_UMASK = os.umask(0)
os.umask(_UMASK)


class RunDir:
    """The files of one run directory: config.yaml, summary.json, metrics.csv, images/, checkpoints/,
    failure.json, and each study's own files."""

    def __init__(self, path: Path | str):
        self.path = Path(path)

    @classmethod
    def current(cls) -> RunDir:
        """The run directory of the running Hydra job."""
        from hydra.core.hydra_config import HydraConfig

        return cls(HydraConfig.get().runtime.output_dir)

    # ---- names -----------------------------------------------------------------------------------
    config_file = property(lambda self: self.path / "config.yaml")
    summary_file = property(lambda self: self.path / "summary.json")
    metrics_file = property(lambda self: self.path / "metrics.csv")
    failure_file = property(lambda self: self.path / "failure.json")
    checkpoints = property(lambda self: self.path / "checkpoints")
    last_checkpoint = property(lambda self: self.path / "checkpoints" / "last.ckpt")
    images = property(lambda self: self.path / "images")
    trained_kernels = property(lambda self: self.images / "conv1_kernels.png")  # a training run's first layer
    a_pp_median = property(lambda self: self.images / "a_pp_median.png")  # the median inverted noisy output
    reconstructions = property(lambda self: self.images / "reconstructions.png")  # test images over their D(E(x))

    def figure(self, name: str) -> Path:
        """A study's figure at the top of the run directory (kernels, spectra, noise_histogram, ...)."""
        return self.path / f"{name}.png"

    def figures(self) -> list[Path]:
        """Every figure at the top of the run directory."""
        return sorted(self.path.glob("*.png"))

    def table(self, name: str) -> Path:
        """A study's table at the top of the run directory (spectra, noise)."""
        return self.path / f"{name}.csv"

    def target(self, image: str) -> Path:
        return self.images / f"target_{image}.png"

    def shifted(self, image: str, seed: int) -> Path:
        """a' = a + N(0, shift_std) drawn for this seed."""
        return self.images / f"shifted_{image}_seed{seed}.png"

    def a_g(self, layer: str, image: str, seed: int) -> Path:
        """The generated input of one inversion sample."""
        return self.images / f"a_g_{layer}_{image}_seed{seed}.png"

    def exact(self, precision: str) -> Path:
        """An exact MLP inversion's reconstruction in one precision."""
        return self.images / f"exact_{precision}.png"

    # ---- writers ---------------------------------------------------------------------------------
    def write_config(self, cfg: DictConfig) -> None:
        write_atomic(self.config_file, OmegaConf.to_yaml(cfg, resolve=True).encode())

    def write_summary(self, rows: dict | list[dict]) -> None:
        """One object, or a list with one entry per sample when a run holds several."""
        write_json(self.summary_file, rows[0] if isinstance(rows, list) and len(rows) == 1 else rows)

    def write_metrics(self, rows: list[dict]) -> None:
        write_csv(self.metrics_file, rows)

    def write_failure(self, command: str, error: str, overrides: list[str]) -> None:
        write_json(self.failure_file, dict(command=command, error=error, overrides=overrides))

    def clear_failure(self) -> None:
        """A new attempt in the same directory: an earlier attempt's failure no longer stands."""
        self.failure_file.unlink(missing_ok=True)


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes owner-only files; results are for everyone
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_json(path: Path, obj) -> None:
    """Strict JSON: a non-finite float (a diverged m_g, say) is written as null."""
    write_atomic(path, (json.dumps(_finite(obj), indent=2, allow_nan=False) + "\n").encode())


def _finite(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {key: _finite(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(value) for value in obj]
    return obj


def write_csv(path: Path, rows: list[dict]) -> None:
    buffer = io.StringIO()
    if rows:  # the columns of every row, in order of appearance (later rows may add some)
        writer = csv.DictWriter(buffer, fieldnames=list(dict.fromkeys(key for row in rows for key in row)))
        writer.writeheader()
        writer.writerows(rows)
    write_atomic(path, buffer.getvalue().encode())


def write_png(path: Path, image: torch.Tensor) -> None:
    """A (3, H, W) tensor in [0, 1] (values outside are clipped) as an 8-bit PNG."""
    array = (image.detach().cpu().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    write_atomic(path, buffer.getvalue())


# ---- reading runs back -----------------------------------------------------------------------------
@dataclass
class Run(RunDir):
    """One run directory as recorded: what it was asked (config), what it measured, or how it failed."""

    path: Path
    config: dict = field(default_factory=dict)
    summaries: list[dict] = field(default_factory=list)  # one per (layer, image, seed)
    metrics: list[dict] = field(default_factory=list)  # rows of metrics.csv
    failure: str | None = None  # the error line of a failed job
    overrides: list[str] = field(default_factory=list)

    @property
    def command(self) -> str | None:
        return self.summaries[0].get("command") if self.summaries else None

    @property
    def status(self) -> str:
        return "failed" if self.failure else "done" if self.summaries else "incomplete"


def find_runs(roots: list[Path]) -> list[Run]:
    """Every run directory at or below the roots: one with summary.json, failure.json or .hydra/."""
    found: dict[Path, Run] = {}
    for root in roots:
        if not root.is_dir():
            raise FileNotFoundError(f"not a directory: {root}")
        candidates = [root, *sorted(p for p in root.rglob("*") if p.is_dir() and ".hydra" not in p.parts
                                    and "wandb" not in p.parts and ".submitit" not in p.parts)]
        for path in candidates:
            if path not in found and _is_run(RunDir(path)):
                found[path] = read_run(path)
    return list(found.values())


def _is_run(run: RunDir) -> bool:
    return any(p.exists() for p in (run.summary_file, run.failure_file, run.path / ".hydra" / "config.yaml"))


def read_run(path: Path) -> Run:
    run = Run(Path(path))
    config = run.config_file if run.config_file.is_file() else run.path / ".hydra" / "config.yaml"
    run.config = (yaml.safe_load(config.read_text()) if config.is_file() else None) or {}
    overrides = run.path / ".hydra" / "overrides.yaml"
    if overrides.is_file():
        run.overrides = yaml.safe_load(overrides.read_text()) or []
    if run.summary_file.is_file():
        summary = json.loads(run.summary_file.read_text())
        run.summaries = summary if isinstance(summary, list) else [summary]
    if run.failure_file.is_file():
        failure = json.loads(run.failure_file.read_text())
        run.failure = failure.get("error", "?")
        run.overrides = failure.get("overrides", run.overrides)
    if run.metrics_file.is_file():
        with run.metrics_file.open() as file:
            run.metrics = [_numbers(row) for row in csv.DictReader(file)]
    return run


def _numbers(row: dict) -> dict:
    out = {}
    for key, value in row.items():
        try:
            out[key] = float(value) if key not in ("layer", "image") else value
        except (TypeError, ValueError):
            out[key] = value
    return out
