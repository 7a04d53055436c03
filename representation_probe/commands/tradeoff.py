"""`tradeoff`: classification vs reconstruction in one shared latent (Rathjens & Wiskott, arXiv 2401.09237)."""

from __future__ import annotations

from functools import partial

from hydra.utils import instantiate
from omegaconf import DictConfig

from representation_probe.api.data import dataset
from representation_probe.api.tradeoff import check_weight, tradeoff
from representation_probe.cli.shell import (arguments, build_callbacks, config_choice, plain, run_directory,
                                            trainer_factory)
from representation_probe.tracking.loggers import build_loggers
from representation_probe.tracking.results import log_result
from representation_probe.tradeoff import build_net
from representation_probe.training.checkpoints import resume_path


def run(cfg: DictConfig) -> float:
    """Returns the selected step's validation objective w * MSE + (1 - w) * CE."""
    run_dir = run_directory()
    weight = check_weight(cfg.tradeoff.weight)
    resume = resume_path(cfg.ckpt_path, run_dir)
    loggers = build_loggers(cfg, "tradeoff", tags=[cfg.net.name, f"weight:{weight}", f"latent:{cfg.tradeoff.latent}",
                                       "tradeoff"])
    result = tradeoff(dataset(config_choice("dataset"), **plain(cfg.dataset)), weight=weight,
                      net=partial(build_net, **arguments(cfg.net)), latent=cfg.tradeoff.latent,
                      max_steps=cfg.trainer.max_steps, val_every=cfg.trainer.val_check_interval,
                      optimizer=instantiate(cfg.optimizer), lr=None, seed=cfg.seed,
                      trainer=trainer_factory(cfg.trainer),
                      callbacks=build_callbacks(cfg.get("callbacks") or {}, run_dir), resume=resume.path,
                      directory=run_dir.path, progress=True, loggers=loggers)
    if result.rows:  # rank 0
        result.save(run_dir.path, config=cfg)
        log_result(loggers, result)
        return result.rows[0]["val_loss"]
    return float("nan")
