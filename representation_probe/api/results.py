"""What every study returns: its summary rows, its tensors, `.history`, `.to_frame()` and `.save(dir)`; and
`open(run_dir)`, which reads any run directory (the CLI's or a saved result) back into the same object."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import torch
from omegaconf import DictConfig, OmegaConf

from representation_probe.errors import ConfigError
from representation_probe.runs.rundir import Run, RunDir, read_run, write_atomic, write_csv

IDS = ("study", "model", "weights", "layer", "relative_depth", "image", "seed")  # every frame's id columns
RESULTS: dict[str, type[Result]] = {}  # command -> its result class, for `open`


@dataclass(repr=False)
class Result:
    """A study's outcome. `rows` are the summary.json rows (one per sample, layer or model); subclasses add
    their tensors and say which row keys are measurements (`metrics`) and which describe the condition
    (`conditions`, beside the id columns in `to_frame`)."""

    command: ClassVar[str]
    metrics: ClassVar[tuple[str, ...]] = ()
    conditions: ClassVar[tuple[str, ...]] = ()
    by_depth: ClassVar[tuple[str, ...]] = ()  # the measurements W&B plots against relative depth
    tensors: ClassVar[tuple[str, ...]] = ()  # fields saved exactly (tensors.pt) and read back by `open`
    cell: ClassVar[tuple[str, ...] | None] = None  # what `spread` groups the seeds by (None: every id but the seed)

    rows: list[dict]
    history_rows: list[dict] = field(default_factory=list, repr=False)  # metrics.csv
    config: dict = field(default_factory=dict, repr=False)  # the arguments, as config.yaml records them
    by_seed: dict[int, Result] = field(default_factory=dict, repr=False)  # each seed's run, when several (seeds.py)

    def __repr__(self) -> str:
        """A line, not the tensors: the study, its rows, the models, layers and seeds, the tensors' shapes."""
        def shape(value) -> str:
            if isinstance(value, torch.Tensor):
                return "x".join(map(str, value.shape))
            return f"{len(value)} tensors" if isinstance(value, dict) else type(value).__name__

        ids = {key: list(dict.fromkeys(str(row.get(key)) for row in self.rows if row.get(key) is not None))
               for key in ("model", "layer", "seed")}
        held = [f"{name} {shape(getattr(self, name))}" for name in self.tensors
                if getattr(self, name, None) is not None and (not isinstance(getattr(self, name), dict)
                                                              or getattr(self, name))]
        parts = [f"{len(self.rows)} rows", *(f"{key}s {', '.join(v[:6])}{', ...' if len(v) > 6 else ''}"
                                             for key, v in ids.items() if v), *held]
        doubts = sum(len(row.get("warnings") or []) for row in self.rows)
        return f"{type(self).__name__}({'; '.join(parts)}{f'; {doubts} warnings' if doubts else ''})"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "command" in cls.__dict__:
            RESULTS[cls.command] = cls

    @property
    def history(self):
        """The recorded curves (metrics.csv) as a DataFrame: a row per recorded step or epoch."""
        import pandas as pd

        return pd.DataFrame(self.history_rows)

    def to_frame(self):
        """Long form: one row per (row of the summary, measurement), columns study, model, weights, layer,
        relative_depth, image, seed, the study's conditions, metric, value, and warnings (the row's doubts,
        joined by '; '; empty when there are none)."""
        import pandas as pd

        columns = [*IDS, *self.conditions, "metric", "value", "warnings"]
        records = []
        for row in self.rows:
            ids = self._ids(row)
            doubts = "; ".join(row.get("warnings") or [])
            for metric in self.metrics:
                value = row.get(metric)
                if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                    records.append([*ids, metric, float(value), doubts])
        return pd.DataFrame(records, columns=columns)

    @property
    def warnings(self):
        """The doubts about this result (metrics/doubts.py), a row per warning: the id columns, the study's
        conditions and `warning`; empty when the result can be trusted as it is."""
        import pandas as pd

        records = [[*self._ids(row), warning] for row in self.rows for warning in row.get("warnings") or []]
        return pd.DataFrame(records, columns=[*IDS, *self.conditions, "warning"])

    def _ids(self, row: dict) -> list:
        return [self.command if key == "study" else row.get(key) for key in (*IDS, *self.conditions)]

    @property
    def seeds(self) -> list:
        return list(dict.fromkeys(row.get("seed") for row in self.rows))

    def spread(self):
        """Each measurement over the seeds, per cell (the id columns but the seed, and the conditions): a row
        per (cell, metric) with its mean, sd (n - 1; NaN for one seed) and n, the seeds' order kept."""
        frame = self.to_frame()
        cells = [*self.cell, "metric"] if self.cell else \
            [c for c in frame.columns if c not in ("seed", "value", "warnings")]
        return (frame.groupby(cells, dropna=False, sort=False)["value"].agg(mean="mean", sd="std", n="count")
                .reset_index())

    def save(self, directory: str | Path, config: DictConfig | dict | None = None) -> Path:
        """Write the run directory (config.yaml, summary.json, metrics.csv and the study's files), each
        file atomically; `config` replaces the recorded arguments (the CLI records its composed config)."""
        run_dir = RunDir(directory)
        config = config if config is not None else self.config
        text = OmegaConf.to_yaml(config, resolve=True) if isinstance(config, DictConfig) else \
            OmegaConf.to_yaml(OmegaConf.create(_plain(config)))
        write_atomic(run_dir.config_file, text.encode())
        if self.history_rows:
            run_dir.write_metrics(self.history_rows)
        self._write(run_dir)
        if self.tensors:
            buffer = io.BytesIO()
            torch.save({name: self._saved(name) for name in self.tensors}, buffer)
            write_atomic(run_dir.tensors_file, buffer.getvalue())
        if len(self.seeds) > 1:
            write_csv(run_dir.table("spread"), self.spread().to_dict("records"))
        run_dir.write_summary(self.rows)
        return run_dir.path

    def _write(self, run_dir: RunDir) -> None:
        """The study's own files (images, matrices, decoders)."""

    def _saved(self, name: str):
        """What tensors.pt holds of the field `name`: the field itself; a module, its state_dict."""
        value = getattr(self, name)
        return value.state_dict() if isinstance(value, torch.nn.Module) else value

    def row_images(self) -> list | None:
        """An image per row ((3, H, W) in [0, 1]) where the study makes one, for the W&B table."""
        return None

    def curves(self) -> dict[str, dict[str, list[tuple[int, float]]]]:
        """Recorded curves of a run holding several samples, for W&B: kind -> sample -> (step, value)."""
        return {}

    @classmethod
    def from_run(cls, run: Run) -> Result:
        """The result its run directory records: rows, history, config and the tensors of tensors.pt, exactly."""
        return cls(rows=run.summaries, history_rows=run.metrics, config=run.config, **saved_tensors(run))


