"""Features for the similarity study: one forward per model per batch returns every probe point, pooled
to one vector per image; the pixels are pseudo-layer 0; kept in memory, or memory-mapped from disk
when they would not fit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from representation_probe.models import FeatureExtractor, pool


def vectors(extractors: list[FeatureExtractor], images: torch.Tensor, how: str, pixels: bool) -> list[torch.Tensor]:
    """(b, d) float32 features of one batch: the flattened pixels (raw [0, 1], before any model's
    normalisation) if `pixels`, then each model's requested layers in order, pooled `how`."""
    out = [images.flatten(1).float()] if pixels else []
    with torch.no_grad():
        for extractor in extractors:
            outputs = extractor(images)
            prefix = extractor.backbone.prefix_tokens
            out += [pool(outputs[layer], how, prefix).float() for layer in extractor.nodes]
    return out


def dimensions(extractors: list[FeatureExtractor], image_size: int, how: str, pixels: bool) -> list[int]:
    """The width of every representation, from one blank image: also fails early on a pool that does not
    fit a layer (cls on a spatial map, say)."""
    return [v.shape[1] for v in vectors(extractors, torch.zeros(1, 3, image_size, image_size), how, pixels)]


class FeatureStore:
    """n rows per representation, filled batch by batch, in the order the images come."""

    def __init__(self, n: int, dims: list[int], directory: Path | None = None):
        """In memory, or as .npy files memory-mapped from `directory` (the metrics then read one
        representation at a time, so memory holds one layer's features, not all of them)."""
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            self.arrays = [np.lib.format.open_memmap(directory / f"{i}.npy", mode="w+", dtype=np.float32,
                                                     shape=(n, d)) for i, d in enumerate(dims)]
        else:
            self.arrays = [np.empty((n, d), dtype=np.float32) for d in dims]
        self.filled = 0

    def add(self, batch: list[torch.Tensor]) -> None:
        rows = slice(self.filled, self.filled + len(batch[0]))
        for array, values in zip(self.arrays, batch):
            array[rows] = values.cpu().numpy()
        self.filled = rows.stop


def bytes_needed(n: int, dims: list[int]) -> int:
    """float32 features of n images."""
    return 4 * n * sum(dims)


def gram_bytes(n: int, count: int) -> int:
    """Centred float64 Gram matrices of `count` representations over n images, with working space."""
    return 8 * n * n * (count + 3)
