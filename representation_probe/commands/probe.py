"""`probe`: a linear classifier on each layer's frozen, pooled embedding; test accuracy per layer."""

from __future__ import annotations

import time

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Dataset

from representation_probe.commands import config_choice
from representation_probe.errors import ConfigError
from representation_probe.loggers import build_loggers
from representation_probe.models import Backbone, cache_features
from representation_probe.probes import LinearProbes, PooledFeatures
from representation_probe.rundir import RunDir
from representation_probe.training.epoch_metrics import EpochMetrics
from representation_probe.training.checkpoints import build_callbacks
from representation_probe.validation import as_list, positive_int


def run(cfg: DictConfig) -> float:
    """Train every layer's head on the train split, select each by validation accuracy, test once.

    Returns the mean over layers of the best validation accuracy.
    """
    run_dir = RunDir.current()
    batch_size = positive_int("probe.batch_size", cfg.probe.batch_size)
    L.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.dataset)
    datamodule.setup("fit")
    splits: dict[str, Dataset] = dict(train=datamodule.train_set, val=datamodule.val_set,
                                      test=datamodule.require_test_set())
    backbone = instantiate(cfg.model)
    if not isinstance(backbone, Backbone):
        raise ConfigError(f"probe takes a registry model (resnet18, vit_tiny, mlp, ...), got model={cfg.model.name}")
    layers = as_list(cfg.probe.layers) if cfg.probe.layers is not None else list(backbone.probe_points)
    if not layers:
        raise ConfigError(f"{backbone.name} has no probe points; name layers with probe.layers=[...]")
    embed = PooledFeatures(backbone, layers, cfg.probe.pool)
    dims = [features.shape[1] for features in embed(splits["train"][0][0][None])]
    # the heads first: caching draws from the global generator (DataLoader seeds), which must not move their init
    module = LinearProbes(layers, dims, datamodule.num_classes, instantiate(cfg.optimizer),
                          embed=None if cfg.probe.cache else embed)
    start = time.perf_counter()
    if cfg.probe.cache:  # one backbone pass per image; every epoch after reads the pooled features
        splits = {name: cache_features(embed, data, datamodule.hparams.batch_size, datamodule.hparams.workers)
                  for name, data in splits.items()}
    workers = 0 if cfg.probe.cache else datamodule.hparams.workers
    loaders = {name: probe_loader(data, batch_size, shuffle=name == "train", seed=cfg.seed, workers=workers)
               for name, data in splits.items()}
    loggers = build_loggers(cfg, tags=[cfg.model.name, f"weights:{cfg.model.weights}", "probe"])
    trainer = instantiate(cfg.trainer, logger=loggers or False, enable_checkpointing=False,
                          callbacks=[*build_callbacks(cfg.get("callbacks") or {}, run_dir), EpochMetrics(run_dir)],
                          default_root_dir=run_dir.path)
    trainer.fit(module, loaders["train"], loaders["val"])
    module.select_best()
    trainer.test(module, loaders["test"], verbose=False)
    seconds = time.perf_counter() - start
    depth = backbone.probe_points
    rows = [dict(command="probe", model=cfg.model.name, weights=str(cfg.model.weights), dataset=config_choice("dataset"),
                 layer=layer, relative_depth=depth.get(layer), accuracy=module.results["test"][i],
                 val_acc=module.best[i][0], best_epoch=module.best[i][1], features=dims[i], pool=cfg.probe.pool,
                 classes=datamodule.num_classes, seed=cfg.seed, epochs=trainer.current_epoch,
                 cached=bool(cfg.probe.cache), seconds=round(seconds, 3))
            for i, layer in enumerate(layers)]
    if trainer.is_global_zero:
        run_dir.write_config(cfg)
        run_dir.write_summary(rows)
    return sum(row["val_acc"] for row in rows) / len(rows)


def probe_loader(data: Dataset, batch_size: int, shuffle: bool, seed: int, workers: int) -> DataLoader:
    """Training batches in an order drawn from `seed` alone (cached or not, the same batches), the last
    incomplete one dropped (BatchNorm needs two samples); evaluation in order, every sample kept."""
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(data, batch_size=batch_size, shuffle=shuffle, drop_last=shuffle and len(data) > batch_size,
                      generator=generator, num_workers=workers, persistent_workers=workers > 0)
