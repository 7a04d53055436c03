"""Checkpoints and resume: a checkpoint is whole whenever a kill comes, and a run stopped or killed and
resumed ends exactly where an uninterrupted run does (issue 10, cases 1 and 2)."""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from representation_probe.runs.durable import TEMP_SUFFIX, remove_temp_files
from representation_probe.runs.rundir import RunDir
from representation_probe.training.checkpoints import DurableCheckpointIO

from .conftest import cli, cli_command, cli_env
from .test_training import REPO, TINY, write_folder

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


@pytest.mark.slow
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
    rows = RunDir(resumed).read_metrics()  # the curves, with logger=csv too (no logger at all)
    assert [row["epoch"] for row in rows] == [0, 1, 2] and all({"train/acc", "val/acc"} <= set(row) for row in rows)
    assert sorted(p.name for p in (resumed / "checkpoints").iterdir()) == sorted(
        p.name for p in (straight / "checkpoints").iterdir())


# ---- case 1: a kill while a checkpoint is written, with $TMPDIR on another filesystem ----------------
def tmpfs_dir(tmp_path: Path) -> Path:
    """A fresh directory on tmpfs, another filesystem than tmp_path (the cluster layout: outputs on
    NFS or Lustre, $TMPDIR local)."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs /dev/shm on another filesystem than the test's tmp_path")
    return Path(tempfile.mkdtemp(dir=shm, prefix="representation_probe_test_"))


def save_forever(io, path: Path, tmpdir: Path) -> None:
    """A child process: save checkpoints of ~24 MB to `path` until killed, step after step."""
    os.environ["TMPDIR"], tempfile.tempdir = str(tmpdir), str(tmpdir)  # what fsspec's temp files would use
    checkpoint = {"state_dict": {"w": torch.randn(6_000_000)}, "global_step": 0}
    for step in itertools.count(1):
        checkpoint["global_step"] = step
        io.save_checkpoint(checkpoint, path)


def kill_while_saving(io, path: Path, tmpdir: Path, delays) -> int:
    """Kill a process that saves checkpoints to `path` after each delay; after every kill `path` must load.
    Returns how many kills came during a write (a temp file was left beside `path`)."""
    io.save_checkpoint({"state_dict": {}, "global_step": 0}, path)  # there is a checkpoint to lose
    during_a_write = 0
    for delay in delays:
        child = multiprocessing.get_context("fork").Process(target=save_forever, args=(io, path, tmpdir))
        child.start()
        time.sleep(delay)
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        assert torch.load(path, weights_only=False)["global_step"] >= 0  # whole, whatever the instant
        during_a_write += bool(remove_temp_files(path.parent))
        assert not list(tmpdir.iterdir())  # and nothing left in $TMPDIR
    return during_a_write


@pytest.mark.slow
def test_a_checkpoint_killed_at_any_instant_of_its_write_is_whole(tmp_path):
    tmpdir = tmpfs_dir(tmp_path)
    try:
        delays = np.linspace(0.02, 1.0, 12)  # spread over several writes of ~24 MB each
        assert kill_while_saving(DurableCheckpointIO(), tmp_path / "checkpoints" / "last.ckpt", tmpdir, delays) > 0
    finally:
        shutil.rmtree(tmpdir)


class KillOnRemove(DurableCheckpointIO):
    """Kills its own process when ModelCheckpoint removes the previous best checkpoint: after the new
    best of an epoch is written, before its last.ckpt is."""

    def remove_checkpoint(self, path) -> None:
        os.kill(os.getpid(), signal.SIGKILL)


def wait_for(pattern: str, directory: Path, job: subprocess.Popen, timeout: float = 240) -> None:
    """Until a file matching `pattern` appears in `directory` (polled every millisecond)."""
    deadline = time.time() + timeout
    while not list(directory.glob(pattern)):
        assert job.poll() is None and time.time() < deadline, "the run ended before the file appeared"
        time.sleep(0.001)


@pytest.mark.slow
def test_a_run_killed_between_checkpoints_and_while_writing_one_ends_like_an_uninterrupted_run(run_task, tmp_path):
    tmpdir = tmpfs_dir(tmp_path)  # $TMPDIR on another filesystem than the run directory
    run_dir = tmp_path / "run"
    checkpoints = run_dir / "checkpoints"
    overrides = [*TINY, "dataset.count=64", "dataset.val_count=16", "dataset.image_size=16", "dataset.batch_size=16",
                 "trainer.max_epochs=5", "callbacks.model_checkpoint.monitor=train/loss",
                 "callbacks.model_checkpoint.mode=min"]  # a new best each epoch while it memorises
    train = [*overrides, f"hydra.run.dir={run_dir}"]
    try:
        # 1. killed between the best and the last checkpoint of epoch 1: the old best is still there
        killed = cli("train", *train, "trainer.plugins=[{_target_:tests.test_resume.KillOnRemove}]", cwd=tmp_path,
                     TMPDIR=str(tmpdir), PYTHONPATH=str(REPO))  # the plugin lives in this test module
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
        assert sorted(p.name for p in checkpoints.iterdir()) == ["best-epoch=0.ckpt", "best-epoch=1.ckpt", "last.ckpt"]
        # 2. resumed (from best-epoch=1, the newest), then killed while it writes last.ckpt
        job = subprocess.Popen(cli_command("train", *train), cwd=tmp_path, env=cli_env(TMPDIR=str(tmpdir)),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(".last.ckpt.*" + TEMP_SUFFIX, checkpoints, job)
        job.send_signal(signal.SIGKILL)
        job.wait()
        assert not (checkpoints / "best-epoch=0.ckpt").exists()  # the stale best went when the run resumed
        torch.load(checkpoints / "last.ckpt", weights_only=False)  # whole: the one before this write
        # 3. resumed to the end
        done = cli("train", *train, cwd=tmp_path, TMPDIR=str(tmpdir))
        assert done.returncode == 0, done.stderr[-2000:]
        assert not list(tmpdir.iterdir())  # nothing left in $TMPDIR
    finally:
        shutil.rmtree(tmpdir)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["epochs"] == 5 and summary["global_step"] == 5 * 4 and summary["resumed_from"]
    _, straight = run_task("train", overrides)
    a, b = weights(straight), weights(run_dir)
    assert all(torch.equal(a[k], b[k]) for k in a)  # bit-identical to the uninterrupted run
    assert (straight / "metrics.csv").read_text() == (run_dir / "metrics.csv").read_text()
    assert sorted(p.name for p in checkpoints.iterdir()) == ["best-epoch=4.ckpt", "last.ckpt"]


@pytest.mark.slow
def test_an_unreadable_last_checkpoint_is_named_and_passed_over(run_task, tmp_path, caplog):
    overrides = [*TINY, *DATASETS["noise"], "dataset.image_size=16", "dataset.batch_size=16"]
    _, run_dir = run_task("train", [*overrides, "trainer.max_epochs=1"])
    last, best = run_dir / "checkpoints" / "last.ckpt", run_dir / "checkpoints" / "best-epoch=0.ckpt"
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 2])  # what a kill during Lightning's copy across filesystems left
    os.utime(last)  # and newer than the best checkpoint, as it would be
    with caplog.at_level("WARNING"):
        run_task("train", [*overrides, "trainer.max_epochs=2"], run_dir=run_dir)
    assert any(f"checkpoint {last} is unreadable (" in r.getMessage() for r in caplog.records)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["resumed_from"] == str(best) and list(summary["unreadable_checkpoints"]) == [str(last)]
    assert summary["epochs"] == 2 and summary["global_step"] == 2 * 3  # epoch 0 was not trained again
    assert (run_dir / "checkpoints" / "last.ckpt.unreadable").read_bytes() == data[: len(data) // 2]  # kept aside

    for path in (run_dir / "checkpoints").glob("*.ckpt"):
        path.write_bytes(b"")  # empty files: torch.load says EOFError and nothing else
    caplog.clear()
    with caplog.at_level("WARNING"):
        run_task("train", [*overrides, "trainer.max_epochs=1"], run_dir=run_dir)
    assert any("no checkpoint in" in r.getMessage() and "starts afresh" in r.getMessage() for r in caplog.records)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["resumed_from"] is None and len(summary["unreadable_checkpoints"]) == 2
    assert summary["epochs"] == 1 and torch.load(last, weights_only=False)["epoch"] == 0  # a new, whole last.ckpt
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("*.ckpt")) == ["best-epoch=0.ckpt", "last.ckpt"]
