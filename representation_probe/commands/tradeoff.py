"""`tradeoff`: classification vs reconstruction in one shared latent (Rathjens & Wiskott, arXiv 2401.09237)."""

from __future__ import annotations

import time

import lightning as L
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig
from torchvision.utils import make_grid

from representation_probe.commands import config_choice
from representation_probe.errors import ConfigError
from representation_probe.loggers import build_loggers
from representation_probe.rundir import RunDir, write_png
from representation_probe.tradeoff import ARCHITECTURES, TradeoffModule
from representation_probe.training.epoch_metrics import EpochMetrics
from representation_probe.training.checkpoints import build_callbacks, resume_path


def run(cfg: DictConfig) -> float:
    """Train on the train split, pick the epoch by the validation objective, report on the test split.

    Returns the selected epoch's validation objective w * MSE + (1 - w) * CE.
    """
    run_dir = RunDir.current()
    weight = check_weight(cfg.tradeoff.weight)
    if cfg.model.get("name") not in ARCHITECTURES:
        raise ConfigError(f"tradeoff takes model={'|'.join(ARCHITECTURES)}, got model={cfg.model.get('name')}")
    resume = resume_path(cfg.ckpt_path, run_dir)
    L.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.dataset)
    datamodule.setup("fit")
    test_set = datamodule.require_test_set()
    net = instantiate(cfg.model, input_shape=tuple(datamodule.train_set[0][0].shape),
                      num_classes=datamodule.num_classes, latent=cfg.tradeoff.latent)
    module = TradeoffModule(net, weight, instantiate(cfg.optimizer))
    loggers = build_loggers(cfg, tags=[cfg.model.name, f"weight:{weight}", f"latent:{net.latent}", "tradeoff"])
    callbacks = [*build_callbacks(cfg.get("callbacks") or {}, run_dir), EpochMetrics(run_dir)]
    trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks, default_root_dir=run_dir.path)
    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume.path)
    checkpoint = trainer.checkpoint_callback
    best = (checkpoint.best_model_path if checkpoint else "") or None  # None: the final weights
    val = trainer.validate(module, datamodule=datamodule, ckpt_path=best, verbose=False)[0]
    test = trainer.test(module, datamodule=datamodule, ckpt_path=best, verbose=False)[0]
    seconds = time.perf_counter() - start
    if trainer.is_global_zero:
        write_png(run_dir.reconstructions, reconstruction_grid(module, test_set))
        run_dir.write_config(cfg)
        run_dir.write_summary(dict(
            command="tradeoff", model=cfg.model.name, dataset=config_choice("dataset"), seed=cfg.seed,
            weight=weight, latent=net.latent, latent_size=net.latent_size,
            accuracy=test["test/acc"], mse=test["test/mse"], ce=test["test/ce"], psnr=test["test/psnr"],
            val_loss=val["val/loss"], val_acc=val["val/acc"], val_mse=val["val/mse"], steps=trainer.global_step,
            best_checkpoint=best, checkpoint=str(run_dir.last_checkpoint),
            resumed_from=str(resume.path) if resume.path else None, seconds=round(seconds, 3)))
    return val["val/loss"]


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
