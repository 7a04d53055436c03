"""ImageFolder data (ImageNet layout or any class-per-folder tree) and an offline natural-image set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Subset
from torchvision import datasets, transforms

from representation_probe.data.base import TrainValDataModule
from representation_probe.data.targets import SAMPLES, load_target
from representation_probe.errors import ConfigError


def train_transform(size: int) -> transforms.Compose:
    """Standard ImageNet training augmentation, in [0, 1] (normalisation belongs to the model)."""
    return transforms.Compose([transforms.RandomResizedCrop(size), transforms.RandomHorizontalFlip(),
                               transforms.ToTensor()])


def val_transform(size: int) -> transforms.Compose:
    return transforms.Compose([transforms.Resize(round(size * 256 / 224)), transforms.CenterCrop(size),
                               transforms.ToTensor()])


def image_folder(root: Path, transform) -> datasets.ImageFolder:
    """torchvision ImageFolder, with one clear line for a class-less or image-less root."""
    if not root.is_dir() or not any(p.is_dir() for p in root.iterdir()):
        raise ConfigError(f"{root} has no class sub-folders (expected <root>/<class>/<image> files)")
    try:
        return datasets.ImageFolder(root, transform=transform)
    except FileNotFoundError as err:
        raise ConfigError(f"no images in {root}: {err}") from None


class FolderDataModule(TrainValDataModule):
    """A class-per-folder tree: `root/train` + `root/val` (the ImageNet layout), or one tree of which
    a seeded `val_fraction` of the images is held out. With train + val, `root/test` (if any) is the
    test set."""

    def __init__(self, root: str, image_size: int = 224, batch_size: int = 64, workers: int = 4,
                 val_fraction: float = 0.1, seed: int = 0):
        super().__init__()
        self.save_hyperparameters()
        self.root = Path(root).expanduser()
        split = (self.root / "train").is_dir() and (self.root / "val").is_dir()
        self.train_root, self.val_root = (self.root / "train", self.root / "val") if split else (self.root, None)
        if not self.train_root.is_dir():
            raise ConfigError(f"dataset folder not found: {self.root} (expected <root>/<class>/<image> "
                              "files, or <root>/train and <root>/val trees)")
        self.classes = sorted(p.name for p in self.train_root.iterdir() if p.is_dir())
        if not self.classes:
            raise ConfigError(f"{self.train_root} has no class sub-folders (expected <root>/<class>/<image>)")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def setup(self, stage: str | None = None) -> None:
        size = self.hparams.image_size
        if self.val_root is not None and (self.root / "test").is_dir():  # in a single tree it is a class
            self.test_set = image_folder(self.root / "test", val_transform(size))
        train = image_folder(self.train_root, train_transform(size))
        if self.val_root is not None:
            self.train_set, self.val_set = train, image_folder(self.val_root, val_transform(size))
            if train.classes != self.val_set.classes:
                raise ConfigError(f"{self.train_root} and {self.val_root} have different class folders")
            return
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(self.hparams.seed)).tolist()
        n_val = max(1, round(len(train) * self.hparams.val_fraction))
        self.train_set = Subset(train, order[n_val:])
        self.val_set = Subset(image_folder(self.train_root, val_transform(size)), order[:n_val])


class PatchDataset(Dataset):
    """Random crops of scikit-image's sample photographs, labelled by the photograph they come from.

    A natural-image task that runs offline, to set natural-trained beside noise-trained models.
    Crop i is drawn from a generator seeded by (seed, i): deterministic on every worker and rank.
    """

    def __init__(self, count: int, image_size: int, seed: int, photos: tuple[str, ...] = SAMPLES,
                 source_size: int = 256, split: tuple[int, ...] = ()):
        """`split` extends the generator's key: the test crops, (seed, 2, i), share no stream with a
        train or val crop, (seed, i)."""
        self.count, self.size, self.key = count, image_size, (seed, *split)
        self.photos = torch.stack([load_target(name, source_size) for name in photos])

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        rng = np.random.default_rng((*self.key, index))
        label = int(rng.integers(len(self.photos)))
        top, left = rng.integers(self.photos.shape[-1] - self.size + 1, size=2).tolist()
        crop = self.photos[label, :, top : top + self.size, left : left + self.size]
        return (crop.flip(-1) if rng.random() < 0.5 else crop), label


class PatchDataModule(TrainValDataModule):
    """Crops of the bundled photographs, one class per photograph; val crops use another seed, test
    crops another key."""

    num_classes = len(SAMPLES)

    def __init__(self, count: int = 5000, val_count: int = 500, image_size: int = 64, seed: int = 0,
                 batch_size: int = 64, workers: int = 2, test_count: int = 1000):
        super().__init__()
        if not 0 < image_size <= 256:
            raise ConfigError(f"dataset.image_size must be in 1..256 for patches, got {image_size}")
        self.save_hyperparameters()

    def setup(self, stage: str | None = None) -> None:
        h = self.hparams
        self.train_set = PatchDataset(h.count, h.image_size, h.seed)
        self.val_set = PatchDataset(h.val_count, h.image_size, h.seed + 1)
        self.test_set = PatchDataset(h.test_count, h.image_size, h.seed, split=(2,))
