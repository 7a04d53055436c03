"""`rp.probe`: a linear classifier on each layer's frozen, pooled embedding; test accuracy per layer."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping
from torch.utils.data import DataLoader, Dataset

from representation_probe.api.data import as_datamodule, data_name, data_size
from representation_probe.api.results import Result, saved_tensors
from representation_probe.api.runtime import Progress, as_model, make_trainer, public, quiet
from representation_probe.api.seeds import repeat
from representation_probe.config.checks import positive_int
from representation_probe.config.optimizers import optimizer_factory
from representation_probe.errors import ConfigError, DegenerateWarning
from representation_probe.metrics import doubts
from representation_probe.models import cache_features
from representation_probe.models.layers import select_layers
from representation_probe.probes import LinearProbes, PooledFeatures
from representation_probe.runs.rundir import Run, RunDir
from representation_probe.training.epoch_metrics import EpochMetrics


@dataclass(repr=False)  # Result's short repr
class Probing(Result):
    """A row per layer: test `accuracy` of its linear head, the best validation accuracy and its epoch;
    `probes` the trained heads."""

    command = "probe"
    metrics = ("accuracy", "val_acc")
    conditions = ("pool",)
    by_depth = ("accuracy",)
    tensors = ("probes",)

    probes: LinearProbes | None = field(default=None, repr=False)

    @classmethod
    def from_run(cls, run: Run) -> Probing:
        """The rows, and the trained heads rebuilt from their saved weights (a run of one seed)."""
        saved = saved_tensors(run)
        result = cls(rows=run.summaries, history_rows=run.metrics, config=run.config)
        if saved.get("probes") is not None:
            rows = result.rows
            result.probes = LinearProbes([r["layer"] for r in rows], [r["features"] for r in rows], rows[0]["classes"],
                                         optimizer_factory("adam"))
            result.probes.load_state_dict(saved["probes"])
        return result

    @property
    def accuracy(self) -> dict[str, float]:
        """Test accuracy per layer (the mean over the seeds, when several)."""
        values: dict[str, list[float]] = {}
        for row in self.rows:
            values.setdefault(row["layer"], []).append(row["accuracy"])
        return {layer: sum(v) / len(v) for layer, v in values.items()}


@public
def probe(model, data="patches", layers=None, *, pool: str = "mean", cache: bool = True, batch_size: int = 256,
          epochs: int = 100, patience: int | None = 10, optimizer="adam", lr: float | None = 1e-2, seed=0,
          trainer=None, callbacks=(), directory: str | Path | None = None, progress: Progress = False,
          loggers=()) -> Probing:
    """Train every layer's linear head at once on the train split, keep each head's best epoch by validation
    accuracy, test once.

    Args:
        model: anything rp.load takes (a spec is built after seeding, as the CLI does), or a loaded model.
        data: a labelled dataset with a test split: a preset name, rp.dataset(...), a datamodule, or
            (images, labels) tensors.
        layers: the layers to probe (names, indices, depths, modules); None: the probe points.
        pool: spatial maps and tokens to vectors: mean, flatten, cls (a ViT's class token).
        cache: pool every image's features once; epochs then skip the backbone (the same result).
        epochs, patience: at most `epochs`, stopping when the mean validation accuracy has not risen for
            `patience` epochs (None: never early); optimizer, lr: Adam 1e-2 on standardised features.
        seed: one seed or several (a list): each trains its own heads (an untrained model's weights come from its
            init_seed); several give a row per (layer, seed), `spread()` their mean and sd, each run in
            <directory>/seed<s>.
        trainer, callbacks, directory, progress, loggers: as in rp.decode.
    """
    settings = {key: value for key, value in locals().items() if key not in ("seed", "directory", "loggers")}
    return repeat(seed, lambda one, where, logged: _probe(**settings, seed=one, directory=where, loggers=logged),
                  directory, loggers=loggers)


def _probe(model, data, layers, *, pool, cache, batch_size, epochs, patience, optimizer, lr, seed, trainer,
           callbacks, directory, progress, loggers) -> Probing:
    batch_size = positive_int("probe.batch_size", batch_size)
    L.seed_everything(seed, workers=True, verbose=False)
    backbone = as_model(model)  # built after seeding (its init_seed resets the generator), before any draw
    datamodule = as_datamodule(data, backbone.pinned_size)
    datamodule.setup("fit")
    if datamodule.num_classes < 2:
        raise ConfigError(f"a probe classifies: its data needs labels of at least two classes, got "
                          f"{datamodule.num_classes} (pass (images, labels), or a labelled dataset)")
    splits: dict[str, Dataset] = dict(train=datamodule.train_set, val=datamodule.val_set,
                                      test=datamodule.require_test_set())
    size = data_size(datamodule, backbone)
    layers = select_layers(backbone, layers) if layers is not None else list(backbone.probe_points)
    if not layers:
        raise ConfigError(f"{backbone.name} has no probe points; name layers with probe.layers=[...]")
    with backbone.frozen():  # a user's own module: frozen for the call, then as it was
        embed = PooledFeatures(backbone, layers, pool, size)
        dims = [features.shape[1] for features in embed(splits["train"][0][0][None])]
        # the heads first: caching draws from the global generator (DataLoader seeds), which must not move their init
        module = LinearProbes(layers, dims, datamodule.num_classes, optimizer_factory(optimizer, lr),
                              embed=None if cache else embed)
        record = EpochMetrics(RunDir(directory) if directory is not None else None)
        stop = [EarlyStopping(monitor="val/acc", mode="max", patience=patience)] if patience is not None else []
        with quiet():
            start = time.perf_counter()
            if cache:  # one backbone pass per image; every epoch after reads the pooled features
                splits = {name: cache_features(embed, part, datamodule.hparams.batch_size, datamodule.hparams.workers)
                          for name, part in splits.items()}
            workers = 0 if cache else datamodule.hparams.workers
            loaders = {name: probe_loader(part, batch_size, shuffle=name == "train", seed=seed, workers=workers)
                       for name, part in splits.items()}
            fit = make_trainer(trainer, progress=progress, loggers=loggers, callbacks=[*callbacks, *stop, record],
                               max_epochs=epochs, enable_checkpointing=False,
                               **({"default_root_dir": str(directory)} if directory else {}))
            fit.fit(module, loaders["train"], loaders["val"])
            module.select_best()
            fit.test(module, loaders["test"], verbose=False)
            seconds = time.perf_counter() - start
    rows = [dict(command="probe", model=backbone.name, weights=backbone.weights, dataset=data_name(data),
                 layer=layer, relative_depth=backbone.depth_of(layer), accuracy=module.results["test"][i],
                 val_acc=module.best[i][0], best_epoch=module.best[i][1], features=dims[i], pool=pool,
                 classes=datamodule.num_classes, seed=seed, epochs=fit.current_epoch, cached=bool(cache),
                 seconds=round(seconds, 3),
                 warnings=doubts.at_chance(module.results["test"][i], datamodule.num_classes,
                                               len(loaders["test"].dataset), "test accuracy"))
            for i, layer in enumerate(layers)]
    arguments = dict(model=backbone.name, weights=backbone.weights, data=data_name(data), layers=layers, pool=pool,
                     epochs=epochs, patience=patience, seed=seed)
    rows = rows if fit.is_global_zero else []
    doubts.say(rows, DegenerateWarning)
    return Probing(rows=rows, history_rows=record.rows, config=arguments,
                   probes=module)


def probe_loader(data: Dataset, batch_size: int, shuffle: bool, seed: int, workers: int) -> DataLoader:
    """Training batches in an order drawn from `seed` alone (cached or not, the same batches), the last
    incomplete one dropped (BatchNorm needs two samples); evaluation in order, every sample kept."""
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(data, batch_size=batch_size, shuffle=shuffle, drop_last=shuffle and len(data) > batch_size,
                      generator=generator, num_workers=workers, persistent_workers=workers > 0)
