"""Data as the training studies take it: a dataset preset by name, one of our datamodules, or tensors."""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass, field

import torch

from representation_probe.config import presets
from representation_probe.data.base import TrainValDataModule
from representation_probe.data.tensors import TensorDataModule
from representation_probe.errors import ConfigError


def as_datamodule(data, image_size: int | None = None, **options) -> TrainValDataModule:
    """`data`: a preset of conf/dataset (patches, digits, noise, folder with root=..., ...; `options` override
    its settings, and its images come at `image_size`), one of our datamodules as it is, or images as a
    tensor (N, 3, H, W) in [0, 1] or a pair (images, labels), split by TensorDataModule."""
    datamodule = _datamodule(data, image_size, **options)
    if datamodule.hparams.get("decoder") == "nvjpeg":  # its items are encoded files until a trainer's device
        raise ConfigError("dataset.decoder=nvjpeg decodes training batches on the trainer's device (train); the "
                          "studies read images one by one: use dataset.decoder=torchvision (or pil)")
    return datamodule


def _datamodule(data, image_size: int | None = None, **options) -> TrainValDataModule:
    if isinstance(data, TrainValDataModule):
        return data
    if isinstance(data, Dataset):
        if "_target_" in data.options:  # a composed config: complete as it is
            return _built(dict(data.options))
        return _datamodule(data.name, data.options.get("image_size", image_size),
                             **{k: v for k, v in data.options.items() if k != "image_size"})
    if isinstance(data, str):
        fields = presets.preset("dataset", data)
        if image_size is not None and "image_size" in fields:
            fields["image_size"] = image_size
        unknown = sorted(set(options) - set(fields))
        if unknown:
            raise ConfigError(f"{unknown[0]} is not a setting of the {data} dataset; its settings: {', '.join(fields)}")
        fields |= options
        if fields.get("root") == "???":
            raise ConfigError(f"the {data} dataset needs root=<its directory>")
        return _built(fields)
    if isinstance(data, torch.Tensor):
        return TensorDataModule(data, **options)
    if isinstance(data, (tuple, list)) and len(data) == 2 and isinstance(data[0], torch.Tensor):
        return TensorDataModule(data[0], data[1], **options)
    raise ConfigError(f"data is a dataset name ({', '.join(presets.names('dataset'))}), a datamodule, an image "
                      f"tensor (N, 3, H, W) or (images, labels); got a {type(data).__name__}")


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
