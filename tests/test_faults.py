"""Faults from outside the inputs (README, *Reliability*): real signals to real processes, a run directory
that another command holds, W&B without a key or a network, a filesystem that fills."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time

import pytest
from PIL import Image

from .conftest import cli, cli_command, cli_env, error_lines
from .test_resume import wait_for
from .test_training import TINY as TRAIN

TRAIN_SMALL = [*TRAIN, "dataset=noise", "dataset.count=256", "dataset.val_count=32", "dataset.image_size=16",
               "dataset.batch_size=32", "trainer.max_epochs=4"]
INVERT = ["model=resnet10", "model.image_size=32", "logger=csv"]
DECODE = ["model=resnet10", "dataset.image_size=16", "dataset.count=64", "dataset.val_count=16", "dataset.batch_size=32",
          "logger=csv", "decode.colour_images=0", "decode.inversion=null", "eval_images=[]"]


def started(command: str, *args: str, cwd) -> subprocess.Popen:
    return subprocess.Popen(cli_command(command, *args), cwd=cwd, env=cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def held(lock, job: subprocess.Popen, timeout: float = 60) -> None:
    """Until the job holds its run directory's lock (the lock file names it)."""
    deadline = time.monotonic() + timeout
    while not lock.is_file() or not lock.read_text():
        assert job.poll() is None and time.monotonic() < deadline, "the command ended before it took its lock"
        time.sleep(0.05)


