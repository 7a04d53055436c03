"""ClassifierModule: trains any registry model whose checkpoints the inversion then probes."""

from __future__ import annotations

from functools import partial

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from representation_probe.data.base import run_seed, seed_for
from representation_probe.models import Normalize


class ClassifierModule(L.LightningModule):
    """Cross-entropy classification; the input normalisation is part of the forward, as in probing.

    Checkpoints hold the network under `net.` (what `model.weights=<ckpt>` loads) and nothing else:
    normalisation buffers and metric states are not persistent.
    """

    def __init__(self, net: nn.Module, num_classes: int, optimizer: partial, scheduler: partial | None = None,
                 normalize: str = "none", channels_last: bool | None = None):
        """`scheduler` None or empty (conf/scheduler/none.yaml): a constant learning rate. `channels_last`
        None: on when training on a GPU (tensor cores want NHWC), off on a CPU."""
        super().__init__()
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"])
        self.net, self.optimizer_factory, self.scheduler_factory = net, optimizer, scheduler or None
        self.normalize = Normalize(normalize)
        top5 = min(5, num_classes)
        self.train_acc = MulticlassAccuracy(num_classes, top_k=1, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes, top_k=1, average="micro")
        self.val_acc5 = MulticlassAccuracy(num_classes, top_k=top5, average="micro")
        self.channels_last = channels_last

    def setup(self, stage: str) -> None:
        if self.channels_last is None:  # before the weights move: the device is the strategy's
            self.channels_last = self.trainer.strategy.root_device.type == "cuda"
        if self.channels_last:  # faster convolutions on GPUs with tensor cores
            self.net = self.net.to(memory_format=torch.channels_last)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        images = self.normalize(images)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.net(images)

    def on_train_epoch_start(self) -> None:
        """Model-side randomness (dropout, drop-path) of epoch e is drawn from (seed, e, rank), as the
        data's is (data/base.py): a resumed run repeats it exactly."""
        torch.manual_seed(seed_for(run_seed(), self.current_epoch, self.global_rank))

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        images, labels = batch
        logits = self(images)
        loss = F.cross_entropy(logits, labels)
        self.train_acc(logits, labels)
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        images, labels = batch
        logits = self(images)
        self.val_acc(logits, labels)
        self.val_acc5(logits, labels)
        self.log("val/loss", F.cross_entropy(logits, labels), sync_dist=True)
        self.log("val/acc", self.val_acc, prog_bar=True)
        self.log("val/acc5", self.val_acc5)

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(params=self.net.parameters())
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": self.scheduler_factory(optimizer=optimizer)}
