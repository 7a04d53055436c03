"""Optimisers by name, or any callable that builds one from parameters."""

from __future__ import annotations

from functools import partial

import torch

from representation_probe.errors import ConfigError

OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}  # sgd: the paper's plain eq. 4 for inversion


def optimizer_factory(optimizer, lr: float | None = None, name: str = "optimizer") -> partial:
    """params -> torch optimizer: a name of OPTIMIZERS or a callable taking params (and lr); `lr` joins it
    unless None."""
    if isinstance(optimizer, str):
        if optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown {name} '{optimizer}'; allowed: {', '.join(OPTIMIZERS)} "
                              "(or, from Python, a callable taking params and lr)")
        optimizer = OPTIMIZERS[optimizer]
    if not callable(optimizer):
        raise ConfigError(f"{name} must be {' or '.join(OPTIMIZERS)} or a callable, got {optimizer!r}")
    factory = optimizer if isinstance(optimizer, partial) else partial(optimizer)
    return factory if lr is None else partial(factory, lr=lr)
