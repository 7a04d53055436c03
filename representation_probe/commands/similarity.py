"""`similarity`: layer x layer similarity (CKA, mutual k-NN, Information Imbalance) of every probe point
of several models and the pixels, on the same held-out images; processing-step profiles."""

from __future__ import annotations

import logging
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import MissingConfigException
from omegaconf import DictConfig, OmegaConf

from representation_probe.api.data import dataset
from representation_probe.api.similarity import Comparison, similarity
from representation_probe.cli.shell import config_choice, plain, run_directory
from representation_probe.config.checks import as_list
from representation_probe.config.presets import CONF, names as presets
from representation_probe.errors import ConfigError
from representation_probe.models.load import load
from representation_probe.tracking.loggers import build_loggers
from representation_probe.tracking.results import log_result

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> None:
    """Every check first (one line each), then the features and the matrices, then the record."""
    run_dir = run_directory()
    names, weights = _models_and_weights(cfg)
    backbones = [load(_model_config(cfg, name, w), name=name) for name, w in zip(names, weights)]
    # the held-out split, the same images for every model: dataset.count of them where the dataset
    # generates its images (patches, noise), a folder's whole validation split
    data = plain(cfg.dataset) | ({"val_count": cfg.dataset.count} if "count" in cfg.dataset else {})
    result = similarity(backbones, dataset(config_choice("dataset"), **data), metrics=as_list(plain(cfg.metrics)),
                        pool=cfg.pool, pixels=cfg.pixels, debiased=cfg.debiased, cka_batch_size=cfg.cka_batch_size,
                        mknn_k=cfg.mknn_k, ii_k=cfg.ii_k, memory_gb=cfg.memory_gb, spill=run_dir.features)
    result.save(run_dir.path, config=cfg)
    _log(cfg, result, names, weights, run_dir.figures())


def _models_and_weights(cfg: DictConfig) -> tuple[list[str], list[str]]:
    names = [str(m) for m in as_list(cfg.models)]
    weights = [str(w) for w in as_list(cfg.weights)]
    if not names:
        raise ConfigError("models is empty: name one or more model configs, e.g. models=[resnet18,vit_tiny]")
    if len(weights) == 1:
        weights *= len(names)
    if len(weights) != len(names):
        raise ConfigError(f"weights has {len(weights)} entries for {len(names)} models: give one per model, "
                          "or one for all")
    return names, weights


def _model_config(cfg: DictConfig, name: str, weights: str) -> dict:
    """conf/model/<name>.yaml as Hydra composes `model=<name>`, then the overrides every model shares
    (`model.*` of this command's config; null: the model's own), then this entry's weights."""
    overrides = {key: value for key, value in OmegaConf.to_container(cfg.model, resolve=True).items()
                 if value is not None}
    config = _composed(name)
    OmegaConf.set_struct(config, False)  # `+model.<key>` may add a key the model's file does not have
    return OmegaConf.to_container(OmegaConf.merge(config, overrides, {"weights": weights}), resolve=True)


def _composed(name: str) -> DictConfig:
    """The model group's config `name`, composed by Hydra (its defaults list resolved)."""
    overrides = [f"+model={name}"]
    try:
        if GlobalHydra.instance().is_initialized():  # inside the running app
            return compose(overrides=overrides).model
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return compose(overrides=overrides).model
    except MissingConfigException:
        raise ConfigError(f"unknown model '{name}'; models (conf/model/): {', '.join(presets('model'))}") from None


def _log(cfg: DictConfig, result: Comparison, names: list[str], weights: list[str], pngs: list[Path]) -> None:
    """The headline numbers to the log, the figures to the configured loggers."""
    for row in result.similarity.profiles():
        if row["step"] is not None:
            log.info("%s %s %s: step %.3f, vs pixels %s", row["metric"], row["model"], row["layer"], row["step"],
                     "-" if row["vs_pixels"] is None else f"{row['vs_pixels']:.3f}")
    loggers = build_loggers(cfg, "similarity", tags=[*names, *(f"weights:{w}" for w in weights), "similarity"])
    for logger in loggers:
        if hasattr(logger, "log_image"):
            logger.log_image("similarity/figures", [str(p) for p in pngs], step=0, caption=[p.stem for p in pngs])
    log_result(loggers, result)
