"""Cached embeddings for decoders (`decode.cache`): the same training as running the backbone in every step,
and refused, in one line, where a cache would not be what training sees or would not fit."""

import json
import logging

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import TensorDataset

from representation_probe.data import DigitsDataModule, FolderDataModule, NoiseDataModule, PatchDataModule
from representation_probe.data.base import Seeded
from representation_probe.models import cache_features
from representation_probe.runs.rundir import read_run

from .conftest import error_lines
from .test_training import write_folder

DECODE = ["model=resnet10", "logger=csv", "decode.layers=[conv1,conv3]", "decode.mode=chained", "decode.inversion=null",
          "eval_images=[]", "decode.colour_images=0", "trainer.max_epochs=2", "decode.width=16",
          "decode.min_width=8"]
PATCHES = ["dataset=patches", "dataset.image_size=16", "dataset.count=32", "dataset.val_count=16",
           "dataset.batch_size=8", "dataset.workers=0"]


def decode(run_task, *overrides: str) -> tuple[dict, dict, list[dict]]:
    """A tiny chained decode run: held-out rows by layer, the last epoch's weights, each epoch's losses."""
    _, run_dir = run_task("decode", [*DECODE, *PATCHES, *overrides])
    rows = {r["layer"]: r for r in json.loads((run_dir / "summary.json").read_text())}
    weights = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    epochs = [{key: value for key, value in row.items() if "/" in key} for row in read_run(run_dir).metrics]
    return rows, weights, epochs


@pytest.mark.slow
def test_cached_embeddings_train_the_same_decoders_as_running_the_backbone_every_step(run_task):
    live, live_weights, live_losses = decode(run_task, "decode.cache=false")
    exact, exact_weights, exact_losses = decode(run_task, "decode.cache=true", "decode.cache_dtype=float32")
    half, half_weights, half_losses = decode(run_task, "decode.cache=true", "decode.cache_dtype=float16")
    assert [r["cached"] for r in (*live.values(), *exact.values(), *half.values())] == [False] * 2 + [True] * 4
    assert len(live_losses) == 2 and any(key.startswith("train/stage/") for key in live_losses[0])  # chained
    # float32: the same batches in the same order, the same embeddings (the backbone's forward of an image does
    # not depend on the rest of its batch), hence the same decoders
    torch.testing.assert_close(exact_weights, live_weights, rtol=1e-5, atol=1e-6)
    for a, b in zip(exact_losses, live_losses):
        assert a == pytest.approx(b, rel=1e-5)
    # float16: embeddings rounded to ~3 significant digits move all the weights together by < 1% (relative L2;
    # a bias before a BatchNorm, which barely trains, moves further alone), the losses by < 1% and the held-out
    # PSNR by < 0.05 dB
    names = [name for name, weight in live_weights.items() if weight.is_floating_point()]
    live_all, half_all = (torch.cat([weights[name].flatten() for name in names]) for weights in (live_weights,
                                                                                                  half_weights))
    assert (half_all - live_all).norm() < 1e-2 * live_all.norm()
    for a, b in zip(half_losses, live_losses):
        assert a == pytest.approx(b, rel=1e-2)
    for layer, row in live.items():
        assert abs(half[layer]["psnr"] - row["psnr"]) < 0.05 and abs(exact[layer]["psnr"] - row["psnr"]) < 1e-4


def test_cached_training_batches_come_in_the_uncached_order_every_epoch():
    data = PatchDataModule(count=24, val_count=4, image_size=8, batch_size=5, workers=0)
    data.setup()
    cached = cache_features(lambda images: [images.mean(dim=(2, 3))], data.train_set, batch_size=7,
                            keep_images=True)
    assert isinstance(cached, TensorDataset) and cached.tensors[1].shape == (24, 3)
    for epoch in (0, 1):
        live, stored = data.train_dataloader(), data.epoch_loader(cached, workers=0)
        live.sampler.set_epoch(epoch), stored.sampler.set_epoch(epoch)
        pairs = list(zip(live, stored, strict=True))
        for (images, labels), (cached_images, means, cached_labels) in pairs:
            assert torch.equal(images, cached_images) and torch.equal(labels, cached_labels)
            torch.testing.assert_close(means, images.mean(dim=(2, 3)))
    assert not torch.equal(pairs[0][0][0], next(iter(data.train_dataloader()))[0])  # epoch 1 is not epoch 0's order


def test_datamodules_declare_truly_whether_they_augment(tmp_path):
    """What decode.cache trusts: a datamodule's `augmented` says whether a training item changes between epochs."""
    for label in ("a", "b"):  # textured: a crop or flip of a flat colour would look the same
        (tmp_path / "folder" / label).mkdir(parents=True)
        for i in range(2):
            pixels = np.random.default_rng((ord(label), i)).integers(256, size=(20, 24, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "folder" / label / f"{i}.png")
    modules = [PatchDataModule(count=4, val_count=2, image_size=8, workers=0),
               NoiseDataModule(count=4, val_count=2, image_size=8, classes=2, workers=0),
               DigitsDataModule(), FolderDataModule(str(tmp_path / "folder"), image_size=8, workers=0)]
    for data in modules:
        data.setup()
        seeded = Seeded(data.train_set, seed=0)
        changes = any(not torch.equal(seeded[(0, i)][0], seeded[(1, i)][0]) for i in range(4))
        assert changes == data.augmented, type(data).__name__
    assert [data.augmented for data in modules] == [False, False, False, True]


@pytest.mark.slow
def test_a_cache_that_is_invalid_is_refused_in_one_line_or_skipped_with_auto(run_main, tmp_path, caplog):
    write_folder(tmp_path / "folder", per_class=4)
    folder = ["dataset=folder", f"dataset.root={tmp_path / 'folder'}", "dataset.image_size=16",
              "dataset.val_fraction=0.5", "dataset.batch_size=8", "dataset.workers=0"]
    for overrides, words in [(folder, ["FolderDataModule augments", "decode.cache=false"]),
                             ([*PATCHES, "decode.cache_limit_gb=0.0001"],
                              ["48 images", "bound of 0.00 GB", "decode.cache_limit_gb", "decode.cache=false"]),
                             ([*PATCHES, "decode.cache=maybe"], ["decode.cache must be auto, true or false"]),
                             ([*PATCHES, "decode.cache_dtype=int8"], ["unknown decode.cache_dtype 'int8'"])]:
        result = run_main("decode", [*DECODE, "decode.cache=true", *overrides])
        lines = error_lines(result.err)
        assert result.code == 2 and len(lines) == 1 and all(word in lines[0] for word in words), result.err
    with caplog.at_level(logging.WARNING, logger="representation_probe.decoders.cache"):
        result = run_main("decode", [*DECODE, *folder, "trainer.max_epochs=1"])  # auto: run without, say why
    assert result.code == 0, result.err
    assert "decode.cache=auto: the backbone runs in every step, since FolderDataModule augments" in caplog.text
    rows = json.loads((result.run_dir / "summary.json").read_text())
    assert {r["cached"] for r in rows} == {False} and {r["cache_dtype"] for r in rows} == {None}
