"""The frozen side of a linear probe: every probed layer's pooled embedding from one backbone forward."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from representation_probe.models import Backbone, FeatureExtractor, pool


class PooledFeatures(nn.Module):
    """images -> [(B, D_l) for each layer]: one truncated forward of the frozen backbone, then `pool`."""

    def __init__(self, backbone: Backbone, layers: list[str], how: str = "mean"):
        super().__init__()
        self.extractor = FeatureExtractor(backbone, layers)
        self.layers, self.how, self.prefix_tokens = list(layers), how, backbone.prefix_tokens

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        outputs = self.extractor(images)
        return [pool(outputs[layer], self.how, self.prefix_tokens) for layer in self.layers]


def cache_features(embed: PooledFeatures, dataset: Dataset, batch_size: int, workers: int = 0) -> TensorDataset:
    """The pooled features of every image once, in dataset order: (features of layer 1, ..., labels).

    What a probe epoch then reads instead of running the backbone; the same images in the same order
    give the same features (the backbone is frozen and in eval mode), so training matches the uncached path.
    """
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)
    per_layer: list[list[torch.Tensor]] = [[] for _ in embed.layers]
    labels = []
    device = next(embed.extractor.parameters(), torch.empty(0)).device
    for images, targets in loader:
        for chunks, features in zip(per_layer, embed(images.to(device))):
            chunks.append(features.cpu())
        labels.append(torch.as_tensor(targets))
    return TensorDataset(*[torch.cat(chunks) for chunks in per_layer], torch.cat(labels))
