"""The folder pipeline's decoders (dataset.decoder): torchvision.io and nvjpeg give PIL's crops, from the same
seed; the studies refuse the batched device decoder in one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as photos

import representation_probe as rp
from representation_probe import ConfigError
from representation_probe.data import FolderDataModule
from representation_probe.data.base import Seeded
from representation_probe.data.decoding import collate_encoded, decode_batch

SIZE = 48


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Two classes of JPEGs (and a PNG: torchvision.io reads it too) in ImageNet's layout."""
    root = tmp_path_factory.mktemp("imagenet_like")
    rng = np.random.default_rng(0)
    for split, count in (("train", 6), ("val", 2)):
        for name in ("astronaut", "coffee"):
            (root / split / name).mkdir(parents=True)
            photo = getattr(photos, name)()
            for i in range(count):
                top, left = rng.integers(0, 200, size=2)
                crop = Image.fromarray(photo[top:top + 300, left:left + 400]).resize((200, 150))
                crop.save(root / split / name / (f"{i}.png" if i == 5 else f"{i}.jpg"), quality=90)
    return root


def views(folder, decoder: str, split: str) -> torch.Tensor:
    module = FolderDataModule(str(folder), image_size=SIZE, batch_size=4, workers=0, decoder=decoder)
    module.setup()
    data = module.train_set if split == "train" else module.val_set
    items = [Seeded(data, 0)[(0, i)] if split == "train" else data[i] for i in range(len(data))]
    if decoder == "nvjpeg":  # the encoded files batched, decoded where the trainer computes (here the CPU)
        images, labels = decode_batch(collate_encoded(items), torch.device("cpu"))
    else:
        images, labels = torch.stack([image for image, _ in items]), torch.tensor([label for _, label in items])
    assert labels.tolist() == [label for _, label in data.samples]
    return images


@pytest.mark.parametrize("split", ["train", "val"])
def test_every_decoder_makes_the_same_crops_from_the_same_seed(folder, split):
    pil, ours, batched = (views(folder, decoder, split) for decoder in ("pil", "torchvision", "nvjpeg"))
    assert pil.shape == ours.shape == (len(pil), 3, SIZE, SIZE) and pil.dtype == ours.dtype == torch.float32
    # the same crops and flips (random for training): uint8 and PIL resampling differ by a level at most
    assert (pil - ours).abs().max() <= 1 / 255 + 1e-6 and (pil - ours).abs().mean() < 1e-3
    assert torch.equal(batched, ours)  # the device decoder runs the same code on the same draws


def test_another_epoch_draws_other_crops(folder):
    module = FolderDataModule(str(folder), image_size=SIZE, workers=0)
    module.setup()
    seeded = Seeded(module.train_set, 0)
    assert not torch.equal(seeded[(0, 0)][0], seeded[(1, 0)][0])
    assert torch.equal(seeded[(0, 0)][0], seeded[(0, 0)][0])


def test_the_studies_refuse_the_batched_device_decoder_in_one_line(folder):
    with pytest.raises(ConfigError, match="dataset.decoder=nvjpeg decodes training batches"):
        rp.probe("resnet10", rp.dataset("folder", root=str(folder), decoder="nvjpeg"), epochs=1)
    with pytest.raises(ConfigError, match="dataset.decoder must be one of torchvision, pil, nvjpeg"):
        FolderDataModule(str(folder), decoder="opencv")
