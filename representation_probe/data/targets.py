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


def load_target(image: str, size: int) -> torch.Tensor:
    """A (3, size, size) float tensor in [0, 1]: shorter side resized to size, then centre-cropped."""
    pil = _sample(image) if image in SAMPLES else _file(image)
    tensor = TF.pil_to_tensor(pil.convert("RGB")).float() / 255
    tensor = TF.resize(tensor, size, antialias=True)
    return TF.center_crop(tensor, size).clamp(0, 1)


def load_targets(images: list[str], size: int) -> dict[str, torch.Tensor]:
    """name -> target for several images; two images of one name are refused, since names label results."""
    names = [image_name(image) for image in images]
    if len(set(names)) < len(names):
        raise ConfigError(f"two images share a name ({', '.join(names)}): rename one file, since names "
                          "label the results and a file named like a sample would shadow it")
    return {name: load_target(image, size) for name, image in zip(names, images)}


def image_name(image: str) -> str:
    """Short name for file names and tables: the sample name or the file's stem."""
    return image if image in SAMPLES else Path(image).stem


def _sample(name: str) -> Image.Image:
    import skimage.data

    array = getattr(skimage.data, name)()
    if array.dtype != np.uint8:
        array = (array * 255).astype(np.uint8)
    return Image.fromarray(array)


def _file(path: str) -> Image.Image:
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError(f"image not found: {file} (image takes a file path or a sample: {', '.join(SAMPLES)})")
    try:
        with Image.open(file) as pil:
            return pil.copy()
    except (UnidentifiedImageError, OSError) as err:
        raise ConfigError(f"cannot read image {file}: {err}") from None
