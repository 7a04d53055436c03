"""Linear probes: class information where there is some, chance where there is none, caching changes nothing."""

from __future__ import annotations

import csv
import importlib
import json
import logging
import statistics

import pytest
import torch
from omegaconf import OmegaConf, open_dict
from torch.utils.data import TensorDataset

from representation_probe.data import FolderDataModule, NoiseDataModule, PatchDataModule
from representation_probe.data.base import TrainValDataModule
from representation_probe.reporting import write_report
from representation_probe.runs.rundir import read_run

from .conftest import error_lines
from .test_training import write_folder

CLASSES = 4
MLP = ["model=mlp", "model.widths=[64,64]", "model.activation=relu", "logger=csv", "trainer.max_epochs=40"]


class ToyData(TrainValDataModule):
    """4 classes of 3x4x4 images: a fixed random pattern per class plus noise (linearly separable), or
    the same images with labels drawn independently of them (`shuffled`: nothing to learn)."""

    num_classes = CLASSES

    def __init__(self, image_size: int = 4, shuffled: bool = False, batch_size: int = 64, workers: int = 0):
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage: str | None = None) -> None:
        gen = torch.Generator().manual_seed(0)
        size = self.hparams.image_size
        patterns = torch.rand(CLASSES, 3, size, size, generator=gen)
        sets = []
        for count in (400, 200, 400):
            labels = torch.randint(CLASSES, (count,), generator=gen)
            images = (patterns[labels] + 0.15 * torch.randn(count, 3, size, size, generator=gen)).clamp(0, 1)
            if self.hparams.shuffled:
                labels = torch.randint(CLASSES, (count,), generator=gen)
            sets.append(TensorDataset(images, labels))
        self.train_set, self.val_set, self.test_set = sets


def probe(hydra_job, overrides: list[str], shuffled: bool = False) -> list[dict]:
    cfg, run_dir = hydra_job("probe", overrides)
    with open_dict(cfg):
        cfg.dataset = OmegaConf.create({"_target_": f"{__name__}.ToyData", "image_size": 4, "shuffled": shuffled})
    importlib.import_module("representation_probe.commands.probe").run(cfg)
    rows = json.loads((run_dir / "summary.json").read_text())
    history = read_run(run_dir).metrics  # one row per validation epoch, then the test
    assert history[-1]["stage"] == "test" and len(history) == rows[0]["epochs"] + 1
    assert [history[-1][f"test/acc/{r['layer']}"] for r in rows] == pytest.approx([r["accuracy"] for r in rows])
    return rows


@pytest.mark.slow
def test_separable_classes_are_found_at_every_layer_and_shuffled_labels_stay_at_chance(hydra_job, tmp_path):
    rows = probe(hydra_job, MLP)
    assert [r["layer"] for r in rows] == ["fc1", "fc2"] and [r["relative_depth"] for r in rows] == [0.5, 1.0]
    assert all(r["accuracy"] > 0.97 for r in rows), rows
    assert [r["features"] for r in rows] == [64, 64] and all(r["classes"] == CLASSES for r in rows)
    chance = probe(hydra_job, MLP, shuffled=True)
    assert all(abs(r["accuracy"] - 1 / CLASSES) < 0.1 for r in chance), chance  # 400 test images: sd ~0.02
    page = write_report([tmp_path], tmp_path / "report").read_text()
    assert "Linear probes: test accuracy per layer" in page and (tmp_path / "report/report_files/probe_accuracy.png").is_file()


def test_cached_features_give_the_same_probes_as_running_the_backbone_every_step(hydra_job):
    cached = probe(hydra_job, [*MLP, "probe.cache=true", "trainer.max_epochs=5"], shuffled=True)
    live = probe(hydra_job, [*MLP, "probe.cache=false", "trainer.max_epochs=5"], shuffled=True)
    assert [r["cached"] for r in cached + live] == [True, True, False, False]
    for a, b in zip(cached, live):
        assert a["best_epoch"] == b["best_epoch"]
        assert a["val_acc"] == pytest.approx(b["val_acc"], abs=1e-6) and a["accuracy"] == pytest.approx(b["accuracy"],
                                                                                                    abs=1e-6)


