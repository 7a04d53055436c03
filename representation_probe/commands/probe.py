"""`probe`: a linear classifier on each layer's frozen, pooled embedding; test accuracy per layer."""

from __future__ import annotations

import logging

from hydra.utils import instantiate
from omegaconf import DictConfig

from representation_probe.api.data import dataset
from representation_probe.api.probe import probe
from representation_probe.api.seeds import repeat, spread_text
from representation_probe.cli.shell import arguments, config_choice, for_seed, plain, run_directory, trainer_factory
from representation_probe.config.checks import seed_list
from representation_probe.tracking.loggers import build_loggers
from representation_probe.tracking.results import log_result

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> float:
    """Returns the mean over layers (and seeds) of the best validation accuracy."""
    run_dir, seeds = run_directory(), seed_list(plain(cfg.seed))
    loggers = build_loggers(cfg, "probe", tags=[cfg.model.name, f"weights:{cfg.model.weights}", "probe"])
    data = dataset(config_choice("dataset"), **plain(cfg.dataset))
    result = repeat(seeds, lambda seed, where, logged: probe(
        arguments(cfg.model), data, **arguments(cfg.probe), epochs=cfg.trainer.max_epochs,
        optimizer=instantiate(cfg.optimizer), lr=None, seed=seed, trainer=trainer_factory(cfg.trainer),
        directory=where, progress=True, loggers=logged),
        run_dir.path, request=for_seed(cfg), loggers=loggers)
    if result.rows:  # rank 0
        result.save(run_dir.path, config=cfg)
        log_result(loggers, result)
        if len(seeds) > 1:
            log.info("test accuracy over seeds %s: %s", seeds, spread_text(result, "accuracy"))
        return sum(row["val_acc"] for row in result.rows) / len(result.rows)
    return float("nan")
