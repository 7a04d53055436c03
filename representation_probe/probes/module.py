"""LinearProbes: a linear classifier on each layer's frozen embedding (Alain & Bengio 2016), side by side."""

from __future__ import annotations

import copy
from functools import partial

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from representation_probe.probes.features import PooledFeatures

STAGES = ("val", "test")


class LinearProbes(L.LightningModule):
    """One linear head per layer, all trained at once on batches that hold every layer's features.

    The loss is the sum of the heads' cross-entropies: no parameter is shared, so each head learns as it
    would alone (Adam keeps its state per parameter). A head's input is standardised by a BatchNorm
    without affine parameters (as MAE's linear probing): a fixed affine map at test time, so still a
    linear classifier, and one learning rate suits layers of very different scales.
    Model selection per layer: each head keeps its weights from the epoch of its best validation
    accuracy; `select_best()` loads them before testing.

    Batches are (images, labels) when `embed` runs the backbone in the step, or (features of layer 1,
    ..., labels) from `cache_features` when `embed` is None.
    """

    def __init__(self, layers: list[str], dims: list[int], num_classes: int, optimizer: partial,
                 embed: PooledFeatures | None = None):
        super().__init__()
        self.save_hyperparameters(ignore=["optimizer", "embed"])
        self.layers, self.embed, self.optimizer_factory = list(layers), embed, optimizer
        self.heads = nn.ModuleList(nn.Sequential(nn.BatchNorm1d(dim, affine=False), nn.Linear(dim, num_classes))
                                   for dim in dims)
        self.accuracy = nn.ModuleDict({stage: nn.ModuleList(MulticlassAccuracy(num_classes, average="micro")
                                                            for _ in layers) for stage in STAGES})
        self.best: list[tuple[float, int, dict | None]] = [(-1.0, -1, None) for _ in layers]  # acc, epoch, weights
        self.results: dict[str, list[float]] = {}  # stage -> accuracy per layer, of the last evaluation

    def features(self, batch) -> tuple[list[torch.Tensor], torch.Tensor]:
        *inputs, labels = batch
        return (self.embed(inputs[0]) if self.embed is not None else inputs), labels

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        features, labels = self.features(batch)
        loss = sum(F.cross_entropy(head(x), labels) for head, x in zip(self.heads, features))
        self.log("train/loss", loss / len(self.heads), prog_bar=True)  # the heads' mean
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        self._update("val", batch)

    def test_step(self, batch, batch_idx: int) -> None:
        self._update("test", batch)

    def _update(self, stage: str, batch) -> None:
        features, labels = self.features(batch)
        for metric, head, x in zip(self.accuracy[stage], self.heads, features):
            metric.update(head(x), labels)

    def on_validation_epoch_end(self) -> None:
        accuracies = self._complete("val")
        if self.trainer.sanity_checking:
            return
        for i, accuracy in enumerate(accuracies):
            if accuracy > self.best[i][0]:
                self.best[i] = (accuracy, self.current_epoch, copy.deepcopy(self.heads[i].state_dict()))

    def on_test_epoch_end(self) -> None:
        self._complete("test")

    def _complete(self, stage: str) -> list[float]:
        """Each head's accuracy over the whole split (torchmetrics: exact, synchronised across ranks)."""
        accuracies = [float(metric.compute()) for metric in self.accuracy[stage]]
        for metric in self.accuracy[stage]:
            metric.reset()
        for layer, accuracy in zip(self.layers if len(self.layers) > 1 else (), accuracies):  # what varies only
            self.log(f"{stage}/acc/{layer}", accuracy)
        self.log(f"{stage}/acc", sum(accuracies) / len(accuracies), prog_bar=True)  # early stopping watches it
        self.results[stage] = accuracies
        return accuracies

    def select_best(self) -> None:
        """Every head back to the weights of its best validation epoch."""
        for head, (_, _, state) in zip(self.heads, self.best):
            if state is not None:
                head.load_state_dict(state)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer_factory(params=self.heads.parameters())
