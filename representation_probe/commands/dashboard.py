"""`dashboard`: the W&B workspace that compares a sweep's runs; offline its spec, online saved (dashboard.py)."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig

from representation_probe.errors import ConfigError
from representation_probe.runs.rundir import write_atomic
from representation_probe.tracking.dashboard import offline_runs, publish, run_record, workspace


def run(cfg: DictConfig) -> None:
    source = Path(str(cfg.source))
    entity = cfg.entity or os.environ.get("WANDB_ENTITY") or ""
    if not source.is_dir():
        text = str(cfg.source)
        if text.startswith(("/", ".", "~")) or text.count("/") > 1:
            raise ConfigError(f"not a directory: {text} (dashboard takes a run or sweep directory, or a W&B "
                              "project as [entity/]project)")
        owner, _, project = text.rpartition("/")  # a project: its workspace, online
        spec = workspace(owner or entity, project, cfg.name or f"{project} by layer")
        print(f"saved {publish(spec, [])}")
        return
    runs = offline_runs(source)
    if not runs:
        raise ConfigError(f"no W&B runs under {source} (looked for wandb/offline-run-*: run with logger=wandb)")
    records = [run_record(run) for run in runs]
    groups = sorted({r["run_group"] for r in records if r.get("run_group")})
    projects = sorted({r.get("project", "") for r in records})
    spec = workspace(entity, cfg.project or projects[0], cfg.name or f"{source.resolve().name} by layer", groups)
    path = source / "wandb" / "workspace.json"
    write_atomic(path, spec._to_model().model_dump_json(indent=2).encode())  # what save() uploads
    print(f"wrote {path}: {sum(len(s.panels) for s in spec.sections)} panels over {len(runs)} runs "
          f"({', '.join(groups) or 'no group'})")
    if cfg.publish:
        print(f"saved {publish(spec, runs)}")
    else:
        print(f"publish: python -m representation_probe dashboard {source} publish=true  (needs WANDB_API_KEY)")
