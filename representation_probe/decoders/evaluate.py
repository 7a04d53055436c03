"""What trained decoders recover: scores per layer on held-out and named images, the mean-image baseline,
the cross-layer matrix and the colour perturbation."""

from __future__ import annotations

from collections import defaultdict

import torch
from torch.utils.data import DataLoader

from representation_probe import metrics
from representation_probe.decoders import colour
from representation_probe.decoders.module import DecoderModule
from representation_probe.errors import ConfigError

HELD_OUT = "held-out"  # summary rows of the held-out split carry this in place of an image name


def scores(reconstructions: torch.Tensor, images: torch.Tensor) -> dict[str, list[float]]:
    """Per image: MSE, PSNR and SSIM (clipped to [0, 1]) and m_i = ||reconstruction - a||."""
    mse = (reconstructions - images).pow(2).flatten(1).mean(dim=1)
    return dict(mse=mse.tolist(), psnr=metrics.psnr(reconstructions, images),
                ssim=metrics.ssim(reconstructions, images), m_i=metrics.distance(reconstructions, images).tolist())


def held_out(module: DecoderModule, loader: DataLoader, chained: bool = False) -> dict[str, dict[str, float]]:
    """layer -> the mean of each score over every image of the loader (cached embeddings or not)."""
    collected: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for batch in loader:
        images, grids = module.inputs(batch)
        for layer, recon in module.reconstruct(images, chained, grids).items():
            for name, values in scores(recon, images).items():
                collected[layer][name] += values
    return {layer: {name: sum(v) / len(v) for name, v in by_score.items()} for layer, by_score in collected.items()}


def mean_image_psnr(train: DataLoader, test: DataLoader) -> float:
    """The trivial decoder's score: the mean training image, whatever the input, as PSNR on `test`."""
    total, count = None, 0
    for images, *_ in train:
        total = images.sum(dim=0) if total is None else total + images.sum(dim=0)
        count += len(images)
    mean = total / count
    values = [p for images, *_ in test for p in metrics.psnr(mean.expand_as(images), images)]
    return sum(values) / len(values)


def cross(module: DecoderModule, loader: DataLoader) -> torch.Tensor:
    """(decoder i, input layer j) -> MSE of decoder i fed layer j's output; NaN where shapes differ."""
    errors, pixels = None, 0
    for batch in loader:
        images, grids = module.inputs(batch)
        batch_errors = module.cross(images, grids)
        errors = batch_errors if errors is None else errors + batch_errors
        pixels += images.numel()
    return errors / pixels


def colour_study(module: DecoderModule, count: int, seed: int) -> tuple[list[dict], dict[str, torch.Tensor]]:
    """Per (condition, layer): how much of the recolouring of `count` shapes images survives in the
    direct decoders' reconstructions; and for the first image, its perturbations and their
    reconstructions per layer (condition -> (1 + layers, 3, H, W)) for a picture."""
    if module.features.backbone.channels != 3:
        raise ConfigError(f"the colour study recolours RGB images, and {module.features.backbone.name} reads "
                          f"{module.features.backbone.channels} channel(s): pass decode.colour_images=0")
    images, masks = colour.shapes(count, module.features.size, seed)
    rows, examples = [], {}
    for condition in colour.CONDITIONS:
        perturbed = colour.perturb(images, masks, condition)
        recons = module.reconstruct(perturbed)
        for layer, recon in recons.items():
            rows.append(dict(condition=condition, layer=layer,
                             **colour.colour_kept(recon, images, perturbed, masks)))
        examples[condition] = torch.stack([perturbed[0], *(recon[0] for recon in recons.values())])
    return rows, examples
