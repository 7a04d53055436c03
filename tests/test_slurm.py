"""The cluster path for real, on a local one-node SLURM cluster (the `slurm` fixture): sweeps through the
submitit launcher, an Optuna search, jobs SLURM cannot start, W&B offline runs written on a compute node,
and DDP training under `sbatch`/`srun` that a requeue resumes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import submitit
import torch
import yaml

from hydra_plugins.representation_probe_slurm.launcher import wait
from representation_probe.runs.rundir import find_runs

from . import wandb_records
from .conftest import cli
from .slurm_cluster import LocalCluster, Unavailable
from .test_sweeps import TINY

pytestmark = pytest.mark.xdist_group("slurm")  # one worker (pytest -n) starts the cluster and runs them all
REPO = Path(__file__).resolve().parents[1]
SLURM = ["hydra/launcher=submitit_slurm"]


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    """A one-node SLURM cluster with 2 CPUs (tests/slurm_cluster.py), started once for the session and
    stopped at its end; its clients find it through SLURM_CONF. Skips with the reason where it cannot run."""
    try:
        cluster = LocalCluster.start(tmp_path_factory.mktemp("slurm"))
    except Unavailable as reason:
        pytest.skip(str(reason))
    try:
        with pytest.MonkeyPatch.context() as patch:
            for key, value in cluster.env.items():
                patch.setenv(key, value)
            yield cluster
    finally:
        cluster.stop()


def states(slurm, job_id: str) -> dict[str, str]:
    """{job or array task id: state} of a job (all tasks of an array) as squeue lists it."""
    done = slurm.run("squeue", "--noheader", "--array", "--states=all", f"--jobs={job_id}", "--format=%i %T")
    return dict(line.split() for line in done.stdout.splitlines())


def final_states(slurm, job_id: str, timeout: float = 60) -> dict[str, str]:
    """The states once no task is pending or running (a task may still be exiting when its result is in)."""
    deadline = time.monotonic() + timeout
    while True:
        now = states(slurm, job_id)
        if (now and not set(now.values()) & {"PENDING", "RUNNING", "COMPLETING"}) or time.monotonic() > deadline:
            return now
        time.sleep(0.5)


@pytest.mark.slow
def test_an_invert_sweep_on_slurm_runs_past_a_failing_job_and_reports(slurm, tmp_path, run_cli):
    sweep = tmp_path / "sweep"
    done = cli("invert", "-m", *SLURM, *TINY, "logger=wandb", "layers=nope,conv2", f"hydra.sweep.dir={sweep}",
               cwd=tmp_path)
    assert done.returncode != 0  # one job failed, and the sweep says so
    runs = find_runs([sweep])
    jobs = {run.summaries[0]["layer"]: run.path for run in runs if run.status == "done"}
    assert set(jobs) == {"conv2"}  # the failure did not spoil the job after it
    failed = [run.failure for run in runs if run.status == "failed"]
    assert len(failed) == 1 and failed[0].startswith("unknown layer 'nope'")
    # both jobs ran as one SLURM array and ended (a failing task ends normally: it reports its error)
    array = next(p.name for p in (sweep / ".submitit").iterdir() if p.name.isdigit())
    assert final_states(slurm, array) == {f"{array}_{task}": "COMPLETED" for task in range(2)}
    # the compute nodes wrote W&B's offline runs into the sweep's wandb/, ready for `wandb sync`, one group
    runs = {wandb_records.run_record(run)["display_name"]: run for run in wandb_records.offline_runs(sweep)}
    assert {wandb_records.run_record(run)["run_group"] for run in runs.values()} == {str(sweep)}
    history = [row for row in wandb_records.history(runs["layers=conv2"]) if "invert/m_g" in row]
    assert len(history) == len((jobs["conv2"] / "metrics.csv").read_text().splitlines()) - 1

    assert run_cli("report", str(sweep)).code == 0
    page = (sweep / "report.html").read_text()
    assert "mg_over_ms.png" in page and "Failed or incomplete jobs (1)" in page and "unknown layer" in page


@pytest.mark.slow
def test_optuna_eps_search_on_slurm(slurm, tmp_path):
    sweep = tmp_path / "eps"
    done = cli("invert", "-m", *SLURM, "experiment=eps_search", *TINY, "layers=conv2", "hydra.sweeper.n_trials=2",
               "hydra.sweeper.n_jobs=2", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    trials = [json.loads(p.read_text()) for p in sweep.glob("*/summary.json")]
    assert len(trials) == 2 and best["best_value"] == min(t["m_g"] for t in trials)
    array = next(p.name for p in (sweep / ".submitit").iterdir() if p.name.isdigit())
    assert final_states(slurm, array) == {f"{array}_0": "COMPLETED", f"{array}_1": "COMPLETED"}


@pytest.mark.slow
def test_a_sweep_slurm_cannot_schedule_is_reported_with_slurms_reason(slurm, tmp_path):
    sweep = tmp_path / "greedy"
    # 8 CPUs per task on a 2-CPU node: SLURM accepts the jobs and would keep them pending forever
    done = cli("invert", "-m", *SLURM, *TINY, "layers=conv1,conv2", "hydra.launcher.cpus_per_task=8",
               f"hydra.sweep.dir={sweep}", cwd=tmp_path, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert re.search(r"^error: SLURM cannot start job \d+_\d .*8 CPUs.*: pending with reason PartitionConfig",
                     done.stderr.strip().splitlines()[-1])
    array = next(p.name for p in (sweep / ".submitit").iterdir() if p.name.isdigit())
    assert set(states(slurm, array).values()) == {"CANCELLED"}  # nothing left behind in the queue

    done = cli("invert", "-m", *SLURM, *TINY, "layers=conv1,conv2", "hydra.launcher.partition=nope",
               f"hydra.sweep.dir={tmp_path / 'nope'}", cwd=tmp_path, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].endswith("sbatch refused the jobs: sbatch: error: "
                                                         "Batch job submission failed: Invalid partition name specified")


@pytest.mark.slow
def test_a_sweep_job_slurm_cancels_is_recorded_as_failed(slurm, tmp_path):
    """A job SLURM ends without a result (here: cancelled; on clusters also out of memory, node failure)."""
    sweep = tmp_path / "sweep"
    sweeping = subprocess.Popen([sys.executable, "-m", "representation_probe", "invert", "-m", *SLURM, *TINY,
                                 "logger=csv", "layers=conv1,conv2", f"hydra.sweep.dir={sweep}"], cwd=tmp_path,
                                env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (arrays := [p.name for p in sweep.glob(".submitit/*") if p.name.isdigit()]):
        assert time.monotonic() < deadline and sweeping.poll() is None, sweeping.communicate()
        time.sleep(0.2)
    assert slurm.run("scancel", f"{arrays[0]}_1").returncode == 0
    _, stderr = sweeping.communicate(timeout=120)
    assert sweeping.returncode != 0
    assert json.loads((sweep / "0" / "summary.json").read_text())["layer"] == "conv1"
    failure = json.loads((sweep / "1" / "failure.json").read_text())
    assert failure["error"].startswith(f"SLURM job {arrays[0]}_1 ended without a result")
    assert "layers=conv2" in failure["overrides"] and failure["error"] in stderr


@pytest.mark.slow
def test_a_job_slurm_ends_without_a_result_is_not_waited_on(slurm, tmp_path):
    """submitit asks sacct whether such a job ended; a cluster without accounting cannot say, squeue can."""
    executor = submitit.AutoExecutor(folder=tmp_path, cluster="slurm")
    executor.update_parameters(timeout_min=5)
    job = executor.submit(time.sleep, 600)
    job.cancel()
    assert wait([job], grace_s=0) == {job.job_id: "CANCELLED"}


@pytest.mark.slow
def test_ddp_training_under_srun_resumes_after_a_requeue(slurm, tmp_path):
    """The README's recipe: `sbatch slurm/train.sbatch trainer=ddp_cpu ...`; then `scontrol requeue`."""
    script = REPO / "slurm" / "train.sbatch"
    assert script.read_text() in (REPO / "README.md").read_text()  # the README shows this very script
    epochs = 24
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "OMP_NUM_THREADS": "1"}
    submitted = slurm.run("sbatch", "--parsable", f"--chdir={tmp_path}", str(script), "trainer=ddp_cpu",
                          "model=resnet10", "logger=csv", "dataset.workers=0", "optimizer=adam", "scheduler=none",
                          "dataset.count=64", "dataset.val_count=16", "dataset.image_size=16", "dataset.batch_size=16",
                          f"trainer.max_epochs={epochs}", env=env)
    assert submitted.returncode == 0, submitted.stderr
    job = submitted.stdout.strip()
    run_dir, log = tmp_path / "outputs" / "train" / job, tmp_path / f"slurm-{job}.out"
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 120
    while not last.exists() and time.monotonic() < deadline and states(slurm, job)[job] in ("PENDING", "RUNNING"):
        time.sleep(0.2)
    assert last.exists(), log.read_text() if log.exists() else states(slurm, job)
    assert slurm.run("scontrol", "requeue", job).returncode == 0
    # SLURM holds a requeued job for two minutes once its first run has ended; start it now
    deadline = time.monotonic() + 60
    while states(slurm, job)[job] != "PENDING" and time.monotonic() < deadline:
        time.sleep(0.2)
    stopped_at = torch.load(last, map_location="cpu", weights_only=False)["global_step"]
    assert stopped_at < epochs * 2 and not (run_dir / "summary.json").exists(), "the run ended before the requeue"
    assert slurm.run("scontrol", "update", f"JobId={job}", "StartTime=now").returncode == 0
    deadline = time.monotonic() + 180
    while states(slurm, job)[job] != "COMPLETED" and time.monotonic() < deadline:
        time.sleep(0.5)
    output = log.read_text()
    assert states(slurm, job)[job] == "COMPLETED", output[-3000:]

    first, again = output.split("DUE TO JOB REQUEUE", 1)
    assert "MEMBER: 2/2" in first and "MEMBER: 2/2" in again  # two ranks, both times
    assert "Restoring states from the checkpoint" in again
    assert [p.name for p in (tmp_path / "outputs" / "train").iterdir()] == [job]  # one run directory
    assert torch.load(last, map_location="cpu", weights_only=False)["global_step"] == epochs * 2  # the whole run
    summary = json.loads((run_dir / "summary.json").read_text())
    assert Path(summary["resumed_from"]).parent == run_dir / "checkpoints"
    assert summary["epochs"] == epochs and summary["global_step"] == epochs * 2  # 64 images / (2 ranks x 16)
