"""`invert`: gradient descent on the input toward one or more layers' embeddings (paper sections 2-3)."""

from __future__ import annotations

import logging

from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from representation_probe import metrics
from representation_probe.data import load_targets
from representation_probe.errors import ConfigError
from representation_probe.inversion import InversionModule
from representation_probe.inversion.fit import fit_inversion
from representation_probe.loggers import build_loggers
from representation_probe.rundir import RunDir, write_png
from representation_probe.validation import as_list, integer, positive_int

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> float:
    """Invert every (layer, image, seed) as one batch; returns the mean final m_g."""
    run_dir = RunDir.current()
    inv = cfg.inversion
    seeds = [integer("seed", seed) for seed in as_list(cfg.seed)]
    if positive_int("model.image_size", cfg.model.image_size) < metrics.MIN_SSIM_SIZE:
        raise ConfigError(f"model.image_size must be at least {metrics.MIN_SSIM_SIZE} for invert (the SSIM of a_g "
                          f"takes an 11-pixel window), got {cfg.model.image_size}")
    backbone = instantiate(cfg.model)
    if cfg.layer is None:  # the family's default: conv4 for ResNets, the last block of a ViT, an MLP's output
        if backbone.default_layer is None:
            raise ConfigError(f"{backbone.name} has no default layer: pass layer=<name> (see `layers model=...`)")
        cfg.layer = backbone.default_layer  # config.yaml records the layer actually inverted
    if cfg.layer == "probe_points":  # every probe point of the family, as one batch
        cfg.layer = list(backbone.probe_points)
    targets = load_targets(as_list(cfg.image), cfg.model.image_size)
    layers = as_list(cfg.layer)
    loggers = build_loggers(cfg, tags=[cfg.model.name, f"weights:{cfg.model.weights}", *map(str, layers)])
    module, results, seconds = fit_inversion(inv, cfg.trainer, backbone, layers, targets, seeds, loggers)
    _write(run_dir, cfg, module, results, targets, seconds)
    if module.diverged_at is not None:
        raise ConfigError(f"the inversion diverged (NaN or infinite distances) at step {module.diverged_at}; what was "
                          f"measured is in {run_dir.path}; try a smaller inversion.lr (now {inv.lr})")
    for r in results:
        for warning in r["warnings"]:
            log.warning("%s %s seed %d: %s", r["layer"], r["image"], r["seed"], warning)
        log.info("%s %s seed %d: m_g/m_s %.3g  m_i %.3g (m_i_ref %.3g)  PSNR %.1f",
                 r["layer"], r["image"], r["seed"], r["m_g_over_m_s"], r["m_i"], r["m_i_ref"], r["psnr"])
    return sum(r["m_g"] for r in results) / len(results)


def _write(run_dir: RunDir, cfg: DictConfig, module: InversionModule, results: list[dict], targets: dict,
           seconds: float) -> None:
    """config.yaml, metrics.csv, summary.json and images/ of one inversion run, each atomically."""
    run_dir.write_config(cfg)
    run_dir.write_metrics(module.history)
    inv = cfg.inversion
    common = dict(command="invert", model=cfg.model.name, weights=str(cfg.model.weights), steps=inv.steps,
                  lr=_plain(inv.lr), blur=_plain(inv.blur_sigma), seconds=round(seconds, 3),
                  diverged_at=module.diverged_at)
    run_dir.write_summary([common | r for r in results])
    for name, target in targets.items():
        write_png(run_dir.target(name), target)
    for i, s in enumerate(module.samples):
        write_png(run_dir.shifted(s.image, s.seed), module.shifted[i])
        write_png(run_dir.a_g(s.layer, s.image, s.seed), module.image[i])


def _plain(value):
    """A schedule as JSON takes it: a number, null, or [start, end]."""
    return OmegaConf.to_object(value) if isinstance(value, ListConfig) else value
