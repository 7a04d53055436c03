"""W&B as the commands log to it, read back offline with W&B's own tools (README, *W&B*): the same keys in
every job of a sweep, what is fixed for a run as config, final values, one table, one group per multirun."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time

import pytest

from representation_probe.tracking.keys import sample_key, varying_ids

from . import wandb_records
from .conftest import cli
from .test_sweeps import TINY

pytestmark = pytest.mark.xdist_group("wandb_sweep")  # one worker runs the sweep the tests share
STEPPED = {"invert/loss", "invert/m_g", "invert/m_i", "invert/m_g_over_m_s", "invert/lr", "trainer/global_step"}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A multirun over two layers whose jobs each invert two images, W&B offline (a real subprocess)."""
    directory = tmp_path_factory.mktemp("wandb") / "sweep"
    done = cli("invert", "-m", *TINY, "logger=wandb", "images=[chelsea,astronaut]", "layers=conv2,conv3",
               f"hydra.sweep.dir={directory}", cwd=directory.parent)
    assert done.returncode == 0, done.stderr[-2000:]
    return directory


@pytest.mark.slow
def test_a_multirun_is_one_group_whose_jobs_log_the_same_keys(sweep):
    runs = {wandb_records.run_record(run)["display_name"]: run for run in wandb_records.offline_runs(sweep)}
    assert set(runs) == {"layers=conv2", "layers=conv3"}  # one run per job, named by what the sweep chose
    assert {wandb_records.run_record(run)["run_group"] for run in runs.values()} == {str(sweep)}
    assert {wandb_records.run_record(run)["job_type"] for run in runs.values()} == {"invert"}
    keys = {name: wandb_records.metric_keys(run) for name, run in runs.items()}
    assert keys["layers=conv2"] == keys["layers=conv3"] == STEPPED  # nothing fixed for the job in a key
    for name, run in runs.items():
        logged = wandb_records.summary(run)
        assert logged["state"] == "finished"
        config = logged["config"]
        summary = json.loads((sweep / ("0" if name.endswith("conv2") else "1") / "summary.json").read_text())
        assert config["layer"] == name.removeprefix("layers=") and config["model"] == "resnet10"
        assert config["relative_depth"] == summary[0]["relative_depth"] and config["seed"] == 0
        # final values: the mean and each image's (what varies inside the job), as summary.json has them
        finals = logged["summary"]
        assert finals["final/chelsea/m_g"] == pytest.approx(summary[0]["m_g"], rel=1e-6)
        assert finals["final/m_g"] == pytest.approx((summary[0]["m_g"] + summary[1]["m_g"]) / 2, rel=1e-6)
        assert finals["invert/m_g"]["min"] <= finals["invert/m_g"]["last"]  # its history kept min and last
        tables = list(run.glob("files/media/table/invert/results*.table.json"))
        assert len(tables) == 1
        table = json.loads(tables[0].read_text())
        assert table["columns"][:2] == ["image", "relative_depth"] and "image" in table["columns"][2:]
        assert len(table["data"]) == 2  # a row per sample, its a_g as an image column
    charts = [r for r in wandb_records.records(runs["layers=conv2"]) if r.get("type") == "config"]
    assert any("_charts/invert/m_i_vs_m_g" in str(r) for r in charts)  # the paper's Figs. 4-5, per run


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is installed by `make test`")
def test_leet_overlays_the_jobs_of_a_sweep_on_one_chart(sweep, tmp_path):
    """W&B's terminal viewer on the sweep's wandb/: selecting the second job draws it on the same m_g chart."""
    values = [[row["invert/m_g"] for row in wandb_records.history(run) if "invert/m_g" in row]
              for run in wandb_records.offline_runs(sweep)]
    low, high = min(map(min, values)), max(map(max, values))
    session = f"leet{time.monotonic_ns()}"
    (sweep / "wandb" / ".wandb-leet.json").unlink(missing_ok=True)  # LEET keeps its selection there: start afresh
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "200", "-y", "50",
                    f"XDG_CONFIG_HOME={tmp_path} {wandb_records.WANDB} leet {sweep / 'wandb'}"], check=True)
    try:
        one = _screen(session, until="Runs [2 items]")
        subprocess.run(["tmux", "send-keys", "-t", session, "Down", "Space"], check=True)
        both = _screen(session, until="● offline-run")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)
    assert "Metrics [1-6 of 6]" in one and "○ offline-run" in one  # one job shown; one chart per metric kind
    shown = _y_axis(one, "invert/m_g")
    assert not (shown[0] <= low * 1.05 and shown[1] >= high * 0.95)  # one job's curve alone
    shown = _y_axis(both, "invert/m_g")
    assert shown[0] <= low * 1.05 and shown[1] >= high * 0.95  # both jobs' curves on one chart


