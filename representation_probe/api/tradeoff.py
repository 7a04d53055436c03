"""`rp.tradeoff`: classification vs reconstruction in one shared latent (Rathjens & Wiskott, arXiv 2401.09237)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from torchvision.utils import make_grid

from representation_probe.api.data import as_datamodule, data_name
from representation_probe.api.results import Result
from representation_probe.api.runtime import Progress, checkpointing, make_trainer, public, quiet
from representation_probe.config.optimizers import optimizer_factory
from representation_probe.errors import ConfigError, DegenerateWarning
from representation_probe.metrics import doubts
from representation_probe.runs.rundir import Run, RunDir, read_png, write_png
from representation_probe.tradeoff import ARCHITECTURES, TradeoffModule, build_net
from representation_probe.training.epoch_metrics import EpochMetrics
from representation_probe.training.keep_best import KeepBest


@dataclass(repr=False)  # Result's short repr
class Tradeoff(Result):
    """One row: test accuracy, MSE (on [-1, 1] images), CE and PSNR of the epoch with the lowest validation
    objective w * MSE + (1 - w) * CE; `reconstructions` the first test images over their D(E(x))."""

    command = "tradeoff"
    metrics = ("accuracy", "mse", "ce", "psnr", "val_loss", "val_acc", "val_mse")
    conditions = ("weight", "latent")
    tensors = ("reconstructions",)

    module: TradeoffModule | None = field(default=None, repr=False)
    reconstructions: torch.Tensor | None = field(default=None, repr=False)

    def _write(self, run_dir: RunDir) -> None:
        if self.reconstructions is not None:
            write_png(run_dir.reconstructions, self.reconstructions)

    @classmethod
    def from_run(cls, run: Run) -> Tradeoff:
        """The reconstructions exactly (tensors.pt); from a run without it, as its PNG holds them."""
        if run.tensors_file.is_file():
            return super().from_run(run)
        return cls(rows=run.summaries, history_rows=run.metrics, config=run.config,
                   reconstructions=read_png(run.reconstructions))


@public
def tradeoff(data="digits", *, weight: float = 0.9, net="tradeoff_fc_medium", latent: int | None = None,
             max_steps: int = 1200, val_every: int = 30, optimizer="adam", lr: float | None = 1e-3, seed: int = 0,
             trainer=None, callbacks=(), resume=None, directory: str | Path | None = None,
             progress: Progress = False, loggers=()) -> Tradeoff:
    """Train an encoder, a decoder and a classifier on w * MSE + (1 - w) * CE; the encoder learns from both,
    each head from its own loss. The validation objective picks the step; the test split scores it.

    Args:
        data: a labelled dataset with a test split (digits: offline; a preset name, rp.dataset(...), a
            datamodule or (images, labels) tensors).
        weight: w in [0, 1] (1: only reconstruction shapes z; 0: only classification).
        net: an architecture (tradeoff_fc_small|medium|large, tradeoff_cnn_small|large) or a callable
            (input_shape, num_classes, latent) -> TradeoffNet; latent: the width (FC) or channels (CNN) of z.
        max_steps, val_every: the step budget (the original's 1,200) and how often to validate.
        trainer, callbacks, directory, progress, loggers: as in rp.decode; resume: a checkpoint.
    """
    weight = check_weight(weight)
    if isinstance(net, str):
        if net not in ARCHITECTURES:
            raise ConfigError(f"unknown trade-off net '{net}'; allowed: {', '.join(ARCHITECTURES)}")
        net = partial(build_net, net)
    L.seed_everything(seed, workers=True, verbose=False)
    datamodule = as_datamodule(data)
    datamodule.setup("fit")
    test_set = datamodule.require_test_set()
    built = net(input_shape=tuple(datamodule.train_set[0][0].shape), num_classes=datamodule.num_classes, latent=latent)
    module = TradeoffModule(built, weight, optimizer_factory(optimizer, lr))
    record, best = EpochMetrics(RunDir(directory) if directory is not None else None), KeepBest("val/loss")
    with quiet():
        fit = make_trainer(trainer, progress=progress, loggers=loggers, callbacks=[*callbacks, record, best],
                           max_epochs=-1, max_steps=max_steps, check_val_every_n_epoch=None,
                           val_check_interval=val_every, **checkpointing(callbacks, directory))
        start = time.perf_counter()
        fit.fit(module, datamodule=datamodule, ckpt_path=resume)
        checkpoint = (fit.checkpoint_callback.best_model_path if fit.checkpoint_callback else "") or None
        best.restore(module)
        val = fit.validate(module, datamodule=datamodule, verbose=False)[0]
        test = fit.test(module, datamodule=datamodule, verbose=False)[0]
        seconds = time.perf_counter() - start
    name = net.keywords.get("name", net.args[0] if net.args else "net") if isinstance(net, partial) else \
        getattr(net, "__name__", type(net).__name__)
    row = dict(command="tradeoff", model=name, dataset=data_name(data), seed=seed, weight=weight, latent=built.latent,
               latent_size=built.latent_size, accuracy=test["test/acc"], mse=test["test/mse"], ce=test["test/ce"],
               psnr=test["test/psnr"], val_loss=val["val/loss"], val_acc=val["val/acc"], val_mse=val["val/mse"],
               steps=fit.global_step, best_checkpoint=checkpoint,
               checkpoint=str(RunDir(directory).last_checkpoint) if directory is not None else None,
               resumed_from=str(resume) if resume else None, seconds=round(seconds, 3))
    row["warnings"], row["dead_units"] = _degeneracy(module, datamodule, test_set, test, record.rows)
    arguments = dict(data=data_name(data), weight=weight, net=name, latent=latent, max_steps=max_steps, seed=seed)
    rows = [row] if fit.is_global_zero else []
    doubts.say(rows, DegenerateWarning)
    return Tradeoff(rows=rows, history_rows=record.rows, config=arguments,
                    module=module, reconstructions=reconstruction_grid(module, test_set))


def _degeneracy(module: TradeoffModule, datamodule, test_set, test: dict, history: list[dict]):
    """Warnings about a collapsed run (metrics/doubts.py), and the dead units of z by index."""
    images = torch.stack([test_set[i][0] for i in range(len(test_set))])
    train = datamodule.train_set
    mean = torch.stack([train[i][0] for i in range(min(len(train), 5000))]).mean(dim=0)
    mean_mse = float(F.mse_loss((mean * 2 - 1).expand_as(images), images * 2 - 1))  # the loss's [-1, 1] scale
    module.eval()
    with torch.no_grad():
        z = torch.cat([module.net.encoder((chunk * 2 - 1).to(module.device)).cpu() for chunk in images.split(512)])
    dead = doubts.dead_units(z)
    warnings = [f"{len(dead)} of {z[0].numel()} units of z are dead or constant over the test set: {dead}"] if dead \
        else []
    warnings += doubts.loss_never_fell([r["train/loss"] for r in history if r.get("train/loss") is not None])
    warnings += doubts.at_chance(test["test/acc"], datamodule.num_classes, len(test_set), "test accuracy")
    warnings += doubts.no_better_than_mean(test["test/mse"], mean_mse, "the test reconstruction")
    return warnings, dead


def check_weight(weight) -> float:
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight <= 1:
        raise ConfigError(f"tradeoff.weight must be a number in [0, 1] (1: reconstruction only), got {weight!r}")
    return float(weight)


def reconstruction_grid(module: TradeoffModule, test_set, count: int = 8, min_side: int = 32) -> torch.Tensor:
    """The first test images over their reconstructions, enlarged (nearest) to at least `min_side` pixels."""
    images = torch.stack([test_set[i][0] for i in range(min(count, len(test_set)))])
    module.eval()
    with torch.no_grad():
        reconstructions, _ = module(images.to(module.device))
    pair = torch.cat([images, reconstructions.cpu()])
    pair = F.interpolate(pair, scale_factor=max(1, -(-min_side // pair.shape[-1])), mode="nearest")
    return make_grid(pair, nrow=len(images), padding=1, pad_value=1.0)
