"""The paper's distances, the image scores and the representation similarities, as pure functions on
tensors, defined once for every study (`rp.metrics`).

With a the target image, a_g the generated one and O_l the forward map to layer l (L2 norms over
flattened tensors): m_g = ||O_l(a_g) - O_l(a)||, m_i = ||a_g - a||, and for the reference shift
a' = a + N(0, shift_std): m_s = ||O_l(a') - O_l(a)|| and m_i_ref = ||a' - a||.

    rp.metrics.m_g(features_of_a_g, features_of_a)      # per sample; m_s: the same with a' for a_g
    rp.metrics.cka(x, y)                                # linear CKA of (n, d1) and (n, d2) features
    rp.metrics.mutual_knn(x, y, k=10); rp.metrics.information_imbalance(x, y, k=1)

The representation similarities live in cka.py and neighbours.py; doubts.py holds the checks that say when a
measured value should not be trusted (a run that never moved, a classifier at chance, ...).
"""

from __future__ import annotations

import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from representation_probe.metrics.cka import linear_cka as cka
from representation_probe.metrics.neighbours import information_imbalance, mutual_knn

__all__ = ["cka", "distance", "draws", "information_imbalance", "m_g", "m_i", "mutual_knn", "norm", "psnr", "ssim"]

SSIM_WINDOW = 11  # torchmetrics' default Gaussian window, reflect-padded by 5 pixels
MIN_SSIM_SIZE = SSIM_WINDOW // 2 + 1  # the smallest image side that padding allows


def draws(seed: int, shape: torch.Size, init_mean: float = 0.7, init_std: float = 0.05,
          shift_std: float = 0.05) -> tuple[torch.Tensor, torch.Tensor]:
    """a_0 ~ N(init_mean, init_std) and the shift a' - a ~ N(0, shift_std) of one sample, in that order
    from one generator seeded by `seed`: every study draws the same a_0 and a' for the same seed."""
    gen = torch.Generator().manual_seed(seed)
    start = torch.randn(shape, generator=gen) * init_std
    shift = torch.randn(shape, generator=gen) * shift_std
    return init_mean + start, shift


def distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample L2 distance over all but the first dimension: m_g and m_s on embeddings, m_i and
    m_i_ref on images."""
    return norm(x - y)


def m_g(embeddings: torch.Tensor, target_embeddings: torch.Tensor) -> torch.Tensor:
    """m_g per sample: ||O_l(a_g) - O_l(a)|| from the layer's outputs (B, ...) for a_g and for a (m_s: the
    outputs for a' in place of a_g's)."""
    return distance(embeddings, target_embeddings)


def m_i(images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """m_i per sample: ||a_g - a|| over the pixels (m_i_ref: a' in place of a_g)."""
    return distance(images, targets)


def norm(difference: torch.Tensor) -> torch.Tensor:
    """Per-sample L2 norm over all but the first dimension, of a difference already at hand."""
    return difference.flatten(1).norm(dim=1)


def psnr(images: torch.Tensor, targets: torch.Tensor) -> list[float]:
    """Per-sample PSNR (dB) of images clipped to [0, 1] against targets in [0, 1]."""
    per_sample = tuple(range(1, images.ndim))
    return peak_signal_noise_ratio(images.clamp(0, 1), targets, data_range=1.0, reduction="none",
                                   dim=per_sample).tolist()


def ssim(images: torch.Tensor, targets: torch.Tensor) -> list[float]:
    """Per-sample SSIM of images clipped to [0, 1] against targets in [0, 1]."""
    clipped = images.clamp(0, 1)
    return [float(structural_similarity_index_measure(clipped[i : i + 1], targets[i : i + 1], data_range=1.0,
                                                     kernel_size=SSIM_WINDOW))
            for i in range(len(images))]
