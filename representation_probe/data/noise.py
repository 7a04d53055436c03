"""The paper's noise task: 10k images of Gaussian noise with random labels, generated on the fly.

Image i of a split is drawn from a generator seeded by (seed, split, i), so every worker, rank and
re-run sees the same images without storing them (10k x 3 x 224 x 224 floats would be 6 GB).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from representation_probe.config.checks import non_negative_int, number, positive_int
from representation_probe.data.base import TrainValDataModule

SPLITS = {"train": 0, "val": 1, "test": 2}


class NoiseDataset(Dataset):
    """`count` images ~ N(mean, std) of size (3, image_size, image_size), labels uniform over classes."""

    def __init__(self, count: int, classes: int, image_size: int, mean: float, std: float, seed: int,
                 split: str = "train"):
        self.count, self.image_size, self.mean, self.std = count, image_size, mean, std
        self.key = (seed, SPLITS[split])
        self.labels = torch.from_numpy(np.random.default_rng(self.key).integers(classes, size=count))

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        # numpy's SeedSequence mixes the whole (seed, split, index) tuple: no two images share a stream
        # (torch.Generator.manual_seed would keep only 32 bits of a combined key).
        rng = np.random.default_rng((*self.key, index))
        size = self.image_size
        image = rng.standard_normal((3, size, size), dtype=np.float32) * self.std + self.mean
        return torch.from_numpy(image), int(self.labels[index])


class NoiseDataModule(TrainValDataModule):
    """Train on memorisable noise; validate on fresh noise of the same law (accuracy stays at chance)."""

    def __init__(self, count: int = 10_000, val_count: int = 1000, classes: int = 100, image_size: int = 224,
                 mean: float = 0.5, std: float = 1 / 3, seed: int = 0, batch_size: int = 64, workers: int = 2,
                 test_count: int = 1000):
        super().__init__()
        for name, value in (("count", count), ("val_count", val_count), ("classes", classes),
                            ("image_size", image_size), ("batch_size", batch_size)):
            positive_int(f"dataset.{name}", value)
        non_negative_int("dataset.workers", workers)
        number("dataset.mean", mean)
        number("dataset.std", std, positive=True)
        self.save_hyperparameters()
        self.num_classes = classes

    def setup(self, stage: str | None = None) -> None:
        h = self.hparams
        law = dict(classes=h.classes, image_size=h.image_size, mean=h.mean, std=h.std, seed=h.seed)
        self.train_set = NoiseDataset(h.count, split="train", **law)
        self.val_set = NoiseDataset(h.val_count, split="val", **law)
        self.test_set = NoiseDataset(h.test_count, split="test", **law)

