"""`train`: a classifier whose checkpoints the studies probe; a re-run in the same directory resumes."""

from __future__ import annotations

import time

import lightning as L
import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig

from representation_probe.api.runtime import StepRecorder
from representation_probe.cli.shell import arguments, build_callbacks, run_directory
from representation_probe.config.checks import integer, positive_int
from representation_probe.errors import ConfigError, DegenerateWarning
from representation_probe.metrics import doubts
from representation_probe.models.load import load
from representation_probe.models.weights import mismatch
from representation_probe.reporting import kernel_panels
from representation_probe.runs.resources import check_fits, device_of
from representation_probe.runs.rundir import RunDir, write_atomic
from representation_probe.tracking.loggers import build_loggers
from representation_probe.tracking.results import log_rows
from representation_probe.training.checkpoints import Resume, remove_untracked, resume_path
from representation_probe.training.epoch_metrics import EpochMetrics


def run(cfg: DictConfig) -> float:
    """Returns the best validation accuracy."""
    run_dir = run_directory()
    seed = integer("seed", cfg.seed, minimum=0, maximum=2**32 - 1)  # Lightning draws a random seed outside
    if cfg.trainer.get("max_epochs") is not None:  # Lightning's -1 (no end) too: a run that never ends is refused
        positive_int("trainer.max_epochs", cfg.trainer.max_epochs)
    given = [o.split("=", 1)[1] for o in HydraConfig.get().overrides.task if o.startswith("model.image_size=")]
    if given and str(cfg.dataset.get("image_size")) != given[-1]:
        raise ConfigError(f"train takes the image size from the dataset (dataset.image_size="
                          f"{cfg.dataset.get('image_size')}); pass dataset.image_size={given[-1]} instead of "
                          f"model.image_size={given[-1]}")
    resume = resume_path(cfg.ckpt_path, run_dir)
    L.seed_everything(seed, workers=True)
    datamodule = instantiate(cfg.dataset)
    if hasattr(datamodule, "skipped_file"):  # image folders list the unreadable files they skip
        datamodule.skipped_file = run_dir.skipped_files
    if datamodule.num_classes < 2:
        raise ConfigError(f"the dataset has {datamodule.num_classes} class; a classifier needs at least 2")
    if cfg.model.num_classes is not None:
        raise ConfigError(f"train takes the head's size from the dataset ({datamodule.num_classes} classes); "
                          f"remove model.num_classes={cfg.model.num_classes}")
    backbone = load(arguments(cfg.model) | dict(num_classes=datamodule.num_classes))
    check_fits(backbone.net, cfg.dataset.image_size, backbone.channels, cfg.dataset.batch_size,
               "train (dataset.image_size, dataset.batch_size)", device=device_of(cfg.trainer.get("accelerator")))
    module = instantiate(cfg.classifier, net=backbone.net, num_classes=datamodule.num_classes,
                         normalize=backbone.normalize)
    if resume.checkpoint is not None:
        _check_fits(resume, module, cfg, run_dir)
        if resume.path.parent == run_dir.checkpoints:  # one of its own: the states know its files
            remove_untracked(run_dir, list(resume.checkpoint.get("callbacks", {}).values()), keep=resume.path)
        resume.checkpoint = None  # Lightning loads it again; do not hold it twice
    run_dir.write_config(cfg)  # now: a killed run keeps it, and a resumed one is checked against it
    loggers = build_loggers(cfg, "train", tags=[cfg.model.name, f"weights:{cfg.model.weights}", "train"])
    callbacks = [*build_callbacks(cfg.get("callbacks") or {}, run_dir), EpochMetrics(run_dir),  # null: Lightning's
                 StepRecorder()]
    trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks, default_root_dir=run_dir.path)
    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume.path)
    seconds = time.perf_counter() - start
    remove_untracked(run_dir, [callback.state_dict() for callback in trainer.checkpoint_callbacks])

    metrics = {key: float(value) for key, value in trainer.callback_metrics.items()}
    checkpoint = trainer.checkpoint_callback
    best = checkpoint.best_model_score if checkpoint else None
    val_acc = float(best) if best is not None else metrics.get("val/acc", float("nan"))
    if trainer.is_global_zero:
        write_atomic(run_dir.trained_kernels, kernel_panels({f"{cfg.model.name} trained": module.net}))
        last = run_dir.last_checkpoint
        skipped = set(run_dir.skipped_files.read_text().splitlines()) if run_dir.skipped_files.is_file() else set()
        summary = dict(
            command="train", model=cfg.model.name, weights=str(cfg.model.weights), dataset=cfg.dataset._target_,
            seed=seed, val_acc=val_acc, train_acc=metrics.get("train/acc"), epochs=trainer.current_epoch,
            global_step=trainer.global_step, checkpoint=str(last) if last.is_file() else None,
            best_checkpoint=(checkpoint.best_model_path or None) if checkpoint else None,
            resumed_from=str(resume.path) if resume.path else None, unreadable_checkpoints=resume.unreadable,
            skipped_files=len(skipped), seconds=round(seconds, 3))
        losses = [row["train/loss"] for row in run_dir.read_metrics() if isinstance(row.get("train/loss"), float)]
        summary["warnings"] = [*doubts.loss_never_fell(losses),
                               *doubts.at_chance(val_acc, datamodule.num_classes, len(datamodule.val_set),
                                                     "validation accuracy")]
        doubts.say([summary], DegenerateWarning)
        run_dir.write_summary(summary)
        log_rows(loggers, "train", [summary], metrics=("val_acc", "train_acc", "epochs"))
    return val_acc


def _check_fits(resume: Resume, module: L.LightningModule, cfg: DictConfig, run_dir: RunDir) -> None:
    """A checkpoint of another model (a re-run with another model= in the same directory) is refused
    by name, before Lightning fails on its state_dict."""
    problems = mismatch(module.state_dict(), resume.checkpoint["state_dict"])
    if problems is None:
        return
    recorded = yaml.safe_load(run_dir.config_file.read_text()) if run_dir.config_file.is_file() else {}
    was = (recorded or {}).get("model", {}).get("name")
    raise ConfigError(f"{resume.path} holds {'a ' + was if was else 'another'} model that does not fit this run's "
                      f"{cfg.model.name} ({problems}); resume with the run's own model, or pass another "
                      "hydra.run.dir to start a new run")
