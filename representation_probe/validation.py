"""Checks of user input that several commands share; each failure is one ConfigError line."""

from __future__ import annotations

from omegaconf import ListConfig

from representation_probe.errors import ConfigError


def positive_int(name: str, value) -> int:
    """`value` if it is a positive integer (True is not one), else a ConfigError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return value


def as_list(value) -> list:
    """A config value that may be one item or a list, as a list."""
    return list(value) if isinstance(value, (list, tuple, ListConfig)) else [value]