@pytest.mark.slow
def test_sigterm_in_training_ends_it_on_the_record_and_the_same_command_resumes(tmp_path):
    run_dir = tmp_path / "run"
    train = [*TRAIN_SMALL, f"hydra.run.dir={run_dir}"]
    job = started("train", *train, cwd=tmp_path)
    wait_for("last.ckpt", run_dir / "checkpoints", job)  # an epoch is done: a checkpoint to resume from
    job.send_signal(signal.SIGTERM)  # what SLURM sends at preemption and at the time limit
    _, stderr = job.communicate(timeout=60)
    assert job.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    assert error_lines(stderr)[-1].startswith("error: interrupted by SIGTERM at step ")
    record = json.loads((run_dir / "interrupted.json").read_text())
    assert record["signal"] == "SIGTERM" and record["step"] >= 8 and record["command"] == "train"
    assert record["resume_from"] == str(run_dir / "checkpoints" / "last.ckpt")
    assert not (run_dir / "summary.json").exists()  # nothing takes it for a finished run

    done = cli("train", *train, cwd=tmp_path)  # the same command again: resumes, and the record goes
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["resumed_from"] == record["resume_from"] and summary["epochs"] == 4
    assert not (run_dir / "interrupted.json").exists()


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGHUP])
def test_ctrl_c_or_a_closed_terminal_stops_an_inversion_with_the_signals_code(tmp_path, signum):
    run_dir = tmp_path / "run"
    job = started("invert", *INVERT, "inversion.steps=100000", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    wait_for("invert.log", run_dir, job)  # the command runs
    time.sleep(1)
    job.send_signal(signum)
    _, stderr = job.communicate(timeout=60)
    assert job.returncode == 128 + signum, stderr[-2000:]
    record = json.loads((run_dir / "interrupted.json").read_text())
    assert record["signal"] == signal.Signals(signum).name and record["resume_from"] is None
    assert not (run_dir / "summary.json").exists()


@pytest.mark.slow
def test_a_run_directory_has_one_owner_and_a_dead_owners_lock_is_taken_over(tmp_path):
    run_dir = tmp_path / "run"
    first = started("invert", *INVERT, "inversion.steps=100000", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    try:
        held(run_dir / ".lock", first)
        second = cli("train", *TRAIN_SMALL, f"hydra.run.dir={run_dir}", cwd=tmp_path)
        assert second.returncode == 2
        [line] = error_lines(second.stderr)
        assert f"the run directory {run_dir} is in use by `invert` (pid {first.pid} on " in line
        assert "hydra.run.dir" in line
        assert not (run_dir / "train.log").exists()  # nothing of the second command went in
    finally:
        first.kill()  # SIGKILL: no handler runs, the lock file stays behind
        first.communicate()
    again = cli("invert", *INVERT, "inversion.steps=2", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]  # the dead process's lock is free
    assert json.loads((run_dir / "summary.json").read_text())["steps"] == 2


def test_a_run_directory_that_is_a_file_is_one_line(tmp_path, run_cli):
    path = tmp_path / "taken"
    path.write_text("not a directory")
    done = run_cli("invert", *INVERT, f"hydra.run.dir={path}")
    assert done.code == 2
    assert error_lines(done.err) == [f"error: the run directory {path} is a file; pass another hydra.run.dir"]


# ---- the environment ------------------------------------------------------------------------------------
@pytest.fixture
def no_wandb_login(monkeypatch, tmp_path):
    """No API key anywhere W&B looks (its variable, a netrc file)."""
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no.netrc"))


def test_wandb_online_without_a_key_refuses_in_one_line_when_told_to(no_wandb_login, tmp_path, run_cli):
    run_dir = tmp_path / "run"
    done = run_cli("invert", *INVERT, "logger=wandb", "logger.wandb.mode=online", "logger.wandb.unavailable=error",
                   f"hydra.run.dir={run_dir}")
    assert done.code == 2
    [line] = error_lines(done.err)
    assert line.startswith("error: W&B online: no API key for api.wandb.ai") and "logger.wandb.mode=offline" in line
    assert not (run_dir / "wandb").exists() and not (run_dir / "summary.json").exists()


@pytest.mark.slow  # a W&B run each
@pytest.mark.parametrize("login", ["no key", "server unreachable"])
def test_wandb_online_that_cannot_log_logs_offline_with_a_warning(login, no_wandb_login, tmp_path, run_cli,
                                                                  monkeypatch):
    if login == "server unreachable":  # a key, and W&B's own setting pointing at a port nobody listens on
        monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
        monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    run_dir = tmp_path / "run"
    start = time.monotonic()
    done = run_cli("invert", *INVERT, "inversion.steps=2", "logger=wandb", "logger.wandb.mode=online",
                   f"hydra.run.dir={run_dir}")
    assert done.code == 0, done.err[-2000:]
    assert time.monotonic() - start < 60  # not W&B's two minutes of retries
    warned = [line for line in (done.out + done.err).splitlines() if "[WARNING] - W&B online:" in line]
    assert len(warned) == 1 and "logging offline instead" in warned[0]
    assert ("no API key" if login == "no key" else "127.0.0.1:9 cannot be reached") in warned[0]
    assert list(run_dir.glob("wandb/offline-run-*/*.wandb"))  # the run, ready for `wandb sync`


def test_wandb_mode_in_the_environment_wins(tmp_path, run_cli, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    run_dir = tmp_path / "run"
    done = run_cli("invert", *INVERT, "inversion.steps=2", "logger=wandb", f"hydra.run.dir={run_dir}")
    assert done.code == 0, done.err[-2000:]
    assert (run_dir / "summary.json").is_file() and not (run_dir / "wandb").exists()


def test_a_gpu_trainer_on_a_machine_without_one_is_one_line(tmp_path, run_cli):
    done = run_cli("train", *TRAIN_SMALL, "trainer=gpu", f"hydra.run.dir={tmp_path / 'run'}")
    assert done.code == 2
    assert error_lines(done.err) == ["error: trainer=gpu asks for a GPU (accelerator=gpu), and this machine has none "
                                     "that torch can use; pass trainer=cpu (or trainer=ddp_cpu)"]


# ---- resources -------------------------------------------------------------------------------------------
@pytest.fixture
def small_filesystem(tmp_path):
    """A real 3 MiB tmpfs: a checkpoint of even a tiny ResNet does not fit."""
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


@pytest.mark.slow
def test_a_disk_that_fills_while_a_checkpoint_is_written_is_one_line_naming_the_file(small_filesystem, tmp_path):
    run_dir = small_filesystem / "run"
    done = cli("train", *TRAIN_SMALL, "trainer.max_epochs=1", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    [line] = error_lines(done.stderr)[-1:]
    assert re.fullmatch(rf"error: cannot write {run_dir}/checkpoints/\S+\.ckpt: No space left on device", line), line
    assert "Traceback" not in done.stderr
    assert not [p for p in (run_dir / "checkpoints").iterdir()]  # no half checkpoint, no temp file
    assert json.loads((run_dir / "failure.json").read_text())["error"] == line.removeprefix("error: ")


def test_an_image_size_that_cannot_fit_is_refused_with_the_estimate_before_any_work(tmp_path, run_cli):
    done = run_cli("invert", "model=resnet50", "model.image_size=22400", "logger=csv",
                   f"hydra.run.dir={tmp_path / 'run'}")  # 224 with two zeros too many
    assert done.code == 2
    [line] = error_lines(done.err)
    found = re.search(r"1 image\(s\) of 22400 x 22400 px need about ([0-9.]+) GiB .* and ([0-9.]+) GiB are available",
                      line)
    assert found and float(found.group(1)) > 1000 > float(found.group(2)), line
    assert not (tmp_path / "run" / "images").exists()


def test_an_image_whose_header_claims_billions_of_pixels_is_named(tmp_path, run_cli):
    bomb = tmp_path / "bomb.png"
    Image.new("1", (15000, 15000)).save(bomb)  # a small file that decodes to 225 M pixels
    assert bomb.stat().st_size < 2**20
    done = run_cli("invert", *INVERT, f"images={bomb}", f"hydra.run.dir={tmp_path / 'run'}")
    assert done.code == 2
    [line] = error_lines(done.err)
    assert line.startswith(f"error: cannot read image {bomb}: Image size (225000000 pixels) exceeds limit"), line


# ---- degenerate and contradictory inputs; Hydra's grammar ------------------------------------------------
REFUSED = {  # command, overrides -> what the one line says
    "empty-layers": ("invert", ["layers=[]"], ["layers is empty"]),
    "a-layer-twice": ("invert", ["layers=[conv1,conv1]"], ["layers names conv1 twice"]),
    "an-alias-and-its-node": ("invert", ["layers=[conv1,relu]"], ["names relu twice"]),
    "a-seed-twice": ("invert", ["seed=[0,0]"], ["seed names 0 twice"]),
    "no-seed": ("probe", ["seed=[]"], ["seed names no seed", "seed=[0,1,2]"]),
    "a-probe-seed-twice": ("probe", ["seed=[1,2,1]"], ["seed names 1 twice"]),
    "seeds-for-seed": ("probe", ["seeds=[0,1]"], ["unknown key seeds (did you mean seed?)"]),
    "an-image-twice": ("invert", ["images=[chelsea,chelsea]"], ["images names chelsea twice"]),
    "an-added-key-no-schema-has": ("invert", ["+inversion.stepz=3"],
                                   ["unknown key inversion.stepz (did you mean inversion.steps?)"]),
    "an-added-top-level-key": ("invert", ["+stepz=3"], ["unknown key stepz", "invert --cfg job"]),
    "a-typo-d-key": ("invert", ["stepz=3"], ["unknown key stepz"]),
    "an-unquoted-equals-sign": ("invert", ["images=/x/best-epoch=0.png"], ["quotes: images='/x/best-epoch=0.png'"]),
    "unquoted-non-ascii": ("invert", ["images=/x/café.png"], ["quotes: images='/x/café.png'"]),
    "one-class": ("train", ["dataset.classes=1"], ["1 class", "at least 2"]),
    "one-training-image": ("train", ["dataset.count=1"], ["training split holds 1 image(s)", "at least 2"]),
    "model-size-against-the-dataset": ("train", ["model.image_size=64"],
                                       ["from the dataset (dataset.image_size=16)", "dataset.image_size=64"]),
    "epochs-forever": ("train", ["trainer.max_epochs=-1"], ["trainer.max_epochs", "positive", "-1"]),
}


@pytest.mark.parametrize("name", REFUSED)
def test_degenerate_or_contradictory_input_is_one_line_before_any_work(name, tmp_path, run_cli):
    command, overrides, words = REFUSED[name]
    base = INVERT if command in ("invert", "probe") else TRAIN_SMALL
    done = run_cli(command, *base, *overrides, f"hydra.run.dir={tmp_path / 'run'}")
    assert done.code == 2, done.err[-2000:]
    [line] = error_lines(done.err)
    assert all(word in line for word in words), line
    assert "+stepz" not in line  # never the advice to add a typo'd key, which would run with it ignored
    assert not (tmp_path / "run" / "summary.json").exists()


@pytest.mark.slow
def test_a_last_training_batch_of_one_image_is_dropped(tmp_path):
    run_dir = tmp_path / "run"  # 65 training images in batches of 32: BatchNorm cannot normalise the 65th alone
    done = cli("train", *TRAIN_SMALL, "dataset.count=65", "trainer.max_epochs=1", f"hydra.run.dir={run_dir}",
               cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((run_dir / "summary.json").read_text())["global_step"] == 2


@pytest.mark.slow
def test_sigterm_stops_a_command_outside_lightning_the_same_way(tmp_path):
    """similarity extracts features in plain loops: the signal is handled there as in a trainer."""
    run_dir = tmp_path / "run"
    job = started("similarity", "models=[resnet10]", "dataset.count=100000", "cka_batch_size=500",
                  "dataset.image_size=32", "logger=csv", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    wait_for("similarity.log", run_dir, job)
    time.sleep(2)
    job.send_signal(signal.SIGTERM)
    _, stderr = job.communicate(timeout=60)
    assert job.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    assert json.loads((run_dir / "interrupted.json").read_text())["command"] == "similarity"
    assert "Traceback" not in stderr and not (run_dir / "summary.json").exists()


@pytest.mark.slow
def test_a_study_over_seeds_stopped_by_sigterm_keeps_its_finished_seeds_and_resumes_the_stopped_one(tmp_path):
    run_dir = tmp_path / "run"
    decode = [*DECODE, "decode.layers=[conv2]", "seed=[0,1]", "trainer.max_epochs=3", f"hydra.run.dir={run_dir}"]
    job = started("decode", *decode, cwd=tmp_path)
    wait_for("last.ckpt", run_dir / "seed1" / "checkpoints", job)  # seed 0 done, seed 1 one epoch in
    job.send_signal(signal.SIGTERM)
    _, stderr = job.communicate(timeout=60)
    assert job.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    assert (run_dir / "seed0" / "summary.json").is_file() and not (run_dir / "seed1" / "summary.json").exists()

    done = cli("decode", *decode, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    log = (run_dir / "decode.log").read_text()
    assert f"reusing the finished run {run_dir / 'seed0'}" in log
    assert f"Restoring states from the checkpoint path at {run_dir / 'seed1' / 'checkpoints'}" in log
    rows = json.loads((run_dir / "summary.json").read_text())
    assert sorted({row["seed"] for row in rows}) == [0, 1] and (run_dir / "spread.csv").is_file()
    assert "held-out PSNR over seeds [0, 1]: conv2 " in log
