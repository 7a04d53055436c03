"""The one line a user sees for an error that is theirs to fix (bad input, an unknown config, a bad override, an
unwritable directory), found behind the exceptions that wrap it; None for a bug, which keeps its traceback."""

from __future__ import annotations

import difflib
import errno
import re
import sys

from hydra.errors import CompactHydraException, InstantiationException, MissingConfigException, OverrideParseException
from omegaconf import OmegaConf

from representation_probe.cli import schemas
from representation_probe.config import presets
from representation_probe.errors import ConfigError

# Errors of the machine rather than of the code: the user fixes them (permissions, a full disk).
ENVIRONMENT_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT}
HYDRA_NOISE = ("full_key:", "object_type=", "reference_type=", "See https", "Config search path", "provider=")


def user_error(err: BaseException) -> str | None:
    """The one line for an error the user fixes (bad input, an unknown config, a bad override, an
    unwritable directory), or None for a bug. Looks behind the exceptions that wrap a ConfigError
    (hydra's instantiate, a DataLoader worker)."""
    chain = list(_chain(err))
    for cause in chain:
        if isinstance(cause, ConfigError):
            return str(cause)
    for cause in chain:
        if isinstance(cause, OSError) and cause.errno in ENVIRONMENT_ERRNOS:
            verb = "access" if cause.errno in (errno.EACCES, errno.EPERM) else "write"
            return f"cannot {verb} {cause.filename or 'a file'}: {cause.strerror}"
    if isinstance(err, MissingConfigException) and err.missing_cfg_file:  # model=resnet99
        group, _, name = err.missing_cfg_file.rpartition("/")
        return f"unknown {group} '{name}'; allowed: {', '.join(presets.names(group))}"
    if isinstance(err, OverrideParseException):  # seed=[1, or a path with a space, an '=' or non-ASCII
        key, _, value = (err.override or "").partition("=")
        quoted = "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
        return (f"cannot parse the override {err.override!r}: {str(err).splitlines()[0]} (Hydra's override "
                f"grammar); a value with spaces, '=', brackets or non-ASCII letters goes in quotes: {key}={quoted}")
    said = f"{err} {err.__cause__ or ''}"
    unknown = re.search(r"Could not override '([^']+)'", said)
    if isinstance(err, CompactHydraException) and unknown and "not in" in said:  # a typo'd key
        return unknown_key(unknown.group(1))
    if isinstance(err, InstantiationException) and not isinstance(err.__cause__, (TypeError, ImportError)):
        return None  # an exception inside a constructor: a bug, unless it was a ConfigError (above)
    if isinstance(err, CompactHydraException):  # a bad override or config: Hydra's lines, as one
        lines = [line.strip() for text in (str(err), str(err.__cause__ or "")) for line in text.splitlines()]
        lines = [line for line in lines if line and not line.startswith(HYDRA_NOISE)]
        return " ".join(line if line[-1] in ".:;?!" else f"{line}." for line in lines)
    return None


def unknown_key(key: str, command: str | None = None) -> str:
    """The one line for a key no schema has: what its node takes, the closest; no advice to add it with a +
    (which would run with the key ignored)."""
    parent, _, leaf = key.rpartition(".")
    command = command or next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--config-name=")), "<command>")
    known = schemas.known_keys(parent, _choice(parent, command)) if parent else None
    closest = difflib.get_close_matches(leaf, known or _top_level_keys(command), n=1)
    takes = f"; {parent} takes {', '.join(known)}" if known else \
        f"; `python -m representation_probe {command} --cfg job` lists the keys"
    suggestion = f" (did you mean {'.'.join([*([parent] if parent else []), closest[0]])}?)" if closest else ""
    return f"unknown key {key}{suggestion}{takes}"


def _choice(group: str, command: str) -> str | None:
    """The option of a config group the command line chose (`model=module`), else the command's default."""
    given = [a.split("=", 1)[1] for a in sys.argv if a.lstrip("+~").startswith(f"{group}=")]
    if given:
        return given[-1]
    path = presets.CONF / f"{command}.yaml"
    entries = OmegaConf.to_container(OmegaConf.load(path)).get("defaults", []) if path.is_file() else []
    return next((item[group] for item in entries if isinstance(item, dict) and group in item), None)


def _top_level_keys(command: str) -> list[str]:
    """The keys of conf/<command>.yaml and the groups its defaults list (seed, model, ...), for a suggestion."""
    path = presets.CONF / f"{command}.yaml"
    if not path.is_file():
        return []
    entries = OmegaConf.to_container(OmegaConf.load(path))
    groups = [next(iter(item)) for item in entries.pop("defaults", []) if isinstance(item, dict)]
    return [key for key in [*entries, *groups] if key != "hydra"]


def _chain(err: BaseException | None):
    """The exception and those behind it: its cause, or the one it was raised while handling (a full disk
    behind the error of the code that tried to clean up after it)."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or (None if err.__suppress_context__ else err.__context__)


def first_line(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}".splitlines()[0]
