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

_held: dict[Path, tuple[int, bool]] = {}  # directory -> (descriptor, whether taking the lock made it)


def is_rank_zero() -> bool:
    return all(os.environ.get(name, "0") == "0" for name in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "NODE_RANK"))


def acquire(directory: Path, command: str) -> bool:
    """Take the directory's lock (True), or find it already ours (False); a ConfigError if another holds it."""
    directory = Path(directory).resolve()
    if directory in _held or not is_rank_zero():
        return False
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"the run directory {directory} is a file; pass another hydra.run.dir")
    made = not directory.exists()
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
    _held[directory] = fd, made
    return True


def release(directory: Path) -> None:
    """Unlock; the lock file stays (removing it would let two processes lock two different files), unless
    taking the lock made the directory and nothing else was put in it (a command refused before any work)."""
    directory = Path(directory).resolve()
    fd, made = _held.pop(directory, (None, False))
    if fd is None:
        return
    if made and [p.name for p in directory.iterdir()] == [".lock"]:
        (directory / ".lock").unlink()
        directory.rmdir()
    os.close(fd)


def release_all() -> None:
    for directory in list(_held):
        release(directory)


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
