"""Input normalisation, part of the forward map: the optimised or trained image stays in [0, 1] pixels."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from representation_probe.errors import ConfigError

NORMALIZATIONS = {"none": None, "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))}
Normalization = str | tuple[Sequence[float], Sequence[float]]  # a name, or (mean, std) per channel


def check_normalize(normalize) -> Normalization:
    """A name of NORMALIZATIONS, or (mean, std) with one value per channel (std > 0); as stored."""
    if isinstance(normalize, str):
        if normalize not in NORMALIZATIONS:
            raise ConfigError(f"unknown model.normalize '{normalize}'; allowed: {', '.join(NORMALIZATIONS)} "
                              "or [mean, std] per channel")
        return normalize
    try:
        mean, std = ([float(v) for v in values] for values in normalize)
    except (TypeError, ValueError):
        mean = std = None
    if mean is None or len(mean) != len(std) or not mean or min(std) <= 0 or not all(map(math.isfinite, mean + std)):
        raise ConfigError(f"model.normalize must be {', '.join(NORMALIZATIONS)} or [mean, std] with one finite value "
                          f"per channel and std > 0, got {normalize!r}")
    return (tuple(mean), tuple(std))


def statistics(normalize: Normalization) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """(mean, std) per channel, or None for no normalisation."""
    normalize = check_normalize(normalize)
    return NORMALIZATIONS[normalize] if isinstance(normalize, str) else normalize


class Normalize(nn.Module):
    """(x - mean) / std per channel; 'none' (the paper's raw pixels) is the identity and costs nothing.

    The statistics are not persistent: checkpoints hold the network alone.
    """

    def __init__(self, normalize: Normalization):
        super().__init__()
        stats = statistics(normalize)
        self.active = stats is not None
        mean, std = stats or ((0.0,), (1.0,))
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return (images - self.mean) / self.std if self.active else images