def test_a_resnet_probe_reads_its_probe_points_or_named_layers(hydra_job):
    rows = probe(hydra_job, ["model=resnet10", "logger=csv", "trainer.max_epochs=2", "probe.layers=[conv2,layer3.0.conv1]",
                             "probe.pool=flatten"])
    assert [(r["layer"], r["relative_depth"]) for r in rows] == [("conv2", 0.4), ("layer3.0.conv1", None)]
    assert rows[0]["features"] == 64 * 1 * 1 and all(0 <= r["accuracy"] <= 1 for r in rows)  # 4 px -> 1x1 at conv2


def test_bad_probe_input_is_one_line(run_main):
    for overrides, words in [(["probe.layers=[conv9]"], "unknown layer 'conv9'"), (["probe.pool=max"], "unknown pool")]:
        result = run_main("probe", ["model=resnet10", "logger=csv", "dataset.count=8", "dataset.val_count=4",
                                    "dataset.test_count=4", "dataset.image_size=16", *overrides])
        assert result.code == 2 and words in result.err and len(error_lines(result.err)) == 1, result.err


def test_generated_sets_and_folders_have_a_test_split_of_their_own(tmp_path):
    patches = PatchDataModule(count=4, val_count=4, test_count=4, image_size=16)
    noise = NoiseDataModule(count=4, val_count=4, test_count=4, classes=3, image_size=8)
    for data in (patches, noise):
        data.setup()
        test = torch.stack([data.test_set[i][0] for i in range(4)])
        for other in (data.train_set, data.val_set):  # (single crops may repeat: colorwheel's white corners)
            assert not torch.equal(test, torch.stack([other[i][0] for i in range(4)]))
        assert torch.equal(test[0], data.test_set[0][0])  # generated again, the same
    for split, count in (("train", 4), ("val", 2), ("test", 3)):
        write_folder(tmp_path / split, per_class=count)
    folder = FolderDataModule(str(tmp_path), image_size=8, workers=0)
    folder.setup()
    assert len(folder.require_test_set()) == 9 and folder.num_classes == 3


def test_seeds_are_an_axis_each_in_its_own_run_then_found_again(hydra_job, caplog, tmp_path):
    def run(run_dir=None):
        cfg, run_dir = hydra_job("probe", [*MLP, "trainer.max_epochs=3", "seed=[0,1,2]"], run_dir)
        with open_dict(cfg):
            cfg.dataset = OmegaConf.create({"_target_": f"{__name__}.ToyData", "image_size": 4})
        importlib.import_module("representation_probe.commands.probe").run(cfg)
        return run_dir, json.loads((run_dir / "summary.json").read_text())

    with caplog.at_level(logging.INFO):
        run_dir, rows = run()
    assert [(r["layer"], r["seed"]) for r in rows] == [(layer, seed) for seed in (0, 1, 2) for layer in ("fc1", "fc2")]
    for seed in (0, 1, 2):  # each seed a whole run of its own, which rp.open reads
        assert read_run(run_dir / f"seed{seed}").summaries == [r for r in rows if r["seed"] == seed]
    first_losses = {seed: read_run(run_dir / f"seed{seed}").metrics[0]["train/loss"] for seed in (0, 1, 2)}
    assert len(set(first_losses.values())) == 3  # the heads were drawn from each seed
    with (run_dir / "spread.csv").open() as file:
        spread = {(r["layer"], r["metric"]): r for r in csv.DictReader(file)}
    for layer in ("fc1", "fc2"):
        values = [r["accuracy"] for r in rows if r["layer"] == layer]
        cell = spread[(layer, "accuracy")]
        assert float(cell["mean"]) == pytest.approx(statistics.mean(values))
        assert float(cell["sd"]) == pytest.approx(statistics.stdev(values)) and cell["n"] == "3"
    assert "test accuracy over seeds [0, 1, 2]: fc1 " in caplog.text and " ± " in caplog.text

    caplog.clear()
    with caplog.at_level(logging.INFO):
        again, rows_again = run(run_dir)  # the same command in the same directory: every seed found finished
    assert caplog.text.count("reusing the finished run") == 3 and rows_again == rows
    page = write_report([run_dir], tmp_path / "report").read_text()
    assert "Over seeds: mean ± sd" in page and page.count("<tr") > 2
