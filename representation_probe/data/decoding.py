"""Image files to training tensors (dataset.decoder): torchvision.io's libjpeg-turbo into uint8 tensors, cropped,
flipped and resized as uint8 (`torchvision`); PIL images (`pil`, the fallback: what torchvision.io cannot
read goes through PIL in either); or the encoded files batched to the training device and decoded there by
nvjpeg (`nvjpeg`). Every decoder draws the same crop and flip from torch's generator, in the order
torchvision's RandomResizedCrop and RandomHorizontalFlip draw them on PIL images: the same crops, whichever
decodes (bench/pipeline_bench.py)."""

from __future__ import annotations

import io

import torch
from PIL import Image
from torchvision import transforms
from torchvision.io import ImageReadMode, decode_image, decode_jpeg, read_file
from torchvision.transforms.v2 import functional as F

from representation_probe.data.targets import rgb

DECODERS = ("torchvision", "pil", "nvjpeg")
SCALE, RATIO = (0.08, 1.0), (3 / 4, 4 / 3)  # RandomResizedCrop's defaults, the ImageNet recipe's


def read_pil(path: str) -> Image.Image:
    with Image.open(path) as image:
        image.load()  # decode now: a truncated file fails here, where the caller names it
        return rgb(image)


def read_uint8(path: str) -> torch.Tensor:
    """(3, H, W) uint8: libjpeg-turbo / libpng through torchvision.io; a file it refuses (another format, a
    truncated or corrupt one) through PIL, whose error then names what is wrong."""
    encoded = read_file(path)
    _check_header(encoded)
    try:
        return decode_image(encoded, mode=ImageReadMode.RGB)
    except RuntimeError:
        return F.pil_to_tensor(read_pil(path))


def _check_header(encoded: torch.Tensor) -> tuple[int, int]:
    """The image's (height, width) from its header alone; PIL's guard against a header claiming billions of
    pixels (DecompressionBombError) holds for every decoder."""
    with Image.open(io.BytesIO(encoded.numpy().tobytes())) as header:
        return header.height, header.width


def crop_and_flip(height: int, width: int) -> tuple[int, int, int, int, bool]:
    """(top, left, crop height, crop width, flip): RandomResizedCrop's then RandomHorizontalFlip's draws."""
    top, left, h, w = transforms.RandomResizedCrop.get_params(torch.empty(0, height, width), SCALE, RATIO)
    return top, left, h, w, bool(torch.rand(1) < 0.5)


def crop(image: torch.Tensor, top: int, left: int, h: int, w: int, flip: bool, size: int) -> torch.Tensor:
    """A uint8 image cropped, resized (bilinear, antialiased) to size x size and flipped, as float in [0, 1]."""
    out = F.resized_crop(image, top, left, h, w, [size, size], antialias=True)
    return F.to_dtype(out.flip(-1) if flip else out, torch.float32, scale=True)


class TrainCrop:
    """A random resized crop and flip of a uint8 tensor image."""

    def __init__(self, size: int):
        self.size = size

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        return crop(image, *crop_and_flip(*image.shape[-2:]), self.size)


class CenterCrop:
    """The validation view of a uint8 tensor image: the shorter side to size * 256 / 224, the centre."""

    def __init__(self, size: int):
        self.size = size

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        out = F.center_crop(F.resize(image, [round(self.size * 256 / 224)], antialias=True), [self.size, self.size])
        return F.to_dtype(out, torch.float32, scale=True)


def read_encoded(path: str) -> torch.Tensor:
    """The file's bytes, for `nvjpeg` (its header checked here, in the worker)."""
    encoded = read_file(path).clone()  # read_file's storage cannot be passed between processes
    _check_header(encoded)
    return encoded


class EncodedCrop:
    """For `nvjpeg`: the file's bytes with the crop and flip drawn here (the worker, seeded per item) and the
    output size; `decode_batch` applies them on the device."""

    def __init__(self, size: int, train: bool):
        self.size, self.train = size, train

    def __call__(self, encoded: torch.Tensor) -> tuple:
        height, width = _check_header(encoded)
        if self.train:
            return encoded, torch.tensor([*crop_and_flip(height, width), self.size])
        return encoded, torch.tensor([-1, -1, -1, -1, 0, self.size])  # CenterCrop's view, made on the device


def decode_batch(batch, device: torch.device):
    """A batch of (encoded files, crop parameters, labels) as (images, labels) on `device`: the JPEGs decoded
    there in one call (nvjpeg on a GPU), each cropped, resized and flipped there; another format, or a file
    nvjpeg refuses, through `read_uint8`'s decoders on the CPU."""
    (encoded, params), labels = batch
    try:
        images = decode_jpeg(list(encoded), mode=ImageReadMode.RGB, device=device)
    except RuntimeError:
        images = [decode_image(e, mode=ImageReadMode.RGB).to(device) for e in encoded]
    out = torch.stack([CenterCrop(int(p[5]))(image) if p[0] < 0 else crop(image, *p[:4].tolist(), bool(p[4]), int(p[5]))
                       for image, p in zip(images, params)])
    return out, labels.to(device)


def collate_encoded(items: list) -> tuple:
    """Encoded files differ in length: kept as a list; their crop parameters and the labels stacked."""
    encoded = [item[0][0] for item in items]
    return (encoded, torch.stack([item[0][1] for item in items])), torch.tensor([item[1] for item in items])
