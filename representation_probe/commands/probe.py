"""`probe`: a linear classifier on each layer's frozen, pooled embedding; test accuracy per layer."""

from __future__ import annotations

from hydra.utils import instantiate
from omegaconf import DictConfig

from representation_probe.api.data import dataset
from representation_probe.api.probe import probe
from representation_probe.cli.shell import arguments, plain, trainer_factory
from representation_probe.commands import config_choice
from representation_probe.degeneracy import log_warnings
from representation_probe.rundir import RunDir
from representation_probe.tracking import build_loggers, log_result


def run(cfg: DictConfig) -> float:
    """Returns the mean over layers of the best validation accuracy."""
    run_dir = RunDir.current()
    loggers = build_loggers(cfg, "probe", tags=[cfg.model.name, f"weights:{cfg.model.weights}", "probe"])
    data = dataset(config_choice("dataset"), **plain(cfg.dataset))
    result = probe(arguments(cfg.model), data, **arguments(cfg.probe),
                   epochs=cfg.trainer.max_epochs, optimizer=instantiate(cfg.optimizer), lr=None, seed=cfg.seed,
                   trainer=trainer_factory(cfg.trainer), directory=run_dir.path, progress=True, loggers=loggers)
    if result.rows:  # rank 0
        result.save(run_dir.path, config=cfg)
        log_result(loggers, result)
        log_warnings(result.rows)
        return sum(row["val_acc"] for row in result.rows) / len(result.rows)
    return float("nan")