def saved_tensors(run: Run) -> dict:
    """The fields tensors.pt holds (none for a run without one: an older or a failed run)."""
    if not run.tensors_file.is_file():
        return {}
    try:
        return torch.load(run.tensors_file, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated or foreign file: the run's rows stay readable
        raise ConfigError(f"cannot read {run.tensors_file} ({type(err).__name__}: {str(err).splitlines()[0][:200]}); "
                          "its rows are in summary.json") from None


def open(run_dir: str | Path) -> Result:  # noqa: A001 - rp.open, as the issue names it
    """A run directory (of the command line or of `.save`) as the result object its study returns: its rows,
    history and config, its tensors exactly as they were saved, and for a run of several seeds each seed's run
    (`by_seed`, from <run_dir>/seed<s>)."""
    run = read_run(Path(run_dir))
    if run.broken:
        raise ConfigError(f"cannot read {run_dir}: {run.broken}")
    if not run.summaries:
        why = f"it failed: {run.failure}" if run.failure else "it has no summary.json (not finished?)"
        raise ConfigError(f"{run_dir} holds no result: {why}")
    command = run.command
    if command not in RESULTS:
        raise ConfigError(f"{run_dir} is a {command} run, which has no result object; read its summary.json")
    result = RESULTS[command].from_run(run)
    seeds = [seed for seed in result.seeds if isinstance(seed, int)]
    children = {seed: Path(run_dir) / f"seed{seed}" for seed in seeds}
    if len(seeds) > 1 and all((child / "summary.json").is_file() for child in children.values()):
        result.by_seed = {seed: open(child) for seed, child in children.items()}
    return result


def _plain(value):
    """Arguments as YAML can hold them: tensors and modules by their description."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Path):
        return str(value)
    shape = getattr(value, "shape", None)
    return f"<{type(value).__name__}{' ' + str(tuple(shape)) if shape is not None else ''}>"
