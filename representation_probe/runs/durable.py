"""Files that are whole or absent: written beside their destination, fsynced, then renamed over it."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def durable_file(path: Path) -> Iterator[BinaryIO]:
    """A binary file to write that becomes `path` only once it is complete and on disk.

    It is a temporary file beside `path` (same filesystem, so the rename is atomic: a temp file in
    $TMPDIR would be copied across filesystems, and a kill during the copy leaves half a file), is
    fsynced, then os.replace'd over `path`, and the directory entry is fsynced too. Readers see the
    old file or the new one, never part of one; a kill leaves at most a stale temp file
    (`TEMP_PATTERN`), which `remove_temp_files` clears.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes owner-only files; results are for everyone
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        full = _out_of_space(err)
        if full is not None:  # named by the file the caller asked for (a writer's own error may hide it)
            raise OSError(full.errno, full.strerror, str(path)) from err
        raise
    _fsync_directory(path.parent)


def _out_of_space(err: BaseException | None) -> OSError | None:
    """The full disk or quota behind an error, if one is: torch's writer reports it as a RuntimeError
    raised while the file's close fails with ENOSPC."""
    for _ in range(8):
        if err is None:
            return None
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
            return err
        err = err.__cause__ or err.__context__
    return None


def _fsync_directory(directory: Path) -> None:
    """Make a rename in `directory` durable; platforms without directory fds (Windows) skip it."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on directories
        pass
    finally:
        os.close(fd)


TEMP_SUFFIX = ".tmp"
TEMP_PATTERN = f".*{TEMP_SUFFIX}"  # what durable_file leaves behind when killed mid-write


def remove_temp_files(directory: Path) -> list[Path]:
    """Delete the temp files that killed writers left in `directory`; returns them.

    Only call it when no writer is active in the directory (e.g. before training resumes).
    """
    stale = sorted(directory.glob(TEMP_PATTERN)) if directory.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return stale
