"""From a command's composed config to the library's arguments: the model, the trainer, plain values."""

from __future__ import annotations

import importlib
from functools import partial

from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from representation_probe.errors import ConfigError
from representation_probe.models import Backbone, create_model
from representation_probe.models.load import load


def plain(value):
    """A config value as Python: lists and dicts as such, scalars as they are."""
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig, ListConfig)) else value


def arguments(node: DictConfig) -> dict:
    """A config group as keyword arguments (its values plain)."""
    return {key: value for key, value in plain(node).items() if not key.startswith("_")}


def build_model(model: DictConfig, **extra) -> Backbone:
    """The `model` group: a registered family's create_model arguments, or (family `module`) a user's own
    nn.Module from `target`, an importable callable (`package.module:function` or `package.module.Class`)."""
    fields = arguments(model) | extra
    if fields.get("family") != "module":
        return create_model(**fields)
    net = importable(fields.pop("target"))()
    return load(net, image_size=fields.get("image_size"), normalize=fields.get("normalize", "none"),
                name=fields.get("name"), probe_points=fields.get("probe_points"), copy=False)


def importable(target: str):
    """`package.module:attribute` or `package.module.attribute`."""
    module, _, attribute = target.partition(":") if ":" in target else target.rpartition(".")
    try:
        return getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError, ValueError) as err:
        raise ConfigError(f"cannot import model.target={target} ({type(err).__name__}: {err}); give an importable "
                          "callable that returns the nn.Module, e.g. my_package.models:build") from None


def trainer_factory(trainer: DictConfig) -> partial:
    """The trainer group as a Trainer factory: its plugins built, the study adds its own arguments."""
    return instantiate(trainer, _partial_=True)
