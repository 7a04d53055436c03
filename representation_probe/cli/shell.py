"""From a command's composed config to the library's arguments: plain values and the trainer."""

from __future__ import annotations

from functools import partial

from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf


def plain(value):
    """A config value as Python: lists and dicts as such, scalars as they are."""
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig, ListConfig)) else value


def arguments(node: DictConfig) -> dict:
    """A config group as keyword arguments (its values plain, Hydra's own keys dropped)."""
    return {key: value for key, value in plain(node).items() if not key.startswith("_")}


def for_seed(cfg: DictConfig):
    """seed -> the composed config as a run of that one seed records it (repeated studies, api/seeds.py)."""
    return lambda seed: dict(plain(cfg), seed=seed)


def trainer_factory(trainer: DictConfig) -> partial:
    """The trainer group as a Trainer factory: its plugins built, the study adds its own arguments."""
    return instantiate(trainer, _partial_=True)
