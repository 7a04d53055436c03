"""Input normalisation, part of the forward map: the optimised or trained image stays in [0, 1] pixels."""

from __future__ import annotations

import torch
from torch import nn

from representation_probe.errors import ConfigError

NORMALIZATIONS = {"none": None, "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))}


def check_normalize(normalize: str) -> str:
    if normalize not in NORMALIZATIONS:
        raise ConfigError(f"unknown model.normalize '{normalize}'; allowed: {', '.join(NORMALIZATIONS)}")
    return normalize


class Normalize(nn.Module):
    """(x - mean) / std per channel; 'none' (the paper's raw pixels) is the identity and costs nothing.

    The statistics are not persistent: checkpoints hold the network alone.
    """

    def __init__(self, normalize: str):
        super().__init__()
        stats = NORMALIZATIONS[check_normalize(normalize)]
        self.active = stats is not None
        mean, std = stats or ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return (images - self.mean) / self.std if self.active else images
