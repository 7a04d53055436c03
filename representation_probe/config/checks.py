"""Checks of user input: each failure is one ConfigError line naming the key, the value and what is allowed.

The object or command that takes a value checks it with these before any work is done. (Hydra's
structured configs would check types at composition, but a composition error aborts a whole
multirun at the bad job and leaves it no failure.json, and the ranges below would be needed anyway.)
"""

from __future__ import annotations

import math

from omegaconf import ListConfig

from representation_probe.errors import ConfigError


def integer(name: str, value, minimum: int | None = None, maximum: int | None = None) -> int:
    """`value` if it is an integer (True and 1.5 are not) in [minimum, maximum], else a ConfigError."""
    if (isinstance(value, bool) or not isinstance(value, int) or (minimum is not None and value < minimum)
            or (maximum is not None and value > maximum)):
        bounds = [f">= {minimum}"] * (minimum is not None) + [f"<= {maximum}"] * (maximum is not None)
        raise ConfigError(f"{name} must be an integer{' ' + ' and '.join(bounds) if bounds else ''}, got {value!r}")
    return value


def positive_int(name: str, value) -> int:
    """`value` if it is a positive integer (True is not one), else a ConfigError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return value


def non_negative_int(name: str, value) -> int:
    return integer(name, value, minimum=0)


def number(name: str, value, positive: bool = False) -> float:
    """`value` if it is a finite number (and > 0 when `positive`), else a ConfigError."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (positive and value <= 0):
        raise ConfigError(f"{name} must be a {'positive ' if positive else ''}finite number, got {value!r}")
    return float(value)


def choice(name: str, value, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def schedule(name: str, value, positive: bool = False, optional: bool = False):
    """A constant or a linear [start, end] schedule of finite numbers (> 0 at the start when `positive`,
    never negative); None when `optional`."""
    if value is None and optional:
        return None
    is_list = isinstance(value, (list, tuple, ListConfig))
    values = list(value) if is_list else [value]
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
                  for v in values)
    if (is_list and len(values) != 2) or not numbers or (positive and values[0] <= 0):
        what = "a positive number" if positive else "a number >= 0"
        raise ConfigError(f"{name} must be {what} or [start, end] (decreasing linearly over the steps), "
                          f"got {_show(value)}")
    return value


def distinct(name: str, values: list) -> list:
    """The values, or one line naming the first that comes twice (it would run the same work again)."""
    for i, value in enumerate(values):
        if value in values[:i]:
            raise ConfigError(f"{name} names {value} twice: name each once")
    return values


def seed_list(value) -> list[int]:
    """One seed or several, as a list of distinct integers (a study repeated once per seed)."""
    seeds = distinct("seed", [integer("seed", seed) for seed in as_list(value)])
    if not seeds:
        raise ConfigError("seed names no seed: give one (seed=0) or several (seed=[0,1,2])")
    return seeds


def as_list(value) -> list:
    """A config value that may be one item or a list, as a list."""
    return list(value) if isinstance(value, (list, tuple, ListConfig)) else [value]


def _show(value) -> str:
    return repr(list(value)) if isinstance(value, ListConfig) else repr(value)
