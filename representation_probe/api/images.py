"""Images as the studies take them: sample names, files, PIL images or [0, 1] tensors, one or many."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
import torchvision.transforms.functional as TF
from PIL import Image

from representation_probe.data.targets import load_target, load_targets, rgb
from representation_probe.errors import ConfigError

TOLERANCE = 1e-3  # float images a hair outside [0, 1] (resampling) are clipped, farther ones refused


def as_images(images, size: int) -> dict[str, torch.Tensor]:
    """name -> (3, size, size) float tensor in [0, 1], shorter side resized then centre-cropped.

    `images`: a scikit-image sample name or a file path (named by its stem), a PIL image, a (3, H, W) or
    (B, 3, H, W) tensor (float in [0, 1] or uint8; named image0, image1, ...), a list of these, or a
    mapping name -> any of them."""
    if isinstance(images, Mapping):
        return {str(name): _one(image, size, str(name)) for name, image in images.items()}
    if isinstance(images, (str, Path)):
        return load_targets([str(images)], size)
    if isinstance(images, torch.Tensor) and images.ndim == 4:
        images = list(images)
    items = list(images) if isinstance(images, (list, tuple)) else [images]
    if not items:
        raise ConfigError("no image given: name one or more (a sample such as chelsea, a file, a tensor)")
    if all(isinstance(item, (str, Path)) for item in items):
        return load_targets([str(item) for item in items], size)
    return {f"image{i}": _one(item, size, f"image{i}") for i, item in enumerate(items)}


def _one(image, size: int, name: str) -> torch.Tensor:
    if isinstance(image, (str, Path)):
        return load_target(str(image), size)
    if isinstance(image, Image.Image):
        image = TF.pil_to_tensor(rgb(image))
    if not isinstance(image, torch.Tensor):
        raise ConfigError(f"image {name} is a {type(image).__name__}; images are sample names, file paths, PIL "
                          "images or (3, H, W) tensors in [0, 1]")
    if image.ndim == 2:
        image = image.unsqueeze(0)
    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise ConfigError(f"image {name} has shape {tuple(image.shape)}; a tensor image is (3, H, W) or (1, H, W)")
    image = image.detach().cpu()
    image = image.float() / 255 if image.dtype == torch.uint8 else image.float()
    low, high = float(image.min()), float(image.max())
    if low < -TOLERANCE or high > 1 + TOLERANCE:
        raise ConfigError(f"image {name} has values in [{low:.3g}, {high:.3g}]; images are pixels in [0, 1] (the "
                          "model's normalisation is applied inside its forward map)")
    image = image.expand(3, -1, -1)
    if tuple(image.shape[1:]) != (size, size):
        image = TF.center_crop(TF.resize(image, size, antialias=True), size)
    return image.clamp(0, 1).contiguous()


def size_of(images) -> int | None:
    """The side of square tensor images, to size a user's module by (None: not tensors, or not square)."""
    first = next(iter(images.values())) if isinstance(images, Mapping) else \
        images[0] if isinstance(images, (list, tuple)) and images else images
    if isinstance(first, torch.Tensor) and first.ndim >= 2 and first.shape[-1] == first.shape[-2]:
        return int(first.shape[-1])
    return None
