"""Reading run directories, the unit of record: the report and all tooling read only these files."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from representation_probe.models.layers import RESNET_ALIASES


@dataclass
class Run:
    """One run directory: what it was asked (config), what it measured, or how it failed."""

    path: Path
    config: dict
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

    def image(self, name: str) -> Path | None:
        path = self.path / "images" / name
        return path if path.is_file() else None


def find_runs(roots: list[Path]) -> list[Run]:
    """Every run directory at or below the roots: one with summary.json, failure.json or .hydra/."""
    found: dict[Path, Run] = {}
    for root in roots:
        if not root.is_dir():
            raise FileNotFoundError(f"not a directory: {root}")
        candidates = [root, *sorted(p for p in root.rglob("*") if p.is_dir() and ".hydra" not in p.parts
                                    and "wandb" not in p.parts and ".submitit" not in p.parts)]
        for path in candidates:
            if path not in found and _is_run(path):
                found[path] = read_run(path)
    return list(found.values())


def _is_run(path: Path) -> bool:
    return any((path / name).exists() for name in ("summary.json", "failure.json", ".hydra/config.yaml"))


def read_run(path: Path) -> Run:
    config_file = path / "config.yaml" if (path / "config.yaml").is_file() else path / ".hydra" / "config.yaml"
    config = yaml.safe_load(config_file.read_text()) if config_file.is_file() else {}
    run = Run(path, config or {})
    overrides = path / ".hydra" / "overrides.yaml"
    if overrides.is_file():
        run.overrides = yaml.safe_load(overrides.read_text()) or []
    if (path / "summary.json").is_file():
        summary = json.loads((path / "summary.json").read_text())
        run.summaries = summary if isinstance(summary, list) else [summary]
    if (path / "failure.json").is_file():
        failure = json.loads((path / "failure.json").read_text())
        run.failure = failure.get("error", "?")
        run.overrides = failure.get("overrides", run.overrides)
    if (path / "metrics.csv").is_file():
        with (path / "metrics.csv").open() as file:
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


def layer_order(layers) -> list[str]:
    """The paper's conv1..conv5 order first, then other layers in order of appearance."""
    layers = list(dict.fromkeys(layers))
    known = [name for name in RESNET_ALIASES if name in layers]
    return known + [name for name in layers if name not in known]


def weights_label(weights) -> str:
    """'untrained', 'imagenet', or the run a checkpoint comes from."""
    weights = str(weights)
    if weights == "none":
        return "untrained"
    if weights == "imagenet":
        return weights
    path = Path(weights)
    return f"{path.parent.parent.name}/{path.stem}" if path.parent.name == "checkpoints" else path.stem
