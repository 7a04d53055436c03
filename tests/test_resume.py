"""Resume: a run stopped after an epoch and resumed ends exactly where an uninterrupted run does."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch

from .test_training import TINY, write_folder

DATASETS = {
    "noise": ["dataset.count=48", "dataset.val_count=16"],
    "patches": ["dataset=patches", "dataset.count=48", "dataset.val_count=16"],
    "folder": ["dataset=folder", "dataset.workers=2"],  # random crops and flips, drawn in two worker processes
}


class StopAfter(L.Callback):
    """Stops training at the end of `epoch`, as a kill right after that epoch's checkpoint would."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch:
            trainer.should_stop = True


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]


@pytest.mark.parametrize("data", DATASETS)
def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(data, run_task, tmp_path):
    write_folder(tmp_path / "images")
    overrides = [*TINY, *DATASETS[data], f"dataset.root={tmp_path / 'images'}" if data == "folder" else "seed=0",
                 "dataset.image_size=16", "dataset.batch_size=8", "trainer.max_epochs=3"]
    _, straight = run_task("train", overrides)
    stop = ["+callbacks.stop._target_=tests.test_resume.StopAfter", "+callbacks.stop.epoch=0"]
    _, resumed = run_task("train", [*overrides, *stop])
    assert torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=False)["epoch"] == 0
    run_task("train", overrides, run_dir=resumed)

    a, b = weights(straight), weights(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (straight / "metrics.csv").read_text() == (resumed / "metrics.csv").read_text()
    assert sorted(p.name for p in (resumed / "checkpoints").iterdir()) == sorted(
        p.name for p in (straight / "checkpoints").iterdir())
