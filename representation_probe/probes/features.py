"""The frozen side of a linear probe: every probed layer's pooled embedding from one backbone forward."""

from __future__ import annotations

import torch
from torch import nn

from representation_probe.models import Backbone, FeatureExtractor, pool, prefix_tokens


class PooledFeatures(nn.Module):
    """images -> [(B, D_l) for each layer]: one truncated forward of the frozen backbone, then `pool`."""

    def __init__(self, backbone: Backbone, layers: list[str], how: str = "mean", size: tuple[int, int] | None = None):
        super().__init__()
        self.extractor = FeatureExtractor(backbone, layers, size)
        self.layers, self.how, self.prefix_tokens = list(layers), how, prefix_tokens(backbone)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        outputs = self.extractor(images)
        return [pool(outputs[layer], self.how, self.prefix_tokens) for layer in self.layers]
