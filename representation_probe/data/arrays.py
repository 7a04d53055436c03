"""Small labelled image sets held in memory: scikit-learn's digits (ships offline) and MNIST,
FashionMNIST and CIFAR-10 from a local torchvision root (never downloaded)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Subset
from torchvision import datasets

from representation_probe.data.base import TrainValDataModule
from representation_probe.errors import ConfigError

TORCHVISION_SETS = {"mnist": datasets.MNIST, "fashion_mnist": datasets.FashionMNIST, "cifar10": datasets.CIFAR10}


class ArrayDataset(Dataset):
    """Images (N, C, H, W) of integers, served as floats in [0, 1] (`scale` maps the integers there),
    optionally resized to `image_size` (bilinear) and grey repeated to `channels` = 3 (for RGB models)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, scale: float, image_size: int | None = None,
                 channels: int | None = None):
        self.images, self.labels, self.scale = images, labels, scale
        self.size, self.channels = image_size, channels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, int]]:
        """A whole batch in a few tensor ops (the DataLoader asks for batches through this)."""
        images = self.images[indices].float() * self.scale
        if self.size is not None and images.shape[-1] != self.size:
            images = F.interpolate(images, size=(self.size, self.size), mode="bilinear", align_corners=False,
                                   antialias=True).clamp(0, 1)
        if self.channels is not None and images.shape[1] != self.channels:
            images = images.expand(-1, self.channels, -1, -1)
        return list(zip(images, self.labels[indices].tolist()))


class ArrayDataModule(TrainValDataModule):
    """Shared by the in-memory sets: the served size and channels (None: the data's own)."""

    num_classes = 10

    def _check_view(self) -> None:
        size, channels = self.hparams.image_size, self.hparams.channels
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size <= 0):
            raise ConfigError(f"dataset.image_size must be a positive integer or null, got {size!r}")
        if channels not in (None, 1, 3):
            raise ConfigError(f"dataset.channels must be 1, 3 or null (the data's own), got {channels!r}")

    def _dataset(self, images: torch.Tensor, labels: torch.Tensor, scale: float) -> ArrayDataset:
        return ArrayDataset(images, labels, scale, self.hparams.image_size, self.hparams.channels)


class DigitsDataModule(ArrayDataModule):
    """scikit-learn's 1,797 8x8 grey digits (values 0..16), split with stratification by `seed` into
    test (`test_fraction`), val (`val_fraction` of all) and train."""

    def __init__(self, val_fraction: float = 0.1, test_fraction: float = 0.2, seed: int = 0,
                 batch_size: int = 512, workers: int = 0, image_size: int | None = None,
                 channels: int | None = None):
        super().__init__()
        self.save_hyperparameters()
        self._check_view()
        if not (0 < val_fraction and 0 < test_fraction and val_fraction + test_fraction < 1):
            raise ConfigError(f"dataset.val_fraction ({val_fraction}) and test_fraction ({test_fraction}) must be "
                              "positive with a sum below 1")

    def setup(self, stage: str | None = None) -> None:
        from sklearn.datasets import load_digits  # here: scikit-learn takes a second to import
        from sklearn.model_selection import train_test_split

        digits = load_digits()
        images = torch.from_numpy(digits.images.astype(np.uint8)).unsqueeze(1)
        labels = torch.from_numpy(digits.target)
        h = self.hparams
        index = np.arange(len(labels))
        rest, test = train_test_split(index, test_size=h.test_fraction, stratify=digits.target, random_state=h.seed)
        train, val = train_test_split(rest, test_size=h.val_fraction / (1 - h.test_fraction),
                                      stratify=digits.target[rest], random_state=h.seed)
        full = self._dataset(images, labels, scale=1 / 16)
        self.train_set, self.val_set, self.test_set = (Subset(full, ids.tolist()) for ids in (train, val, test))


class TorchvisionDataModule(ArrayDataModule):
    """MNIST, FashionMNIST or CIFAR-10 from torchvision's files under `root` (download=False): the
    official test set, and a seeded `val_count` images of the training set held out for model selection."""

    def __init__(self, name: str, root: str, val_count: int = 5000, seed: int = 0, batch_size: int = 512,
                 workers: int = 0, image_size: int | None = None, channels: int | None = None):
        super().__init__()
        if name not in TORCHVISION_SETS:
            raise ConfigError(f"unknown torchvision dataset '{name}'; allowed: {', '.join(TORCHVISION_SETS)}")
        self.save_hyperparameters()
        self._check_view()
        self.root = Path(root).expanduser()
        missing = missing_files(name, self.root)
        if missing:
            raise ConfigError(missing)

    def setup(self, stage: str | None = None) -> None:
        h = self.hparams
        kind = TORCHVISION_SETS[h.name]
        try:
            train, test = (kind(str(self.root), train=split, download=False) for split in (True, False))
        except RuntimeError as err:  # present but corrupt (CIFAR-10's files are checked against their md5)
            raise ConfigError(f"cannot read {kind.__name__} under {self.root}: {err}") from None
        order = torch.randperm(len(train.targets), generator=torch.Generator().manual_seed(h.seed)).tolist()
        if not 0 < h.val_count < len(order):
            raise ConfigError(f"dataset.val_count must be in 1..{len(order) - 1}, got {h.val_count}")
        full = self._dataset(_images(train.data), torch.as_tensor(train.targets), scale=1 / 255)
        self.train_set, self.val_set = Subset(full, order[h.val_count:]), Subset(full, order[: h.val_count])
        self.test_set = self._dataset(_images(test.data), torch.as_tensor(test.targets), scale=1 / 255)


def _images(data) -> torch.Tensor:
    """torchvision's uint8 arrays, (N, H, W) for MNIST or (N, H, W, 3) for CIFAR, as (N, C, H, W)."""
    data = torch.as_tensor(data)
    return data.unsqueeze(1) if data.ndim == 3 else data.permute(0, 3, 1, 2).contiguous()


def missing_files(name: str, root: Path) -> str | None:
    """None if torchvision finds the set under root, else one line naming the files and where they go."""
    kind = TORCHVISION_SETS[name]
    if kind is datasets.CIFAR10:
        folder = root / kind.base_folder
        files = [file for file, _ in kind.train_list + kind.test_list] + [kind.meta["filename"]]
        source = "the extracted cifar-10-python.tar.gz"
    else:  # MNIST and FashionMNIST read the unpacked idx files from <root>/<class name>/raw
        folder = root / kind.__name__ / "raw"
        files = [os.path.splitext(os.path.basename(url))[0] for url, _ in kind.resources]
        source = "the unpacked .gz files"
    absent = [file for file in files if not (folder / file).is_file()]
    if not absent:
        return None
    partly = f" (missing: {', '.join(absent)})" if len(absent) < len(files) else ""
    return (f"{kind.__name__} not found under dataset.root={root}: put {', '.join(files)} ({source}) in {folder}/"
            f"{partly}; nothing is downloaded")
