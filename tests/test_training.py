"""Training: the noise set, image folders, memorisation, DDP on CPU, probing checkpoints (kill-and-resume:
test_resume.py)."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import lightning as L
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, DistributedSampler

from representation_probe import ConfigError
from representation_probe.data import FolderDataModule, NoiseDataset
from representation_probe.models import create_model
from representation_probe.training import ClassifierModule

REPO = Path(__file__).resolve().parents[1]
TINY = ["model=resnet10", "logger=csv", "dataset.workers=0", "optimizer=adam", "optimizer.lr=1e-3", "scheduler=none"]


def noise(seed=0, split="train", count=40, size=8):
    return NoiseDataset(count, classes=10, image_size=size, mean=0.5, std=1 / 3, seed=seed, split=split)


def test_noise_is_a_function_of_seed_and_index():
    a, b = noise(), noise()
    assert torch.equal(a[7][0], b[7][0]) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a[7][0], a[8][0])
    assert not torch.equal(a[7][0], noise(seed=1)[7][0])
    assert not torch.equal(a[7][0], noise(split="val")[7][0])  # held-out noise is fresh
    images = torch.stack([a[i][0] for i in range(len(a))])
    assert abs(images.mean() - 0.5) < 0.02 and abs(images.std() - 1 / 3) < 0.02


def test_noise_is_the_same_on_every_worker_and_rank():
    data = noise()
    serial = torch.cat([x for x, _ in DataLoader(data, batch_size=8)])
    workers = torch.cat([x for x, _ in DataLoader(data, batch_size=8, num_workers=2)])
    assert torch.equal(serial, workers)
    shards = [list(DistributedSampler(data, num_replicas=2, rank=r, shuffle=True, seed=3)) for r in (0, 1)]
    assert not set(shards[0]) & set(shards[1]) and len(shards[0]) + len(shards[1]) == len(data)
    for rank, shard in enumerate(shards):  # what a rank loads is exactly the shared set's item
        rank_view = noise()
        assert all(torch.equal(rank_view[i][0], serial[i]) for i in shard)


def write_folder(root: Path, classes=("red", "green", "blue"), per_class=6) -> None:
    colors = {"red": (200, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 200)}
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.new("RGB", (40, 36), tuple(c + 5 * i for c in colors[name])).save(root / name / f"{i}.png")


def test_image_folder_layouts_and_errors(tmp_path):
    write_folder(tmp_path / "imagenet" / "train")
    write_folder(tmp_path / "imagenet" / "val", per_class=2)
    split = FolderDataModule(str(tmp_path / "imagenet"), image_size=16, batch_size=4, workers=0)
    split.setup()
    assert split.num_classes == 3 and len(split.train_set) == 18 and len(split.val_set) == 6
    image, label = split.val_set[0]
    assert image.shape == (3, 16, 16) and 0 <= image.min() and image.max() <= 1 and label == 0
    write_folder(tmp_path / "flat")
    flat = FolderDataModule(str(tmp_path / "flat"), image_size=16, workers=0, val_fraction=0.25)
    flat.setup()
    assert len(flat.train_set) + len(flat.val_set) == 18 and len(flat.val_set) == 4
    with pytest.raises(ConfigError, match="not found"):
        FolderDataModule(str(tmp_path / "missing"))
    (tmp_path / "no_classes").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "no_classes" / "x.png")
    with pytest.raises(ConfigError, match="no class sub-folders"):
        FolderDataModule(str(tmp_path / "no_classes"))


@pytest.mark.slow
def test_imagenet_layout_trains_and_its_checkpoint_is_probed(run_task, tmp_path):
    write_folder(tmp_path / "imagenet" / "train")
    write_folder(tmp_path / "imagenet" / "val", per_class=2)
    val_acc, run_dir = run_task("train", [*TINY, "dataset=imagenet", f"dataset.root={tmp_path / 'imagenet'}",
                                          "dataset.image_size=16", "dataset.batch_size=6", "trainer.max_epochs=2"])
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["epochs"] == 2 and 0 <= val_acc <= 1 and summary["val_acc"] == val_acc
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    assert ckpt.is_file() and (run_dir / "images" / "conv1_kernels.png").is_file()

    probed = create_model("resnet", "resnet10", weights=str(ckpt), image_size=16)
    trained = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    assert probed.net.fc.out_features == 3  # the head size comes from the checkpoint
    assert torch.equal(probed.net.layer4[0].conv2.weight, trained["net.layer4.0.conv2.weight"])
    assert not any(p.requires_grad for p in probed.net.parameters())
    m_g, inv_dir = run_task("invert", ["model=resnet10", f"model.weights={ckpt}", "model.image_size=16",
                                       "layers=conv3", "inversion.steps=3", "logger=csv"])
    assert json.loads((inv_dir / "summary.json").read_text())["weights"] == str(ckpt)
    with pytest.raises(ConfigError, match="do not fit resnet18"):
        create_model("resnet", "resnet18", weights=str(ckpt))


@pytest.mark.parametrize("asked, used", [(None, False), (True, True)], ids=["auto", "asked"])
def test_channels_last_is_for_gpus_unless_asked_for(asked, used):
    net = create_model("resnet", "resnet10", image_size=16, num_classes=3, trainable=True).net
    module = ClassifierModule(net, 3, partial(torch.optim.SGD, lr=0.01), channels_last=asked)
    batches = [(torch.rand(2, 3, 16, 16), torch.tensor([0, 1]))]
    L.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False).fit(module, DataLoader(batches, batch_size=None))
    assert module.channels_last is used  # None on a CPU: off
    assert module.net.conv1.weight.is_contiguous(memory_format=torch.channels_last) is used


@pytest.mark.slow
def test_a_small_resnet_memorises_noise_but_does_not_generalise(run_task):
    """The paper's memorisation claim at small scale: 200 noise images, 100 random labels."""
    _, run_dir = run_task("train", [*TINY, "dataset.count=200", "dataset.val_count=200", "dataset.image_size=32",
                                    "dataset.batch_size=50", "trainer.max_epochs=12"])
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["global_step"] == 12 * 4
    assert summary["train_acc"] >= 0.9
    assert summary["val_acc"] <= 0.08  # fresh noise: chance is 0.01


def test_a_set_that_draws_nothing_is_served_a_batch_at_a_time_with_the_same_items():
    from torch.utils.data import Subset

    from representation_probe.data.arrays import ArrayDataset
    from representation_probe.data.base import Seeded

    images = torch.randint(0, 17, (30, 1, 8, 8), generator=torch.Generator().manual_seed(0))
    subset = Subset(ArrayDataset(images, torch.arange(30) % 10, scale=1 / 16, image_size=12, channels=3), range(5, 25))
    keys = [(3, i) for i in (7, 0, 19, 4)]
    per_item = [Seeded(subset, seed=1)[key] for key in keys]
    batched = Seeded(subset, seed=1, draws=False).__getitems__(keys)
    assert [label for _, label in batched] == [label for _, label in per_item]
    assert all(torch.equal(a, b) for (a, _), (b, _) in zip(batched, per_item))
