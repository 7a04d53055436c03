"""Images a user holds in memory, as a datamodule: a seeded split into train, val and test."""

from __future__ import annotations

import torch
from torch.utils.data import Subset, TensorDataset

from representation_probe.config.checks import positive_int
from representation_probe.data.base import TrainValDataModule
from representation_probe.errors import ConfigError


class TensorDataModule(TrainValDataModule):
    """(N, C, H, W) float images in [0, 1] and N integer labels (none: all 0, for studies without classes),
    shuffled by `seed` and split: `val_fraction` and `test_fraction` of them, the rest for training."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | None = None, val_fraction: float = 0.2,
                 test_fraction: float = 0.2, seed: int = 0, batch_size: int = 64, workers: int = 0):
        super().__init__()
        if not isinstance(images, torch.Tensor) or images.ndim != 4:
            shape = getattr(images, "shape", images)
            raise ConfigError(f"images for a study are one (N, C, H, W) tensor, got {shape!r}")
        labels = torch.zeros(len(images), dtype=torch.long) if labels is None else torch.as_tensor(labels).long()
        if len(labels) != len(images):
            raise ConfigError(f"{len(images)} images but {len(labels)} labels")
        val, test = round(len(images) * val_fraction), round(len(images) * test_fraction)
        if min(val, test) < 1 or val + test >= len(images):
            raise ConfigError(f"{len(images)} images cannot be split into train, val ({val_fraction}) and test "
                              f"({test_fraction}) parts of at least one image each")
        positive_int("batch_size", batch_size)
        self.save_hyperparameters(ignore=["images", "labels"])
        self.dataset = TensorDataset(images.float(), labels)
        self.num_classes = int(labels.max()) + 1
        self.split = (val, test)

    def setup(self, stage: str | None = None) -> None:
        order = torch.randperm(len(self.dataset), generator=torch.Generator().manual_seed(self.hparams.seed)).tolist()
        val, test = self.split
        self.val_set = Subset(self.dataset, order[:val])
        self.test_set = Subset(self.dataset, order[val : val + test])
        self.train_set = Subset(self.dataset, order[val + test :])
