"""`invert`: gradient descent on the input toward one or more layers' embeddings (paper sections 2-3)."""

from __future__ import annotations

import logging

from omegaconf import DictConfig

from representation_probe.api.invert import chosen_layers, invert
from representation_probe.cli.shell import arguments, plain, run_directory, trainer_factory
from representation_probe.config.checks import as_list, distinct
from representation_probe.errors import ConfigError
from representation_probe.models.load import load
from representation_probe.tracking.loggers import build_loggers
from representation_probe.tracking.results import log_result

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> float:
    """Invert every (layer, image, seed) as one batch; returns the mean final m_g."""
    run_dir = run_directory()
    backbone = load(arguments(cfg.model))
    layers = chosen_layers(backbone, plain(cfg.layers))
    if cfg.layers is None or cfg.layers == "probe_points":  # config.yaml records the layers actually inverted
        cfg.layers = layers[0] if cfg.layers is None else layers
    loggers = build_loggers(cfg, "invert", tags=[cfg.model.name, f"weights:{cfg.model.weights}", *layers])
    images = as_list(plain(cfg.images))
    distinct("images", [str(image) for image in images])
    result = invert(backbone, images, layers, seed=plain(cfg.seed), **arguments(cfg.inversion),
                    trainer=trainer_factory(cfg.trainer), progress=True, loggers=loggers)
    result.save(run_dir.path, config=cfg)
    log_result(loggers, result)
    if result.diverged_at is not None:
        raise ConfigError(f"the inversion diverged (NaN or infinite distances) at step {result.diverged_at}; what "
                          f"was measured is in {run_dir.path}; try a smaller inversion.lr "
                          f"(now {plain(cfg.inversion.lr)})")
    for r in result.rows:  # its warnings were logged as the library issued them (cli/task.py)
        log.info("%s %s seed %d: m_g/m_s %.3g  m_i %.3g (m_i_ref %.3g)  PSNR %.1f",
                 r["layer"], r["image"], r["seed"], r["m_g_over_m_s"], r["m_i"], r["m_i_ref"], r["psnr"])
    return sum(r["m_g"] for r in result.rows) / len(result.rows)
