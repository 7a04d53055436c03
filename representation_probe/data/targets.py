"""Inversion targets: a bundled scikit-image sample or any PIL-readable file, as [0, 1] tensors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image, UnidentifiedImageError

from representation_probe.errors import ConfigError

# scikit-image samples that ship inside the wheel (no download needed).
SAMPLES = ("astronaut", "camera", "cat", "chelsea", "coffee", "coins", "colorwheel", "hubble_deep_field",
           "immunohistochemistry", "moon", "retina", "rocket")


def load_target(image: str, size: int | tuple[int, int]) -> torch.Tensor:
    """A (3, height, width) float tensor in [0, 1] at `size` (a side or (height, width)): see `resized`."""
    pil = _sample(image) if image in SAMPLES else _file(image)
    return resized(TF.pil_to_tensor(rgb(pil)).float() / 255, size)


def resized(image: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """`image` (C, H, W) scaled to cover `size` (a side or (height, width)), its aspect kept, then centre-cropped
    to it; values clipped to [0, 1]."""
    size = (size, size) if isinstance(size, int) else tuple(size)
    height, width = image.shape[-2:]
    if (height, width) == size:
        return image.clamp(0, 1)
    scale = max(size[0] / height, size[1] / width)
    cover = [max(size[0], round(height * scale)), max(size[1], round(width * scale))]
    return TF.center_crop(TF.resize(image, cover, antialias=True), list(size)).clamp(0, 1)


def image_name(image: str) -> str:
    """Short name for file names and tables: the sample name or the file's stem."""
    return image if image in SAMPLES else Path(image).stem


def rgb(pil: Image.Image) -> Image.Image:
    """An 8-bit RGB image of any PIL mode; 16- and 32-bit grayscale are scaled to the full range.

    PIL's own convert("RGB") clips 16-bit values at 255: a 16-bit PNG would turn almost white.
    """
    if pil.mode == "RGB":
        return pil
    if pil.mode.startswith("I"):  # I;16, I;16B, ... (16-bit) and I (32-bit, 16-bit PNGs in older Pillow)
        gray = np.asarray(pil, dtype=np.float64) / 65535
    elif pil.mode == "F":  # floating point, taken to be in [0, 1]
        gray = np.asarray(pil, dtype=np.float64)
    else:
        return pil.convert("RGB")
    gray = (np.clip(gray, 0, 1) * 255).round().astype(np.uint8)
    return Image.fromarray(np.repeat(gray[..., None], 3, axis=2))


def _sample(name: str) -> Image.Image:
    import skimage.data

    array = getattr(skimage.data, name)()
    if array.dtype != np.uint8:
        array = (array * 255).astype(np.uint8)
    return Image.fromarray(array)


def _file(path: str) -> Image.Image:
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError(f"image not found: {file} (an image is a file path or a sample: {', '.join(SAMPLES)})")
    try:
        with Image.open(file) as pil:
            return pil.copy()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as err:
        raise ConfigError(f"cannot read image {file}: {err}") from None
