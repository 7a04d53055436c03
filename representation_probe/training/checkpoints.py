"""Checkpointing of a training run: its callbacks from config, and where a re-run resumes from."""

from __future__ import annotations

from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig

from representation_probe.errors import ConfigError
from representation_probe.rundir import RunDir


def build_callbacks(conf: DictConfig, run_dir: RunDir) -> list:
    """The `callbacks` group's entries, with the run's places filled in where they say null:
    `dirpath` (checkpoints) becomes <run dir>/checkpoints and `run_dir` the run directory."""
    places = {"dirpath": str(run_dir.checkpoints), "run_dir": str(run_dir.path)}
    return [instantiate(entry, **{key: value for key, value in places.items() if entry.get(key, 0) is None})
            for entry in conf.values()]


def resume_path(ckpt_path: str | None, run_dir: RunDir) -> str | None:
    """null resumes from the run directory's last.ckpt when there is one; 'last' insists on it; else a file."""
    last = run_dir.last_checkpoint
    if ckpt_path is None:
        return str(last) if last.exists() else None
    if ckpt_path == "last":
        if not last.exists():
            raise ConfigError(f"ckpt_path=last but there is no {last}; pass hydra.run.dir=<the run to resume>")
        return str(last)
    if not Path(ckpt_path).is_file():
        raise ConfigError(f"checkpoint not found: {ckpt_path} (ckpt_path takes null, last or a file)")
    return ckpt_path
