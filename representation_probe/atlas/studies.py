"""The studies an atlas needs: each a command line, run in a subprocess unless a finished run directory
with the same command and overrides exists already."""

from __future__ import annotations

import logging
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from representation_probe.errors import ConfigError
from representation_probe.runs.rundir import Run, find_runs, read_run

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Study:
    """`python -m representation_probe <command> <overrides>`, to run in `directory` if not found elsewhere."""

    command: str
    overrides: tuple[str, ...]
    directory: Path

    @property
    def line(self) -> str:
        return " ".join(["python -m representation_probe", self.command, *self.overrides])


class Studies:
    """Finished runs under some roots, found by command and overrides, and the running of missing ones."""

    def __init__(self, roots: list[Path]):
        self.roots = [root for root in roots if root.is_dir()]
        self.finished = [run for run in find_runs(self.roots) if run.status == "done"] if self.roots else []

    def get(self, study: Study) -> Run:
        """The finished run of `study`: one found with the same command and overrides, or a new one."""
        for run in self.finished:
            if run.command == study.command and sorted(map(str, run.overrides)) == sorted(study.overrides):
                log.info("reusing %s for: %s", run.path, study.line)
                return run
        return self._run(study)

    def _run(self, study: Study) -> Run:
        log.info("running: %s", study.line)
        done = subprocess.run([sys.executable, "-m", "representation_probe", study.command, *study.overrides,
                               f"hydra.run.dir={study.directory}"], capture_output=True, text=True)
        run = read_run(study.directory)
        if done.returncode != 0 or run.status != "done":
            errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
            why = errors[-1].removeprefix("error: ") if errors else (done.stderr.strip().splitlines() or ["?"])[-1]
            raise ConfigError(f"the atlas's {study.command} study failed ({why}); its run directory: "
                              f"{study.directory}; the command: {study.line}")
        self.finished.append(run)
        return run
