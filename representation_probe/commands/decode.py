"""`decode`: learned inverse decoders per layer, scored on held-out and named images beside gradient
inversion, across layers (cross) and under colour perturbation."""

from __future__ import annotations

import logging
import math

from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig

from representation_probe.api.decode import decode
from representation_probe.api.seeds import repeat, spread_text
from representation_probe.cli.shell import arguments, build_callbacks, for_seed, plain, run_directory, trainer_factory
from representation_probe.config.checks import as_list, seed_list
from representation_probe.decoders.evaluate import HELD_OUT
from representation_probe.errors import ConfigError
from representation_probe.runs.rundir import RunDir
from representation_probe.tracking.loggers import build_loggers
from representation_probe.tracking.results import log_result
from representation_probe.training.checkpoints import remove_untracked, resume_path

log = logging.getLogger(__name__)
STUDY = ("mode", "held_out", "colour_images", "inversion", "cache", "cache_dtype", "cache_limit_gb", "width",
         "min_width", "depth")  # decode.<key> -> rp.decode's argument of the same name


def run(cfg: DictConfig) -> float:
    """Train the decoders, evaluate them (per seed when several); returns the mean held-out PSNR."""
    run_dir, seeds = run_directory(), seed_list(plain(cfg.seed))
    if len(seeds) > 1 and cfg.ckpt_path is not None:
        raise ConfigError(f"ckpt_path={cfg.ckpt_path} names one checkpoint, and each of seeds {seeds} trains its "
                          "own decoders: leave ckpt_path null (each resumes from its own <run dir>/seed<s>)")
    loggers = build_loggers(cfg, "decode", tags=[cfg.model.name, f"weights:{cfg.model.weights}", "decode",
                                                 cfg.decode.mode])
    result = repeat(seeds, lambda seed, where, logged: _decode(cfg, seed, RunDir(where), logged), run_dir.path,
                    request=for_seed(cfg), loggers=loggers)
    if not result.rows:  # another DDP rank: rank 0 evaluates and writes
        return math.nan
    result.save(run_dir.path, config=cfg)
    log_result(loggers, result)
    held = [r for r in result.rows if r["image"] == HELD_OUT]
    if len(seeds) > 1:
        log.info("held-out PSNR over seeds %s: %s (mean image: %.1f dB)", seeds,
                 spread_text(result, "psnr", lambda frame: frame["image"] == HELD_OUT), held[0]["baseline_psnr"])
    else:
        log.info("held-out PSNR per layer: %s (mean image: %.1f dB)",
                 ", ".join(f"{r['layer']} {r['psnr']:.1f}" for r in held), held[0]["baseline_psnr"])
    return sum(r["psnr"] for r in held) / len(held)


def _decode(cfg: DictConfig, seed: int, run_dir: RunDir, loggers):
    """One seed's decoders, checkpointed into (and resumed from) `run_dir`."""
    d = cfg.decode
    resume = resume_path(cfg.ckpt_path, run_dir)
    callbacks = build_callbacks(cfg.callbacks, run_dir)
    result = decode(arguments(cfg.model), instantiate(cfg.dataset), plain(d.layers), epochs=cfg.trainer.max_epochs,
                    optimizer=instantiate(cfg.optimizer), lr=None, eval_images=as_list(plain(cfg.eval_images)),
                    inversion_options=arguments(cfg.inversion), seed=seed, trainer=trainer_factory(cfg.trainer),
                    callbacks=callbacks, resume=resume.path, directory=run_dir.path, progress=True, loggers=loggers,
                    **{key: plain(d[key]) for key in STUDY})
    remove_untracked(run_dir, [c.state_dict() for c in callbacks if isinstance(c, ModelCheckpoint)])
    return result
