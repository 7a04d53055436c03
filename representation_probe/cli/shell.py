"""From a command's composed config to the library's arguments: plain values, the trainer, the callbacks, and the
run directory of the running job."""

from __future__ import annotations

from functools import partial

from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from representation_probe.runs.rundir import RunDir


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


def config_choice(group: str) -> str | None:
    """The option chosen for a config group in the running job (`dataset=digits` -> 'digits')."""
    return HydraConfig.get().runtime.choices.get(group)


def build_callbacks(conf: DictConfig, run_dir: RunDir) -> list:
    """The `callbacks` group's entries; a `dirpath: null` (the checkpoints) becomes <run dir>/checkpoints."""
    return [instantiate(entry, **({"dirpath": str(run_dir.checkpoints)} if entry.get("dirpath", 0) is None else {}))
            for entry in conf.values()]


def run_directory() -> RunDir:
    """The run directory of the running Hydra job."""
    return RunDir(HydraConfig.get().runtime.output_dir)
