"""From images to matrices: one forward per model per batch returns every requested layer, pooled to
one vector per image, the pixels as pseudo-layer 0; the features kept in memory, or memory-mapped from
disk when they would not fit (or not kept at all when only minibatch CKA needs them); then every metric
over every pair of representations."""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from representation_probe.metrics.cka import MinibatchCKA, cka_matrix
from representation_probe.metrics.neighbours import information_imbalance_matrix, mutual_knn_matrix
from representation_probe.models import FeatureExtractor, pool, prefix_tokens


def measure(extractors: list[FeatureExtractor], batches: Iterable, count: int, metrics: list[str], *,
            how: str = "mean", pixels: bool = True, minibatch: bool = False, debiased: bool = False,
            mknn_k: int = 10, ii_k: int = 1, spill: Path | None = None) -> dict[str, torch.Tensor]:
    """Each metric's (L, L) matrix over the representations of `count` images: the pixels (if `pixels`),
    then each extractor's layers in order.

    Args:
        extractors: one per model, each returning its layers from one forward.
        batches: (images, ...) batches, the same images in the same order for every model.
        count: the number of images the batches hold.
        metrics: any of cka, mknn, ii.
        how: pooling of spatial maps and token sequences (mean, flatten, cls).
        minibatch: CKA accumulated batch by batch (Nguyen et al. 2021; the batches must be of one size),
            else over all images at once (with `debiased` choosing the HSIC estimator).
        mknn_k, ii_k: neighbours of mutual k-NN and of Information Imbalance.
        spill: keep the features as .npy files in this directory (removed at the end), not in memory.
    """
    accumulator = MinibatchCKA() if "cka" in metrics and minibatch else None
    keep = metrics != ["cka"] or not minibatch  # anything else needs every image's features at the end
    store = None
    for images, *_ in batches:
        features = vectors(extractors, images, how, pixels)
        if keep:
            if store is None:
                store = FeatureStore(count, [f.shape[1] for f in features], spill)
            store.add(features)
        if accumulator is not None:
            accumulator.update(features)
    compute = {"cka": lambda: accumulator.compute() if accumulator else cka_matrix(store.arrays, debiased),
               "mknn": lambda: mutual_knn_matrix(store.arrays, mknn_k),
               "ii": lambda: information_imbalance_matrix(store.arrays, ii_k)}
    matrices = {metric: compute[metric]() for metric in metrics}
    if spill is not None and keep:
        del store
        shutil.rmtree(spill)
    return matrices


def vectors(extractors: list[FeatureExtractor], images: torch.Tensor, how: str, pixels: bool) -> list[torch.Tensor]:
    """(b, d) float32 features of one batch: the flattened pixels (raw [0, 1], before any model's
    normalisation) if `pixels`, then each model's requested layers in order, pooled `how`."""
    out = [images.flatten(1).float()] if pixels else []
    with torch.no_grad():
        for extractor in extractors:
            outputs = extractor(images)
            prefix = prefix_tokens(extractor.backbone)
            out += [pool(outputs[layer], how, prefix).float() for layer in extractor.nodes]
    return out


def dimensions(extractors: list[FeatureExtractor], size: tuple[int, int], channels: int, how: str,
               pixels: bool) -> list[int]:
    """The width of every representation, from one blank image: also fails early on a pool that does not
    fit a layer (cls on a spatial map, say)."""
    return [v.shape[1] for v in vectors(extractors, torch.zeros(1, channels, *size), how, pixels)]


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
