"""One function per command: f(cfg) -> the number a sweeper optimises, or None."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from representation_probe import rundir
from representation_probe.data import image_name, load_target
from representation_probe.errors import ConfigError
from representation_probe.inversion import Sample
from representation_probe.models import LayerEmbedder, layer_shapes

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> float | None:
    """Dispatch on the entry config's name; bad input becomes one line, loggers always close."""
    command = HydraConfig.get().job.config_name
    try:
        return TASKS[command](cfg)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            raise  # Hydra records the job as failed; the other jobs of the sweep still run
        sys.exit(2)
    finally:
        if "wandb" in sys.modules:
            import wandb

            wandb.finish()


def layers(cfg: DictConfig) -> None:
    backbone = instantiate(cfg.model)
    shapes = layer_shapes(backbone)
    width = max(map(len, shapes))
    print(f"# {backbone.name} at {backbone.image_size} px; paper aliases first (they win over FX nodes)")
    for name, shape in shapes.items():
        print(f"{name:<{width}}  {shape}")


def invert(cfg: DictConfig) -> float:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    _require_positive(steps=cfg.inversion.steps, **{"model.image_size": cfg.model.image_size},
                      record_every=cfg.inversion.record_every)
    layer_names, images, seeds = _as_list(cfg.layer), _as_list(cfg.image), _as_list(cfg.seed)
    size = cfg.model.image_size
    targets = {image_name(image): load_target(image, size) for image in images}
    samples = [Sample(layer, name, int(seed)) for layer in layer_names for name in targets for seed in seeds]

    backbone = instantiate(cfg.model)
    build_module = instantiate(cfg.inversion, _partial_=True)  # call-time objects stay untouched
    module = build_module(embedder=LayerEmbedder(backbone, layer_names),
                          targets=torch.stack([targets[s.image] for s in samples]), samples=samples)
    loggers = [instantiate(conf) for conf in cfg.logger.values()]
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    trainer = instantiate(cfg.trainer, max_epochs=1, logger=loggers or False, enable_checkpointing=False,
                          enable_model_summary=False, num_sanity_val_steps=0)
    start = time.perf_counter()
    trainer.fit(module)
    seconds = time.perf_counter() - start

    results = module.results()
    _write_inversion(run_dir, cfg, module, results, targets, seconds)
    if module.diverged_at is not None:
        raise ConfigError(f"the loss became NaN at step {module.diverged_at}; what was measured is in "
                          f"{run_dir}; try a smaller inversion.lr (now {cfg.inversion.lr})")
    for r in results:
        log.info("%s %s seed %d: m_g/m_s %.3g  m_i %.3g (m_i_ref %.3g)  PSNR %.1f",
                 r["layer"], r["image"], r["seed"], r["m_g_over_m_s"], r["m_i"], r["m_i_ref"], r["psnr"])
    return sum(r["m_g"] for r in results) / len(results)


def _write_inversion(run_dir: Path, cfg: DictConfig, module, results: list[dict], targets: dict,
                     seconds: float) -> None:
    """config.yaml, metrics.csv, summary.json and images/ of one inversion run, each atomically."""
    rundir.write_atomic(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True).encode())
    rundir.write_csv(run_dir / "metrics.csv", module.history)
    inv = cfg.inversion
    common = dict(command="invert", model=cfg.model.name, weights=str(cfg.model.weights), steps=inv.steps,
                  lr=OmegaConf.to_object(inv.lr) if isinstance(inv.lr, ListConfig) else inv.lr,
                  blur=OmegaConf.to_object(inv.blur_sigma) if isinstance(inv.blur_sigma, ListConfig)
                  else inv.blur_sigma, seconds=round(seconds, 3), diverged_at=module.diverged_at)
    summary = [common | r for r in results]
    rundir.write_json(run_dir / "summary.json", summary[0] if len(summary) == 1 else summary)
    images = run_dir / "images"
    for name, target in targets.items():
        rundir.write_png(images / f"target_{name}.png", target)
    for i, s in enumerate(module.samples):
        rundir.write_png(images / f"shifted_{s.image}_seed{s.seed}.png", module.shifted[i])
        rundir.write_png(images / f"a_g_{s.layer}_{s.image}_seed{s.seed}.png", module.image[i])


def _as_list(value) -> list:
    return list(value) if isinstance(value, (list, ListConfig)) else [value]


def _require_positive(**values) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or value <= 0:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")


TASKS = {"invert": invert, "layers": layers}
