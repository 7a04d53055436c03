"""The inversion config's values: checks before any work, and the schedules of eps and the blur sigma."""

from __future__ import annotations

from functools import partial

import torch

from representation_probe.config.checks import choice, number, positive_int, schedule
from representation_probe.errors import ConfigError

Schedule = float | tuple[float, float] | None  # constant, or linear from start to end; None = off
LOSSES = ("l1", "l2")  # sum |O_l(a_n) - O_l(a)| (the paper), or its squared L2 counterpart


def scheduled(value: Schedule, step: int, steps: int) -> float | None:
    """Value of a constant or linear (start, end) schedule at `step` of `steps` (paper: eps_n)."""
    if value is None or isinstance(value, (int, float)):
        return value
    start, end = value
    return start + (end - start) * step / steps


def eps_scale(eps_by_layer: dict | None, samples: list, optimizer: partial) -> torch.Tensor | None:
    """Per-sample gradient factor from a per-layer eps table (the paper tuned eps by hand per layer)."""
    if not eps_by_layer:
        return None
    if getattr(optimizer, "func", None) is not torch.optim.SGD:
        raise ConfigError("inversion.eps_by_layer scales each sample's gradient, which sets plain SGD's step "
                          "(eq. 4/5) but not an adaptive optimiser's: use it with inversion=paper")
    missing = sorted({s.layer for s in samples} - set(eps_by_layer))
    if missing:
        raise ConfigError(f"inversion.eps_by_layer has no eps for {', '.join(missing)}; "
                          f"it covers {', '.join(eps_by_layer)}")
    return torch.tensor([float(eps_by_layer[s.layer]) for s in samples]).view(-1, 1, 1, 1)


def check(steps, lr, blur_sigma, clamp, loss, init_mean, init_std, shift_std, record_every, image_every,
           steps_per_batch, bf16_until) -> None:
    """The inversion config's values, before any work (conf/inversion/)."""
    for name, value in (("steps", steps), ("record_every", record_every), ("image_every", image_every)):
        positive_int(f"inversion.{name}", value)
    if steps_per_batch is not None:  # None: timed
        positive_int("inversion.steps_per_batch", steps_per_batch)
    schedule("inversion.lr", lr, positive=True)
    schedule("inversion.blur_sigma", blur_sigma, optional=True)
    choice("inversion.loss", loss, LOSSES)
    number("inversion.init_mean", init_mean)
    number("inversion.shift_std", shift_std, positive=True)  # m_s = 0 would make m_g / m_s meaningless
    if number("inversion.init_std", init_std) < 0:
        raise ConfigError(f"inversion.init_std must be >= 0, got {init_std!r}")
    if bf16_until is not None and not 0 <= number("inversion.bf16_until", bf16_until) <= 1:
        raise ConfigError(f"inversion.bf16_until must be a fraction of the steps in [0, 1] (or null), got {bf16_until!r}")
    if not isinstance(clamp, bool):
        raise ConfigError(f"inversion.clamp must be true or false, got {clamp!r}")
