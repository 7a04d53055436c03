"""W&B offline runs read back with W&B's own reader of .wandb transaction logs (`wandb leet inspect`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

WANDB = str(Path(sys.executable).parent / "wandb")


def offline_runs(directory: Path) -> list[Path]:
    """The offline runs of a run directory, or of a sweep (whose jobs share its wandb/)."""
    return sorted(directory.glob("wandb/offline-run-*"))


def records(run: Path) -> list[dict]:
    done = subprocess.run([WANDB, "leet", "inspect", "--json", str(run)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def history(run: Path) -> list[dict]:
    return [r["history"]["item"] for r in records(run) if r.get("type") == "history"]


def run_record(run: Path) -> dict:
    return next(r["run"] for r in records(run) if r.get("type") == "run")


def summary(run: Path) -> dict:
    """State, name, config and summary (`leet inspect --summary --json`)."""
    done = subprocess.run([WANDB, "leet", "inspect", "--summary", "--json", str(run)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def metric_keys(run: Path) -> set[str]:
    """The history keys a chart is drawn for: numbers, W&B's own `_` keys and media aside."""
    rows = history(run)
    media = {key.split(".")[0] for row in rows for key in row if key.endswith("._type")}
    return {key for row in rows for key, value in row.items()
            if not key.startswith("_") and key.split(".")[0] not in media and isinstance(value, (int, float))}


def the_run(directory: Path, name: str | None = None) -> Path:
    """The one offline run of a run directory, or a sweep's run of that name."""
    runs = offline_runs(directory)
    if name is not None:
        runs = [run for run in runs if run_record(run)["display_name"] == name]
    assert len(runs) == 1, runs
    return runs[0]
