"""Signals end a run on the record (README, *Reliability*): SIGTERM (what SLURM sends at preemption and at
the time limit), SIGINT (Ctrl-C) and SIGHUP stop any command where it is; the run directory gets
interrupted.json (the signal, the step reached, the checkpoint a re-run resumes from) and the process exits
with 128 + the signal's number, as a shell or SLURM reports a job a signal ended. Nothing is mistaken for a
finished run: summary.json is written only by a run that ends.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator

SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
progress: dict = {}  # the running trainer's step and epoch (api/runtime.StepRecorder), for the record


class Interrupted(BaseException):
    """A handled signal, raised in the main thread: past `except Exception`, like KeyboardInterrupt, through
    Lightning's teardown (which restores the handlers it composed with ours) to the command's wrapper."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@contextlib.contextmanager
def signals_end_the_run() -> Iterator[None]:
    """For the command's life: a signal raises Interrupted. Lightning's own SIGTERM handler (which asks the
    other DDP ranks to stop) runs first and then calls ours."""
    def interrupt(signum, frame):
        raise Interrupted(signum)

    previous = {signum: signal.signal(signum, interrupt) for signum in SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def record(err: Interrupted, command: str, resume_from: str | None) -> dict:
    """What interrupted.json holds; under SLURM also the job and how to requeue it."""
    slurm_job = os.environ.get("SLURM_JOB_ID")
    return dict(command=command, signal=str(err), exit_code=err.exit_code, at=time.strftime("%Y-%m-%dT%H:%M:%S"),
                step=progress.get("step"), epoch=progress.get("epoch"), resume_from=resume_from,
                slurm_job=slurm_job, requeue=f"scontrol requeue {slurm_job}" if slurm_job else None)
