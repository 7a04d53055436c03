"""Images as the studies take them (sample names, files, PIL images or [0, 1] tensors, one or many), and the one
size and channel policy of every study: a model's pinned size is honoured, else a call follows its data.

    the size of a call: the model's pinned size (rp.load(..., image_size=...), model.image_size on the command
    line, or the one size a ViT takes); else the size of the tensors or PIL images given (non-square too: one
    size for all); else, for named images and files, the model's natural size. Named images and files are
    brought to it (the shorter side resized, then centre-cropped) as a matter of course; a tensor or PIL image
    of another size is brought the same way and that is said once per call (rp.InputWarning). The channels
    follow the model: a one-channel image is repeated for a three-channel model, a colour image turned grey
    (ITU-R 601 luma) for a one-channel model, said once; anything else is refused naming both.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
import torchvision.transforms.functional as TF
from PIL import Image

from representation_probe.data.targets import image_name, load_target, resized, rgb
from representation_probe.errors import ConfigError, InputWarning, warn

TOLERANCE = 1e-3  # float images a hair outside [0, 1] (resampling) are clipped, farther ones refused
LUMA = (0.299, 0.587, 0.114)  # ITU-R 601: a colour image's grey for a one-channel model


def items(images) -> dict[str, object]:
    """name -> one image as given: a mapping's names, a file's stem or a sample's name, else image0, image1, ..."""
    if isinstance(images, Mapping):
        return {str(name): image for name, image in images.items()}
    if isinstance(images, torch.Tensor) and images.ndim == 4:
        images = list(images)
    listed = list(images) if isinstance(images, (list, tuple)) else [images]
    if not listed:
        raise ConfigError("no image given: name one or more (a sample such as chelsea, a file, a tensor)")
    if all(isinstance(item, (str, Path)) for item in listed):
        names = [image_name(str(item)) for item in listed]
        if len(set(names)) < len(names):
            raise ConfigError(f"two images share a name ({', '.join(names)}): rename one file, since names "
                              "label the results and a file named like a sample would shadow it")
        return dict(zip(names, listed))
    return {f"image{i}": item for i, item in enumerate(listed)}


def own_size(image) -> tuple[int, int] | None:
    """(height, width) of a tensor or PIL image; None for a name or a file (it has no say in the size)."""
    if isinstance(image, torch.Tensor) and image.ndim >= 2:
        return tuple(image.shape[-2:])
    if isinstance(image, Image.Image):
        return (image.height, image.width)
    return None


def call_size(backbone, images) -> tuple[int, int]:
    """The (height, width) every image of a call is brought to (the module's docstring)."""
    if backbone.pinned_size is not None:
        return backbone.pinned_size
    sizes = {name: size for name, image in items(images).items() if (size := own_size(image)) is not None}
    if len(set(sizes.values())) > 1:
        shown = ", ".join(f"{name} {h}x{w}" for name, (h, w) in list(sizes.items())[:3])
        raise ConfigError(f"the images of one call share one size, and these differ ({shown}); load the model with "
                          "image_size=... to bring them all to it")
    return next(iter(sizes.values()), backbone.natural_size)


def as_images(images, size: tuple[int, int] | int, channels: int = 3) -> dict[str, torch.Tensor]:
    """name -> (channels, height, width) float tensor in [0, 1] at `size` (the module's docstring)."""
    size = (size, size) if isinstance(size, int) else tuple(size)
    changed: dict[str, str] = {}
    out = {}
    for name, image in items(images).items():
        tensor = load_target(str(image), size) if isinstance(image, (str, Path)) else _tensor(image, name)
        if tuple(tensor.shape[1:]) != size:
            changed[name] = "x".join(map(str, tensor.shape[1:]))
            tensor = resized(tensor, size)
        out[name] = _channels(tensor, channels, name)
    if changed:
        shown = ", ".join(f"{name} {was}" for name, was in list(changed.items())[:3]) + (", ..." * (len(changed) > 3))
        warn(f"{len(changed)} image(s) resized to {size[0]}x{size[1]}, the model's image_size ({shown}); load the "
             "model without image_size to keep their own size", InputWarning)
    return out


def _tensor(image, name: str) -> torch.Tensor:
    if isinstance(image, Image.Image):
        image = TF.pil_to_tensor(rgb(image))
    if not isinstance(image, torch.Tensor):
        raise ConfigError(f"image {name} is a {type(image).__name__}; images are sample names, file paths, PIL "
                          "images or (C, H, W) tensors in [0, 1]")
    if image.ndim == 2:
        image = image.unsqueeze(0)
    if image.ndim != 3:
        raise ConfigError(f"image {name} has shape {tuple(image.shape)}; a tensor image is (C, H, W) or (H, W)")
    image = image.detach().cpu()
    image = image.float() / 255 if image.dtype == torch.uint8 else image.float()
    low, high = float(image.min()), float(image.max())
    if low < -TOLERANCE or high > 1 + TOLERANCE:
        raise ConfigError(f"image {name} has values in [{low:.3g}, {high:.3g}]; images are pixels in [0, 1] (the "
                          "model's normalisation is applied inside its forward map)")
    return image.clamp(0, 1).contiguous()


def _channels(image: torch.Tensor, channels: int, name: str) -> torch.Tensor:
    """The image with the model's channels: grey repeated for colour models, colour turned grey for grey ones."""
    have = image.shape[0]
    if have == channels:
        return image
    if have == 1 and channels == 3:
        return image.expand(3, -1, -1).contiguous()
    if have == 3 and channels == 1:
        warn(f"image {name} turned grey (ITU-R 601 luma): the model reads one channel", InputWarning)
        return (image * torch.tensor(LUMA).view(3, 1, 1)).sum(0, keepdim=True)
    raise ConfigError(f"image {name} has {have} channel(s) and the model reads {channels}; give images of "
                      f"{channels} channel(s) (one or three are converted)")
