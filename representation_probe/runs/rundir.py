"""The run directory, the unit of record (DESIGN.md): its file names, atomic writes, and reading it back.

No other module spells a run-directory file name: writers and readers both go through RunDir.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml
from omegaconf import DictConfig, OmegaConf
from PIL import Image

from representation_probe.runs.durable import durable_file


class RunDir:
    """The files of one run directory: config.yaml, summary.json, metrics.csv, images/, checkpoints/,
    failure.json, and each study's own files."""

    def __init__(self, path: Path | str):
        self.path = Path(path)

    # ---- names -----------------------------------------------------------------------------------
    config_file = property(lambda self: self.path / "config.yaml")
    summary_file = property(lambda self: self.path / "summary.json")
    metrics_file = property(lambda self: self.path / "metrics.csv")
    failure_file = property(lambda self: self.path / "failure.json")
    interrupted_file = property(lambda self: self.path / "interrupted.json")  # a signal stopped the last attempt
    provenance_file = property(lambda self: self.path / "provenance.json")  # the command, commit, versions
    checkpoints = property(lambda self: self.path / "checkpoints")
    last_checkpoint = property(lambda self: self.path / "checkpoints" / "last.ckpt")
    skipped_files = property(lambda self: self.path / "skipped_files.txt")  # unreadable data files, one a line
    images = property(lambda self: self.path / "images")
    trained_kernels = property(lambda self: self.images / "conv1_kernels.png")  # a training run's first layer
    a_pp_median = property(lambda self: self.images / "a_pp_median.png")  # the median inverted noisy output
    decoders = property(lambda self: self.path / "decoders.ckpt")  # the best decoders, for reuse
    similarity_file = property(lambda self: self.path / "similarity.npz")  # every layer x layer matrix
    features = property(lambda self: self.path / "features")  # scratch: features too large for memory
    tensors_file = property(lambda self: self.path / "tensors.pt")  # a result's tensors, exactly (rp.open)
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

    def similarity_table(self, metric: str, a: int, b: int) -> Path:
        """One metric's layer x layer matrix of models a (rows) and b (columns), by their index."""
        return self.table(f"{metric}_model{a}_model{b}")

    def target(self, image: str) -> Path:
        return self.images / f"target_{image}.png"

    def shifted(self, image: str, seed: int) -> Path:
        """a' = a + N(0, shift_std) drawn for this seed."""
        return self.images / f"shifted_{image}_seed{seed}.png"

    def a_g(self, layer: str, image: str, seed: int) -> Path:
        """The generated input of one inversion sample."""
        return self.images / f"a_g_{layer}_{image}_seed{seed}.png"

    def decoded(self, layer: str, image: str, chained: bool = False) -> Path:
        """A decoder's reconstruction of one evaluation image from one layer (its chain's, if chained)."""
        return self.images / f"decoded_{'chained_' if chained else ''}{layer}_{image}.png"

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

    def read_metrics(self) -> list[dict]:
        """The rows of metrics.csv, numbers as floats; none when there is no file."""
        if not self.metrics_file.is_file():
            return []
        try:
            with self.metrics_file.open() as file:
                return [_numbers(row) for row in csv.DictReader(file)]
        except (UnicodeDecodeError, csv.Error) as err:
            raise ValueError(f"{self.metrics_file}: unreadable ({type(err).__name__}: {err})") from None

    def write_interrupted(self, record: dict) -> None:
        write_json(self.interrupted_file, record)

    def clear_failure(self) -> None:
        """A new attempt in the same directory: an earlier attempt's failure or interruption no longer stands."""
        self.failure_file.unlink(missing_ok=True)
        self.interrupted_file.unlink(missing_ok=True)


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that it is whole or absent, also across a kill or a power cut."""
    with durable_file(path) as file:
        file.write(data)


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
    if rows:  # every key of any row is a column; a row without one leaves it empty
        writer = csv.DictWriter(buffer, fieldnames=list(dict.fromkeys(key for row in rows for key in row)))
        writer.writeheader()
        writer.writerows(rows)
    write_atomic(path, buffer.getvalue().encode())


def write_png(path: Path, image: torch.Tensor) -> None:
    """A (3, H, W) or (1, H, W) tensor in [0, 1] (values outside are clipped) as an 8-bit PNG."""
    array = (image.detach().cpu().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    array = array[..., 0] if array.shape[-1] == 1 else array  # grey
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", compress_level=1)  # 4x faster than 6, ~6% larger
    write_atomic(path, buffer.getvalue())


def read_png(path: Path) -> torch.Tensor | None:
    """A PNG as a (3, H, W) float tensor in [0, 1] (its 8 bits), or None when there is no such file."""
    if not path.is_file():
        return None
    with Image.open(path) as image:
        array = torch.from_numpy(np.asarray(image.convert("RGB")).copy())
    return array.permute(2, 0, 1).float() / 255


# ---- reading runs back -----------------------------------------------------------------------------
@dataclass(eq=False)  # one record per directory: hashable, compared by identity
class Run(RunDir):
    """One run directory as recorded: what it was asked (config), what it measured, or how it failed."""

    path: Path
    config: dict = field(default_factory=dict)
    summaries: list[dict] = field(default_factory=list)  # one per (layer, image, seed)
    metrics: list[dict] = field(default_factory=list)  # rows of metrics.csv
    failure: str | None = None  # the error line of a failed job
    overrides: list[str] = field(default_factory=list)
    broken: str | None = None  # which of its files could not be read, and why

    @property
    def command(self) -> str | None:
        return self.summaries[0].get("command") if self.summaries else None

    @property
    def status(self) -> str:
        return "broken" if self.broken else "failed" if self.failure else "done" if self.summaries else "incomplete"


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
    """A run directory's records; a file that does not parse marks the run broken instead of failing."""
    run = Run(Path(path))
    config = run.config_file if run.config_file.is_file() else run.path / ".hydra" / "config.yaml"
    overrides = run.path / ".hydra" / "overrides.yaml"
    try:
        run.config = _parsed(config, yaml.safe_load, dict) or {}
        run.overrides = _parsed(overrides, yaml.safe_load, list) or []
        summary = _parsed(run.summary_file, json.loads, (dict, list))
        run.summaries = [] if summary is None else summary if isinstance(summary, list) else [summary]
        if not all(isinstance(s, dict) and "command" in s for s in run.summaries):
            raise ValueError(f"{run.summary_file}: not a summary (objects with a 'command')")
        interrupted = _parsed(run.interrupted_file, json.loads, dict)
        if interrupted is not None and not run.summaries:
            run.failure = f"interrupted by {interrupted.get('signal')} at step {interrupted.get('step')}"
        failure = _parsed(run.failure_file, json.loads, dict)
        if failure is not None:
            run.failure = failure.get("error", "?")
            run.overrides = failure.get("overrides", run.overrides)
        run.metrics = run.read_metrics()
    except (OSError, ValueError) as err:
        run.summaries, run.broken = [], str(err).splitlines()[0]
    return run


def _parsed(path: Path, parse, kind):
    """The parsed file, None when absent; a ValueError naming the file when it does not parse as `kind`."""
    if not path.is_file():
        return None
    try:
        value = parse(path.read_text())
    except (ValueError, yaml.YAMLError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: unreadable ({type(err).__name__}: {str(err).splitlines()[0]})") from None
    if value is not None and not isinstance(value, kind):
        raise ValueError(f"{path}: unexpected content (a {type(value).__name__})")
    return value


def _numbers(row: dict) -> dict:
    """A CSV row with its numbers as int or float (as written); names (layer, image) stay text; an empty cell
    (a key this row did not have) is left out."""
    return {key: value if key in ("layer", "image") else _number(value) for key, value in row.items() if value != ""}


def _number(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except (TypeError, ValueError):
            pass
    return text
