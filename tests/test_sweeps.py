"""Sweeps and dashboards: launchers, the Optuna eps search, offline W&B history, the HTML report."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess

import numpy as np
import pytest
import yaml
from PIL import Image

from . import wandb_records
from .conftest import cli, compose_config

TINY = ["model=resnet10", "model.image_size=32", "inversion.steps=4", "inversion.record_every=1"]


def test_slurm_launcher_takes_its_job_shape_from_the_trainer():
    cfg = compose_config("train", ["hydra/launcher=submitit_slurm", "trainer=ddp", "trainer.devices=4",
                                   "trainer.num_nodes=2", "hydra.launcher.partition=gpu"], hydra=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("representation_probe_slurm.launcher.SlurmLauncher")
    assert launcher.tasks_per_node == launcher.gpus_per_node == cfg.trainer.devices == 4  # else DDP hangs
    assert launcher.nodes == 2 and launcher.partition == "gpu" and launcher.timeout_min > 0
    cpu = compose_config("train", ["hydra/launcher=submitit_slurm", "trainer=ddp_cpu"], hydra=True).hydra.launcher
    assert cpu.gpus_per_node is None and cpu.tasks_per_node == 2  # no GPU request: sbatch refuses one without GPUs
    invert = compose_config("invert", ["hydra/launcher=submitit_slurm"], hydra=True).hydra.launcher
    assert invert.tasks_per_node == 1 and invert.nodes == 1 and invert.gpus_per_node is None
    assert invert.cpus_per_task == 1 and invert.mem_gb is None  # any node takes it; ask for more where needed


@pytest.mark.slow
def test_submitit_local_multirun_with_a_failing_job_and_its_report(tmp_path, run_cli):
    sweep = tmp_path / "sweep"
    done = cli("invert", "-m", "hydra/launcher=submitit_local", *TINY, "logger=csv", "layers=[conv1,conv3],nope",
               f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr  # one job failed, and the sweep says so
    assert f"error: 1 of 2 jobs of the multirun in {sweep} failed:" in done.stderr
    layers = [row["layer"] for d in sweep.iterdir() if (d / "summary.json").exists()
              for row in json.loads((d / "summary.json").read_text())]
    assert layers == ["conv1", "conv3"]  # the failure did not spoil the other job
    failures = [json.loads(p.read_text()) for p in sweep.glob("*/failure.json")]
    assert len(failures) == 1 and "unknown layer 'nope'" in failures[0]["error"]

    assert run_cli("report", str(sweep)).code == 0
    page = (sweep / "report.html").read_text()
    sources = re.findall(r"<img src='([^']+)'", page)
    assert len(sources) >= 5 and all((sweep / src).is_file() for src in sources)
    assert "distances.png" in page and "mg_over_ms.png" in page
    assert "Failed or incomplete jobs (1)" in page and "unknown layer" in page


@pytest.mark.slow
def test_optuna_eps_search_runs_trials_and_reports_the_best_eps(tmp_path, run_cli):
    sweep = tmp_path / "eps"
    done = run_cli("invert", "-m", "experiment=eps_search", *TINY, "layers=conv2", "hydra.sweeper.n_trials=2",
                   "logger=wandb", f"hydra.sweep.dir={sweep}")
    assert done.code == 0, done.err[-2000:]
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    trials = [json.loads(p.read_text()) for p in sweep.glob("*/summary.json")]
    assert len(trials) == 2
    assert isinstance(best["best_value"], float) and best["best_value"] == min(t["m_g"] for t in trials)
    assert best["best_params"]["inversion.lr"] in [t["lr"] for t in trials]
    # W&B: the trials are one group in the sweep's wandb/, each named by the eps Optuna chose for it
    records = [wandb_records.run_record(run) for run in wandb_records.offline_runs(sweep)]
    assert sorted(r["display_name"] for r in records) == sorted(f"inversion.lr={t['lr']}" for t in trials)
    assert {r["run_group"] for r in records} == {str(sweep)}


@pytest.mark.slow
def test_offline_wandb_run_holds_the_m_g_and_m_i_series(tmp_path, run_cli):
    run_dir = tmp_path / "run"
    done = run_cli("invert", *TINY, "layers=conv2", "logger=wandb", "inversion.image_every=2",
                   f"hydra.run.dir={run_dir}")
    assert done.code == 0, done.err[-2000:]
    run = wandb_records.the_run(run_dir)
    history = [row for row in wandb_records.history(run) if "invert/m_g" in row]
    with (run_dir / "metrics.csv").open() as file:
        expected = list(csv.DictReader(file))
    assert [row["trainer/global_step"] for row in history] == [int(r["step"]) for r in expected]
    assert np.allclose([row["invert/m_g"] for row in history], [float(r["m_g"]) for r in expected])
    assert np.allclose([row["invert/m_i"] for row in history], [float(r["m_i"]) for r in expected])
    m_s = wandb_records.summary(run)["summary"]["final/m_s"]  # a constant: the summary, not a curve
    assert m_s > 0 and "invert/m_s" not in wandb_records.metric_keys(run)
    assert np.allclose([row["invert/m_g_over_m_s"] for row in history], [float(r["m_g"]) / m_s for r in expected])
    images = [row for row in wandb_records.history(run) if "invert/a_g._type" in row]
    assert len(images) >= 2  # a_g logged at intervals


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is installed by `make test`")
def test_report_renders_in_a_headless_browser(tmp_path, run_cli):
    runs = tmp_path / "runs"
    for name, model in (("a", "resnet10"), ("b", "resnet18")):
        done = run_cli("invert", *TINY, f"model={model}", "layers=[conv1,conv3,conv5]", "logger=csv",
                       f"hydra.run.dir={runs / name}")
        assert done.code == 0, done.err[-2000:]
    kernels = run_cli("kernels", "model=resnet10", f"hydra.run.dir={runs / 'kernels'}")
    assert kernels.code == 0, kernels.err[-2000:]
    assert run_cli("report", str(runs)).code == 0
    shot = tmp_path / "shot.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,2400", f"--screenshot={shot}",
                    (runs / "report.html").as_uri()], capture_output=True, timeout=120)
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape == (2400, 1200)
    assert (pixels < 200).mean() > 0.05  # plots, images and tables were drawn, not a blank page
    # the a_g grid row of each model is on the page with its images loaded (broken images render small)
    page = (runs / "report.html").read_text()
    assert "First-layer kernels" in page and "Failed or incomplete" not in page  # kernels is a finished run
    assert page.count("<b>resnet10 untrained</b>") == 1 and page.count("<b>resnet18 untrained</b>") == 1