def _screen(session: str, until: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while True:
        time.sleep(1)
        screen = subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True).stdout
        if until in screen and "invert/m_g " in screen or time.monotonic() > deadline:
            return screen


def _y_axis(screen: str, title: str) -> tuple[float, float]:
    """The lowest and highest y label of a LEET chart (its labels stand left of the axis, under the title)."""
    lines = screen.splitlines()
    title = re.compile(rf"│{re.escape(title)}\s+(\[x: [^]]*\])?\s*│")  # its x axis's name if there is room
    row, found = next((i, m) for i, line in enumerate(lines) if (m := title.search(line)))
    column, labels = found.start() + 1, []
    for line in lines[row + 1:]:
        label = re.match(r"\s*(-?[0-9.]+(?:e[-+]?[0-9]+)?)\s*[│└]", line[column:column + 10])
        if label:
            labels.append(float(label.group(1)))
        if "└" in line[column:column + 10]:
            break
    return min(labels), max(labels)


@pytest.mark.slow
def test_the_dashboard_spec_is_built_offline_from_the_keys_the_runs_logged(sweep, run_cli):
    done = run_cli("dashboard", str(sweep))
    assert done.code == 0, done.err
    assert f"dashboard {sweep} publish=true" in done.out  # the one command that publishes it later
    spec = json.loads((sweep / "wandb" / "workspace.json").read_text())
    sections = spec["spec"]["section"]["panel_bank_config"]["sections"]
    panels = {p["config"]["chart_title"]: p for s in sections for p in s["panels"]}
    assert panels["m_g / m_s"]["config"]["metrics"] == ["invert/m_g_over_m_s"]
    assert panels["m_g / m_s"]["config"]["group_by"] == "layer.value"  # a line per layer
    final = panels["final m_i against final m_g (paper Figs. 4-5)"]["config"]
    assert (final["x_axis"], final["y_axis"]) == ("summary:final/m_g", "summary:final/m_i")
    run_sets = spec["spec"]["section"]["run_sets"]
    assert run_sets[0]["filters"]["filters"][0]["value"] == str(sweep)  # the sweep's group only
    logged = [wandb_records.summary(run) for run in wandb_records.offline_runs(sweep)]
    history = set().union(*(wandb_records.metric_keys(run) for run in wandb_records.offline_runs(sweep)))
    for panel in sections[0]["panels"]:  # every key the inversion panels draw is one the runs logged
        assert set(panel["config"]["metrics"]) <= history
    for axis in (final["x_axis"], final["y_axis"]):
        assert all(axis.removeprefix("summary:") in run["summary"] for run in logged)


@pytest.mark.slow
def test_a_run_of_several_layers_has_one_chart_per_metric_kind_and_a_quiet_console(tmp_path):
    run_dir = tmp_path / "run"
    done = cli("invert", *TINY, "logger=wandb", "layers=[conv1,conv2,conv3]", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    run = wandb_records.the_run(run_dir)
    assert wandb_records.metric_keys(run) == STEPPED  # not a chart per layer
    visualized = str([r for r in wandb_records.records(run) if r.get("type") == "config"])
    for kind in ("m_g_over_m_s", "m_i"):  # the layers' curves: one chart per kind, a line per layer
        assert f"_charts/invert/curves/{kind}" in visualized
    finals = wandb_records.summary(run)["summary"]
    assert {f"final/{layer}/m_g" for layer in ("conv1", "conv2", "conv3")} <= set(finals)
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    said = [re.sub(r"^\[[^]]*\]", "", line) for line in lines]  # without the time stamps
    assert len(said) == len(set(said)), lines  # each line once
    assert not any("Tip" in line or "anonymous" in line or "srun" in line for line in lines), lines
    assert sum("W&B run" in line for line in lines) == 1  # and where the run went, once


def test_a_sample_is_keyed_by_the_fewest_ids_that_tell_the_rows_of_a_run_apart():
    rows = [dict(model=m, label=f"{m} untrained", layer=layer, seed=0) for m in ("a", "b") for layer in ("x", "y")]
    assert varying_ids(rows, ("model", "layer", "seed", "label")) == ["model", "layer"]  # the label follows
    assert [sample_key(row, ["model", "layer"]) for row in rows[:2]] == ["a/x", "a/y"]
    same_name = [dict(model="a", label=label, layer="x") for label in ("a untrained", "a trained")]
    assert varying_ids(same_name, ("model", "layer", "label")) == ["label"]
    assert sample_key(dict(image="chelsea", seed=1), ["image", "seed"]) == "chelsea/seed1"
    assert varying_ids([dict(layer="x", seed=0)]) == []  # a run of one sample: keys without a sample part
