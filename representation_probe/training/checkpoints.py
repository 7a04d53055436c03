"""Checkpointing of a training run: durable checkpoint files, the stale ones removed, and where a re-run
resumes from."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities import rank_zero_only

from representation_probe.errors import ConfigError
from representation_probe.runs.durable import durable_file, remove_temp_files
from representation_probe.runs.rundir import RunDir

log = logging.getLogger(__name__)


class DurableCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, writing through `rundir.durable_file`: a checkpoint is whole or absent.

    Lightning's own atomic save writes the temp file in $TMPDIR and moves it; across filesystems
    (a cluster's NFS or Lustre outputs, a local /tmp) the move is a copy, and a kill during it leaves
    a truncated last.ckpt. Remote URLs (s3://, ...) still go through Lightning's fsspec writer.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any = None) -> None:
        if storage_options is not None or "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        with durable_file(Path(path)) as file:
            torch.save(checkpoint, file)


@rank_zero_only
def remove_untracked(run_dir: RunDir, states: list[dict], keep: Path | None = None) -> list[Path]:
    """Delete the checkpoints in <run dir>/checkpoints that no ModelCheckpoint state tracks, and the
    temp files of killed writes; returns them.

    Called with the states in the checkpoint a run resumes from (a best-epoch file saved just before
    a kill: the epochs after that checkpoint are trained and written again), and with the live
    states when training ends (the file a run resumed from, which Lightning never deletes).
    """
    if not any(Path(state.get("dirpath") or "") == run_dir.checkpoints for state in states):
        return []  # the checkpoints are written elsewhere: nothing here is theirs to judge
    tracked = {Path(path).name for state in states for key in TRACKED for path in _paths(state.get(key))}
    stale = [path for path in run_dir.checkpoints.glob("*.ckpt") if path.name not in tracked and path != keep]
    for path in stale:
        path.unlink(missing_ok=True)
    stale += remove_temp_files(run_dir.checkpoints)
    for path in stale:
        log.info("removed %s: no checkpoint state tracks it (left by an interrupted attempt)", path)
    return stale


TRACKED = ("best_k_models", "best_model_path", "kth_best_model_path", "last_model_path")  # ModelCheckpoint state


def _paths(value) -> list[str]:
    return list(value) if isinstance(value, dict) else [value] if value else []



@dataclass
class Resume:
    """Where a training run starts: a checkpoint, or None (from scratch), and the unreadable files passed over."""

    path: Path | None = None
    checkpoint: dict | None = field(default=None, repr=False)
    unreadable: dict[str, str] = field(default_factory=dict)  # file -> why it did not load


def resume_path(ckpt_path: str | None, run_dir: RunDir) -> Resume:
    """null: the newest checkpoint of the run directory that loads, or none; 'last': the same but one
    must exist; else that file. Unreadable checkpoints (a truncated or empty last.ckpt) are named in
    the log and passed over."""
    if ckpt_path not in (None, "last"):
        path = Path(ckpt_path).expanduser()
        if not path.is_file():
            raise ConfigError(f"checkpoint not found: {path} (ckpt_path takes null, last or a file)")
        checkpoint, error = _load(path)
        if checkpoint is None:
            raise ConfigError(f"cannot read checkpoint {path} ({error}); ckpt_path takes null, last or a "
                              "readable file")
        return Resume(path, checkpoint)
    candidates = sorted(run_dir.checkpoints.glob("*.ckpt"), key=lambda p: (p.stat().st_mtime, p.name == "last.ckpt"),
                        reverse=True)
    if ckpt_path == "last" and not candidates:
        raise ConfigError(f"ckpt_path=last but there is no checkpoint in {run_dir.checkpoints}; "
                          "pass hydra.run.dir=<the run to resume>")
    resume = Resume()
    for path in candidates:
        checkpoint, error = _load(path)
        if checkpoint is not None:
            resume.path, resume.checkpoint = path, checkpoint
            break
        resume.unreadable[str(path)] = error
        log.warning("checkpoint %s is unreadable (%s), probably cut short by a kill: passed over and moved "
                    "aside to %s%s", path, error, path.name, UNREADABLE)
        _move_aside(path)
    if resume.unreadable:
        log.warning("resuming from %s" % resume.path if resume.path else
                    "no checkpoint in %s loads: training starts afresh" % run_dir.checkpoints)
    return resume


UNREADABLE = ".unreadable"  # suffix of a checkpoint moved aside: kept, but no longer in a new file's way


@rank_zero_only
def _move_aside(path: Path) -> None:
    try:
        path.replace(path.with_name(path.name + UNREADABLE))
    except FileNotFoundError:  # another rank was first
        pass


def _load(path: Path) -> tuple[dict | None, str]:
    """The checkpoint in `path`, or None and why not."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # truncated zip, empty file (EOFError), garbage: all mean unreadable
        return None, f"{type(err).__name__}: {err}".splitlines()[0]
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint or "global_step" not in checkpoint:
        return None, "not a Lightning training checkpoint"
    return checkpoint, ""
