"""One run directory, one owner: a command holds <run dir>/.lock for the run's life, so a second command
started into the same directory is refused in one line naming the holder instead of mixing its files in.

The lock is an flock, which the kernel releases when its process ends however it ends: a killed or
requeued run's lock is free at once, with no stale file to clean up. The other ranks of a DDP run work in
their rank 0's directory and take no lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from representation_probe.errors import ConfigError

_held: dict[Path, int] = {}  # directory -> descriptor of the locks this process holds


def is_rank_zero() -> bool:
    return all(os.environ.get(name, "0") == "0" for name in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "NODE_RANK"))


def acquire(directory: Path, command: str) -> bool:
    """Take the directory's lock (True), or find it already ours (False); a ConfigError if another holds it."""
    directory = Path(directory).resolve()
    if directory in _held or not is_rank_zero():
        return False
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"the run directory {directory} is a file; pass another hydra.run.dir")
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        raise ConfigError(f"the run directory {directory} is in use by {holder}; wait for it to end, or pass "
                          "another hydra.run.dir") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(dict(command=command, pid=os.getpid(), host=socket.gethostname(),
                                  since=time.strftime("%Y-%m-%d %H:%M:%S"))).encode(), 0)
    _held[directory] = fd
    return True


def release(directory: Path) -> None:
    fd = _held.pop(Path(directory).resolve(), None)
    if fd is not None:
        os.close(fd)  # the file stays: removing it would let two processes lock two different files


@contextlib.contextmanager
def holding(directory: Path, command: str) -> Iterator[None]:
    """The lock for the body, unless this process holds it already (taken before Hydra started)."""
    taken = acquire(directory, command)
    try:
        yield
    finally:
        if taken:
            release(directory)


def _holder(fd: int) -> str:
    try:
        who = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"`{who['command']}` (pid {who['pid']} on {who['host']}, since {who['since']})"
    except (ValueError, KeyError, OSError):
        return "another command"
