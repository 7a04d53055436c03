"""Colour perturbation (inverse-tvm): recolour known objects in HSV and measure, per layer, how much of
the new colour survives in a decoder's reconstruction."""

from __future__ import annotations

import numpy as np
import torch
from skimage.color import hsv2rgb, rgb2gray, rgb2hsv
from skimage.draw import random_shapes

# name -> (what is done to the objects' hue, by how much in turns): set to red/yellow/green, rotate, or
# grayscale the whole image (saturation 0).
CONDITIONS = {"hue_0": ("set", 0.0), "hue_60": ("set", 1 / 6), "hue_120": ("set", 1 / 3),
              "rotate_60": ("rotate", 1 / 6), "rotate_120": ("rotate", 1 / 3), "grayscale": ("gray", 0.0)}
SATURATED = 0.25  # object pixels whose hue means something


def shapes(count: int, size: tuple[int, int], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(count, 3, height, width) images of 2-4 coloured shapes on white, in [0, 1], and their object masks."""
    images, masks = [], []
    for i in range(count):
        image, _ = random_shapes(tuple(size), max_shapes=4, min_shapes=2, min_size=max(3, min(size) // 6),
                                 channel_axis=-1, allow_overlap=False, rng=np.random.default_rng((seed, i)))
        images.append(torch.from_numpy(image).permute(2, 0, 1).float() / 255)
        masks.append(torch.from_numpy((image != 255).any(axis=-1)))
    return torch.stack(images), torch.stack(masks)


def perturb(images: torch.Tensor, masks: torch.Tensor, condition: str) -> torch.Tensor:
    """The images with the objects' hue set or rotated (or the whole image grayscale)."""
    kind, amount = CONDITIONS[condition]
    out = []
    for image, mask in zip(images, masks):
        rgb = image.permute(1, 2, 0).numpy()
        if kind == "gray":
            out.append(np.repeat(rgb2gray(rgb)[..., None], 3, axis=-1))
            continue
        hsv = rgb2hsv(rgb)
        hue = hsv[..., 0]
        hue[mask.numpy()] = amount if kind == "set" else (hue[mask.numpy()] + amount) % 1.0
        out.append(hsv2rgb(hsv))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float()


def colour_kept(reconstructions: torch.Tensor, originals: torch.Tensor, perturbed: torch.Tensor,
                masks: torch.Tensor) -> dict[str, float]:
    """How far the reconstructions' object colours are from the perturbed and from the original ones,
    over the objects' saturated pixels: circular hue distance in degrees (saturation distance for a
    grayscale perturbation), and `kept` = d_original / (d_original + d_perturbed): 1 when the
    reconstruction shows the perturbed colours, 0 when it shows the original ones."""
    recon, orig, pert = (_hsv(x) for x in (reconstructions, originals, perturbed))
    where = masks.numpy() & (orig[..., 1] > SATURATED)
    if not where.any():
        return dict(to_perturbed=float("nan"), to_original=float("nan"), kept=float("nan"))
    if np.allclose(pert[..., 1][where], 0):  # grayscale: the hue is gone, the saturation tells
        to_pert = np.abs(recon[..., 1] - pert[..., 1])[where].mean() * 100
        to_orig = np.abs(recon[..., 1] - orig[..., 1])[where].mean() * 100
    else:
        to_pert, to_orig = (_hue_distance(recon[..., 0], ref[..., 0])[where].mean() * 360 for ref in (pert, orig))
    total = to_pert + to_orig
    return dict(to_perturbed=float(to_pert), to_original=float(to_orig),
                kept=float(to_orig / total) if total > 0 else float("nan"))


def _hsv(images: torch.Tensor) -> np.ndarray:
    return rgb2hsv(images.clamp(0, 1).permute(0, 2, 3, 1).numpy())


def _hue_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Circular distance between hues in turns, in [0, 0.5]."""
    d = np.abs(a - b) % 1.0
    return np.minimum(d, 1.0 - d)
