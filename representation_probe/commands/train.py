"""`train`: a classifier whose checkpoints the studies probe; a re-run in the same directory resumes."""

from __future__ import annotations

import time

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig

from representation_probe.loggers import build_loggers
from representation_probe.reporting import kernel_panels
from representation_probe.rundir import RunDir, write_atomic
from representation_probe.training.checkpoints import build_callbacks, resume_path


def run(cfg: DictConfig) -> float:
    """Returns the best validation accuracy."""
    run_dir = RunDir.current()
    resume = resume_path(cfg.ckpt_path, run_dir)
    L.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.dataset)
    backbone = instantiate(cfg.model, num_classes=datamodule.num_classes)
    module = instantiate(cfg.classifier, net=backbone.net, num_classes=datamodule.num_classes,
                         normalize=backbone.normalize)
    loggers = build_loggers(cfg, tags=[cfg.model.name, f"weights:{cfg.model.weights}", "train"])
    callbacks = build_callbacks(cfg.get("callbacks") or {}, run_dir)  # callbacks=null: Lightning's defaults
    trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks, default_root_dir=run_dir.path)
    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume)
    seconds = time.perf_counter() - start

    metrics = {key: float(value) for key, value in trainer.callback_metrics.items()}
    checkpoint = trainer.checkpoint_callback
    best = checkpoint.best_model_score if checkpoint else None
    val_acc = float(best) if best is not None else metrics.get("val/acc", float("nan"))
    if trainer.is_global_zero:
        write_atomic(run_dir.trained_kernels, kernel_panels({f"{cfg.model.name} trained": module.net}))
        run_dir.write_config(cfg)
        run_dir.write_summary(dict(
            command="train", model=cfg.model.name, weights=str(cfg.model.weights), dataset=cfg.dataset._target_,
            seed=cfg.seed, val_acc=val_acc, train_acc=metrics.get("train/acc"), epochs=trainer.current_epoch,
            global_step=trainer.global_step, checkpoint=str(run_dir.last_checkpoint),
            best_checkpoint=checkpoint.best_model_path if checkpoint else None, resumed_from=resume,
            seconds=round(seconds, 3)))
    return val_acc
