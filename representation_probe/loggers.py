"""The configured experiment loggers of a run (W&B offline by default; none with logger=csv)."""

from __future__ import annotations

from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf


def build_loggers(cfg: DictConfig, tags: list[str]) -> list:
    """The loggers of `cfg.logger`, a multirun's jobs grouped by sweep, tagged, with the config logged once."""
    hydra_cfg = HydraConfig.get()
    loggers = []
    for conf in cfg.logger.values():
        extra = {}
        if "tags" in conf:
            extra["tags"] = [*conf.tags, *tags]
        if "group" in conf and conf.group is None and hydra_cfg.mode == RunMode.MULTIRUN:
            extra["group"] = str(hydra_cfg.sweep.dir)
            extra["name"] = f"{Path(hydra_cfg.sweep.dir).name}/{hydra_cfg.job.num}"
        loggers.append(instantiate(conf, **extra))
    config = OmegaConf.to_container(cfg, resolve=True)
    for logger in loggers:
        logger.log_hyperparams(config)
    return loggers
