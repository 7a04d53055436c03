"""ImageFolder data (ImageNet layout or any class-per-folder tree) and an offline natural-image set."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Subset
from torchvision import datasets, transforms

from representation_probe.config.checks import choice, non_negative_int, positive_int
from representation_probe.data import decoding
from representation_probe.data.base import TrainValDataModule
from representation_probe.data.targets import SAMPLES, load_target
from representation_probe.errors import ConfigError

log = logging.getLogger(__name__)


def train_transform(size: int) -> transforms.Compose:
    """Standard ImageNet training augmentation, in [0, 1] (normalisation belongs to the model)."""
    return transforms.Compose([transforms.RandomResizedCrop(size), transforms.RandomHorizontalFlip(),
                               transforms.ToTensor()])


def val_transform(size: int) -> transforms.Compose:
    return transforms.Compose([transforms.Resize(round(size * 256 / 224)), transforms.CenterCrop(size),
                               transforms.ToTensor()])


def views(decoder: str, size: int) -> tuple:
    """(loader, training view, validation view) of a file for `decoder` (data/decoding.py)."""
    if decoder == "pil":
        return decoding.read_pil, train_transform(size), val_transform(size)
    if decoder == "torchvision":
        return decoding.read_uint8, decoding.TrainCrop(size), decoding.CenterCrop(size)
    return decoding.read_encoded, decoding.EncodedCrop(size, train=True), decoding.EncodedCrop(size, train=False)


def image_folder(root: Path, transform, skip_bad: bool = False, skipped_file: Path | None = None,
                 loader=decoding.read_pil) -> ImageFiles:
    """The class-per-folder tree under `root`, with one clear line for a class-less or image-less root."""
    if not root.is_dir() or not any(p.is_dir() for p in root.iterdir()):
        raise ConfigError(f"{root} has no class sub-folders (expected <root>/<class>/<image> files)")
    try:
        return ImageFiles(root, transform=transform, skip_bad=skip_bad, skipped_file=skipped_file, loader=loader)
    except FileNotFoundError as err:
        raise ConfigError(f"no images in {root}: {err}") from None


class ImageFiles(datasets.ImageFolder):
    """torchvision's ImageFolder that names an unreadable image file instead of failing somewhere in a worker.

    With `skip_bad`, an unreadable file is logged, appended to `skipped_file`, and the next readable
    image of the folder is served in its place (batches keep their size, DDP ranks stay in step).
    """

    def __init__(self, root: Path, transform, skip_bad: bool = False, skipped_file: Path | None = None,
                 loader=decoding.read_pil):
        super().__init__(root, transform=transform, loader=loader)
        self.skip_bad, self.skipped_file = skip_bad, skipped_file

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        for offset in range(len(self.samples)):
            path, label = self.samples[(index + offset) % len(self.samples)]
            try:
                image = self.loader(path)
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:  # PIL's for corrupt,
                # truncated or absurdly large (a header claiming billions of pixels) files
                why = f"{type(err).__name__}: {err}".splitlines()[0]
                if not self.skip_bad:
                    raise ConfigError(f"cannot read image {path} ({why}); fix or remove it, or pass "
                                      "dataset.skip_bad=true to skip unreadable files") from None
                self._skip(path, why)
                continue
            return self.transform(image), label
        raise ConfigError(f"no readable image in {self.root} (dataset.skip_bad=true skipped them all)")

    def _skip(self, path: str, why: str) -> None:
        log.warning("skipped unreadable image %s (%s)", path, why)
        if self.skipped_file is not None:  # O_APPEND: whole lines, also from several workers and ranks
            with open(self.skipped_file, "a") as file:
                file.write(f"{path}\n")


class FolderDataModule(TrainValDataModule):
    """A class-per-folder tree: `root/train` + `root/val` (the ImageNet layout), or one tree of which
    a seeded `val_fraction` of the images is held out. With train + val, `root/test` (if any) is the
    test set.

    Args:
        layout: `auto` takes either; `split` insists on train/ and val/ (dataset=imagenet).
        skip_bad: skip unreadable image files (logged, listed in <run dir>/skipped_files.txt and
            counted in summary.json) instead of stopping at the first one.
        decoder: torchvision (libjpeg-turbo into uint8 tensors), pil, or nvjpeg (decoded in batches on the
            training device); the same crops from the same seed (data/decoding.py).
    """

    skipped_file: Path | None = None  # where skipped files are listed; the training command sets it
    augmented = True  # train_transform: a random crop and flip of each image every epoch

    def __init__(self, root: str, image_size: int = 224, batch_size: int = 64, workers: int = 4,
                 val_fraction: float = 0.1, seed: int = 0, layout: str = "auto", skip_bad: bool = False,
                 decoder: str = "torchvision"):
        super().__init__()
        choice("dataset.decoder", decoder, decoding.DECODERS)
        self.collate_fn = decoding.collate_encoded if decoder == "nvjpeg" else None
        positive_int("dataset.image_size", image_size)
        positive_int("dataset.batch_size", batch_size)
        non_negative_int("dataset.workers", workers)
        choice("dataset.layout", layout, ("auto", "split"))
        if not 0 < val_fraction < 1:
            raise ConfigError(f"dataset.val_fraction must be between 0 and 1, got {val_fraction!r}")
        self.save_hyperparameters()
        self.root = Path(root).expanduser()
        split = (self.root / "train").is_dir() and (self.root / "val").is_dir()
        if layout == "split" and not split:
            raise ConfigError(f"this dataset expects {self.root}/train/<class>/ and {self.root}/val/<class>/, "
                              f"which {self.root} does not have (dataset=folder takes a single "
                              "<root>/<class>/<image> tree)")
        self.train_root, self.val_root = (self.root / "train", self.root / "val") if split else (self.root, None)
        if not self.train_root.is_dir():
            raise ConfigError(f"dataset folder not found: {self.root} (expected <root>/<class>/<image> "
                              "files, or <root>/train and <root>/val trees)")
        self.classes = sorted(p.name for p in self.train_root.iterdir() if p.is_dir())
        if len(self.classes) < 2:
            found = f"only {self.classes[0]}/" if self.classes else "no class sub-folders"
            raise ConfigError(f"{self.train_root} has {found}; a classifier needs at least 2 class folders "
                              "(<root>/<class>/<image>)")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def setup(self, stage: str | None = None) -> None:
        h = self.hparams
        loader, train_view, val_view = views(h.decoder, h.image_size)
        folder = functools.partial(image_folder, skip_bad=h.skip_bad, skipped_file=self.skipped_file, loader=loader)
        train = folder(self.train_root, train_view)
        if self.val_root is not None and (self.root / "test").is_dir():  # in a single tree it is a class
            self.test_set = folder(self.root / "test", val_view)
        if self.val_root is not None:
            self.train_set, self.val_set = train, folder(self.val_root, val_view)
            if train.classes != self.val_set.classes:
                raise ConfigError(f"{self.train_root} and {self.val_root} have different class folders")
            return
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(h.seed)).tolist()
        n_val = max(1, round(len(train) * h.val_fraction))
        self.train_set = Subset(train, order[n_val:])
        self.val_set = Subset(folder(self.train_root, val_view), order[:n_val])

    def on_before_batch_transfer(self, batch, dataloader_idx: int):
        """nvjpeg: the batch's files decoded, cropped and flipped on the training device, in one call."""
        if self.hparams.decoder != "nvjpeg":
            return batch
        return decoding.decode_batch(batch, self.trainer.strategy.root_device if self.trainer else torch.device("cpu"))


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
        for name, value in (("count", count), ("val_count", val_count), ("batch_size", batch_size)):
            positive_int(f"dataset.{name}", value)
        non_negative_int("dataset.workers", workers)
        if positive_int("dataset.image_size", image_size) > 256:
            raise ConfigError(f"dataset.image_size must be in 1..256 for patches, got {image_size}")
        self.save_hyperparameters()

    def setup(self, stage: str | None = None) -> None:
        h = self.hparams
        self.train_set = PatchDataset(h.count, h.image_size, h.seed)
        self.val_set = PatchDataset(h.val_count, h.image_size, h.seed + 1)
        self.test_set = PatchDataset(h.test_count, h.image_size, h.seed, split=(2,))
