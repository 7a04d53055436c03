"""`python -m representation_probe ...` end to end, in a subprocess."""

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
import torchvision

from representation_probe.models.layers import RESNET_ALIASES
from representation_probe.tasks import TASKS

pytestmark = pytest.mark.slow

TINY = ["model=resnet18", "model.image_size=32"]


def cli(*args: str, cwd) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}  # the user's default view
    env["OMP_NUM_THREADS"] = "1"  # tiny runs; see conftest.py
    return subprocess.run([sys.executable, "-m", "representation_probe", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("args", [["--help"], []], ids=["--help", "no-args"])
def test_help_lists_the_commands(args, tmp_path):
    result = cli(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert all(command in result.stdout for command in TASKS)


def test_unknown_command_fails_with_the_list(tmp_path):
    result = cli("frobnicate", cwd=tmp_path)
    assert result.returncode != 0
    assert "frobnicate" in result.stderr
    assert all(command in result.stderr for command in TASKS)


def test_layers_prints_aliases_with_shapes(tmp_path):
    result = cli("layers", "model=resnet18", "model.image_size=64", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    shapes = dict(line.split(maxsplit=1) for line in result.stdout.splitlines() if not line.startswith("#"))
    assert list(RESNET_ALIASES) == list(shapes)[: len(RESNET_ALIASES)]
    assert shapes["conv1"] == str((1, 64, 64 // 2, 64 // 2))
    assert shapes["conv5"] == str((1, 512, 64 // 32, 64 // 32))  # resnet18: basic blocks, no expansion
    assert list(tmp_path.iterdir()) == []  # prints only: no run directory


def test_invert_end_to_end_with_wandb_offline(tmp_path):
    run_dir = tmp_path / "run"
    result = cli("invert", *TINY, "layer=[conv1,conv2]", "inversion.steps=5", "logger=wandb",
                 f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [entry["layer"] for entry in summary] == ["conv1", "conv2"]
    assert (run_dir / "config.yaml").is_file() and (run_dir / "metrics.csv").is_file()
    assert list(run_dir.glob("wandb/offline-run-*/*.wandb"))


def test_multirun_writes_one_run_directory_per_job(tmp_path):
    sweep = tmp_path / "sweep"
    result = cli("invert", "-m", *TINY, "layer=conv1,conv2", "inversion.steps=3", "logger=csv",
                 f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summaries = [json.loads(p.read_text()) for p in sorted(sweep.glob("*/summary.json"))]
    assert sorted(s["layer"] for s in summaries) == ["conv1", "conv2"]


def test_a_failed_multirun_job_spares_the_others(tmp_path):
    sweep = tmp_path / "sweep"
    result = cli("invert", "-m", *TINY, "layer=conv9,conv1", "inversion.steps=3", "logger=csv",
                 f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert result.returncode != 0
    assert "error: unknown layer 'conv9'" in result.stderr
    assert json.loads((sweep / "1" / "summary.json").read_text())["layer"] == "conv1"


BAD_INPUTS = {  # overrides -> what the one error line must mention
    "unknown-model": (["model.name=resnet7"], ["resnet7", "resnet18"]),
    "unknown-layer": (["layer=conv9"], ["conv9", "conv3", "layer1.0.conv1"]),
    "missing-image": (["image=missing.png"], ["missing.png"]),
    "unreadable-image": (["image=x.png"], ["x.png"]),
    "missing-weights": (["model.weights=missing.pt"], ["missing.pt"]),
    "wrong-architecture": (["model=resnet34", "model.weights=resnet18.pt"], ["resnet18.pt", "resnet34"]),
    "unknown-weights-version": (["model.weights=IMAGENET1K_V9"], ["IMAGENET1K_V9", "IMAGENET1K_V1"]),
    "zero-steps": (["inversion.steps=0"], ["steps"]),
    "zero-steps-per-batch": (["inversion.steps_per_batch=0"], ["inversion.steps_per_batch"]),
    "zero-image-size": (["model.image_size=0"], ["image_size"]),
    "negative-image-size": (["model.image_size=-8"], ["image_size"]),
}


@pytest.fixture(scope="module")
def bad_input_runs(tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    """Every BAD_INPUTS case, two at a time: each run is mostly Python start-up."""
    folder = tmp_path_factory.mktemp("bad_inputs")
    (folder / "x.png").write_text("not an image\n")
    torch.save(torchvision.models.resnet18().state_dict(), folder / "resnet18.pt")
    base = dict(arg.split("=", 1) for arg in [*TINY, "layer=conv2", "inversion.steps=3", "logger=csv"])

    def run(name: str) -> subprocess.CompletedProcess:
        overrides = base | dict(arg.split("=", 1) for arg in BAD_INPUTS[name][0])
        args = [f"{key}={value}" for key, value in overrides.items()]
        return cli("invert", *args, f"hydra.run.dir={folder / name}", cwd=folder)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(BAD_INPUTS, pool.map(run, BAD_INPUTS)))


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_bad_input_is_one_error_line(name, bad_input_runs):
    result, mentions = bad_input_runs[name], BAD_INPUTS[name][1]
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert all(word in lines[0] for word in mentions), lines[0]
