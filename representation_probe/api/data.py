"""Data as the training studies take it: a dataset preset by name, one of our datamodules, or tensors."""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass, field

import torch

from representation_probe.config import presets
from representation_probe.data.base import TrainValDataModule
from representation_probe.data.targets import resized
from representation_probe.data.tensors import TensorDataModule
from representation_probe.errors import ConfigError, InputWarning, warn


def as_datamodule(data, image_size=None, **options) -> TrainValDataModule:
    """`data`: a preset of conf/dataset (patches, digits, noise, folder with root=..., ...; `options` override
    its settings, and its images come at `image_size`, a model's pinned size: a side or (height, width)), one
    of our datamodules as it is, or images as a tensor (N, C, H, W) in [0, 1] or a pair (images, labels), split
    by TensorDataModule (brought to `image_size` if given: said once)."""
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size) if image_size else None
    datamodule = _datamodule(data, size, **options)
    if datamodule.hparams.get("decoder") == "nvjpeg":  # its items are encoded files until a trainer's device
        raise ConfigError("dataset.decoder=nvjpeg decodes training batches on the trainer's device (train); the "
                          "studies read images one by one: use dataset.decoder=torchvision (or pil)")
    return datamodule


def _datamodule(data, size: tuple[int, int] | None = None, **options) -> TrainValDataModule:
    if isinstance(data, TrainValDataModule):
        return data
    if isinstance(data, Dataset):
        if "_target_" in data.options:  # a composed config: complete as it is
            return _built(dict(data.options))
        own = data.options.get("image_size")
        return _datamodule(data.name, (own, own) if own is not None else size,
                           **{k: v for k, v in data.options.items() if k != "image_size"})
    if isinstance(data, str):
        fields = presets.preset("dataset", data)
        if size is not None and "image_size" in fields and size[0] == size[1]:  # presets make square images
            fields["image_size"] = size[0]
        unknown = sorted(set(options) - set(fields))
        if unknown:
            raise ConfigError(f"{unknown[0]} is not a setting of the {data} dataset; its settings: {', '.join(fields)}")
        fields |= options
        if fields.get("root") == "???":
            raise ConfigError(f"the {data} dataset needs root=<its directory>")
        return _built(fields)
    if isinstance(data, torch.Tensor):
        return TensorDataModule(sized_images(data, size), **options)
    if isinstance(data, (tuple, list)) and len(data) == 2 and isinstance(data[0], torch.Tensor):
        return TensorDataModule(sized_images(data[0], size), data[1], **options)
    raise ConfigError(f"data is a dataset name ({', '.join(presets.names('dataset'))}), a datamodule, an image "
                      f"tensor (N, 3, H, W) or (images, labels); got a {type(data).__name__}")


def sized_images(images: torch.Tensor, size: tuple[int, int] | None) -> torch.Tensor:
    """Image tensors at a model's pinned size (resized, said once), else as they are."""
    if size is None or images.ndim != 4 or tuple(images.shape[-2:]) == size:
        return images
    warn(f"{len(images)} images resized from {images.shape[-2]}x{images.shape[-1]} to {size[0]}x{size[1]}, the "
         "model's image_size; load the model without image_size to keep their own size", InputWarning)
    return resized(images.float(), size)


def data_size(datamodule: TrainValDataModule, backbone) -> tuple[int, int]:
    """The (height, width) a study's model sees the data at: the data's own, which a model's pinned size must be
    (a preset is made at it, tensors are resized to it; other data of another size is refused naming both)."""
    image = datamodule.train_set[0][0]
    own = tuple(image.shape[-2:])
    pinned = backbone.pinned_size
    if pinned is not None and pinned != own:
        raise ConfigError(f"the data's images are {own[0]}x{own[1]} and {backbone.name} takes {pinned[0]}x{pinned[1]} "
                          "(its image_size): make the data at that size (dataset.image_size) or load the model "
                          "without image_size")
    if image.shape[0] != backbone.channels:
        raise ConfigError(f"the data's images have {image.shape[0]} channel(s) and {backbone.name} reads "
                          f"{backbone.channels} (dataset.channels, where the dataset has it)")
    return own


def _built(fields: dict) -> TrainValDataModule:
    """The datamodule class `_target_` names, built from the other fields."""
    module, _, name = fields.pop("_target_").rpartition(".")
    return getattr(importlib.import_module(module), name)(**fields)


def data_name(data) -> str:
    """What a study's rows call its data: the preset's name, else the datamodule's class."""
    return data.name if isinstance(data, Dataset) else data if isinstance(data, str) else \
        "tensors" if isinstance(data, (torch.Tensor, tuple, list)) else dataset_label(data)


@dataclass(frozen=True)
class Dataset:
    """A dataset preset with settings, built when a study knows its model's image size (unless given)."""

    name: str
    options: dict = field(default_factory=dict)


def dataset(name: str, /, **options) -> Dataset:
    """rp.dataset("patches", count=500): a preset of conf/dataset with some settings changed."""
    return Dataset(name, options)


def dataset_label(datamodule) -> str:
    """The datamodule's class as a config's _target_ names it (representation_probe.data.PatchDataModule)."""
    cls = type(datamodule)
    package = cls.__module__.rpartition(".")[0]
    exported = getattr(sys.modules.get(package), cls.__name__, None) is cls
    return f"{package if exported else cls.__module__}.{cls.__name__}"
