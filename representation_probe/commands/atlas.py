"""`atlas`: every study of every probe point of one model, per weights, side by side (rp.atlas)."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from representation_probe.api.atlas import STUDIES, atlas
from representation_probe.api.data import dataset
from representation_probe.atlas.studies import Studies, Study
from representation_probe.cli.shell import arguments, config_choice, plain, run_directory
from representation_probe.config.checks import as_list, positive_int, seed_list
from representation_probe.errors import ConfigError
from representation_probe.reporting.labels import weights_label
from representation_probe.runs.rundir import RunDir
from representation_probe.tracking.loggers import build_loggers
from representation_probe.tracking.results import log_result

log = logging.getLogger(__name__)
TRAIN = "train:"


def run(cfg: DictConfig) -> None:
    run_dir = run_directory()
    model_name, size = config_choice("model"), positive_int("dataset.image_size", cfg.dataset.image_size)
    studies = plain(cfg.studies) or {}
    unknown = sorted(set(studies) - set(STUDIES))
    if unknown:  # before a recipe trains anything
        raise ConfigError(f"unknown atlas study {', '.join(unknown)}; studies: {', '.join(STUDIES)}")
    weights = [str(w) for w in as_list(cfg.weights)]
    missing = [w for w in weights if w.startswith(TRAIN) and w.removeprefix(TRAIN) not in (cfg.training or {})]
    if missing:
        raise ConfigError(f"weights {', '.join(missing)} name no training recipe; recipes: "
                          f"{', '.join(cfg.training or {}) or 'none'} (atlas.yaml `training`)")
    seeds = seed_list(plain(cfg.seed))
    roots = [run_dir.path, *(Path(str(root)) for root in as_list(cfg.reuse))]
    runner = Studies(roots)
    checkpoints = [{seed: _checkpoint(w, cfg, model_name, size, runner, run_dir, seed, len(seeds) > 1)
                    for seed in seeds} for w in weights]
    labels = [f"{model_name} {w.removeprefix(TRAIN) + '-trained' if w.startswith(TRAIN) else weights_label(w)}"
              for w in weights]
    result = atlas(arguments(cfg.model), weights=checkpoints, labels=labels, name=model_name,
                   data=dataset(config_choice("dataset"), **plain(cfg.dataset)), images=as_list(plain(cfg.images)),
                   seed=seeds, image_size=size, studies=studies, directory=run_dir.path, reuse=roots[1:])
    result.save(run_dir.path, config=cfg)
    log_result(build_loggers(cfg, "atlas", tags=[model_name, "atlas"]), result)
    log.info("wrote %s", run_dir.path / "report.html")


def _checkpoint(weights: str, cfg: DictConfig, model: str, size: int, runner: Studies, run_dir: RunDir, seed: int,
                per_seed: bool) -> str:
    """The weights as model.weights takes them; a train:<recipe> entry trains (or finds) its model of this seed,
    in train/<recipe>[/seed<s>]."""
    if not weights.startswith(TRAIN):
        return weights
    recipe = weights.removeprefix(TRAIN)
    overrides = (f"model={model}", f"seed={seed}", f"dataset.image_size={size}", "logger=csv",
                 f"dataset.workers={cfg.dataset.workers}", *OmegaConf.to_container(cfg.training[recipe]))
    where = run_dir.path / "train" / recipe / (f"seed{seed}" if per_seed else "")
    trained = runner.get(Study("train", overrides, where))
    return str(trained.last_checkpoint)
