"""The package as a user installs it: a wheel in a new virtual environment (reusing this one's torch), run
from another directory through its console script, with a config directory and a model of the user's own."""

import importlib.metadata
import json
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import cli_env

ROOT = Path(__file__).resolve().parents[1]
MODULE = '''
import torch
from torch import nn


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(3, 4, 3), nn.Conv2d(4, 8, 3)

    def forward(self, x):
        return self.conv2(torch.relu(self.conv1(x)))
'''


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(the new environment's bin/, a working directory outside the repository)."""
    root = tmp_path_factory.mktemp("install")
    run = lambda *args, **kw: subprocess.run(args, capture_output=True, text=True, check=True, **kw)  # noqa: E731
    source = root / "source"  # a copy: building writes build/ and *.egg-info beside the sources
    source.mkdir()
    for part in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / part, source / part)
    for part in ("conf", "representation_probe", "hydra_plugins"):
        shutil.copytree(ROOT / part, source / part, ignore=shutil.ignore_patterns("__pycache__"))
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(root / "wheel"),
        str(source), cwd=root)
    run(str(Path(sys.base_prefix) / "bin/python3"), "-m", "venv", str(root / "venv"))  # the interpreter, no venv
    (root / "venv/lib/python3.11/site-packages/reuse.pth").write_text(site.getsitepackages()[0] + "\n")
    wheel = next((root / "wheel").glob("representation_probe-*.whl"))
    run(str(root / "venv/bin/pip"), "install", "-q", "--no-deps", "--no-index", str(wheel))
    work = root / "work"
    (work / "myconf/model").mkdir(parents=True)
    (work / "myconf/model/tiny_resnet.yaml").write_text("defaults:\n  - resnet10\n  - _self_\nimage_size: 32\n")
    (work / "mymodels.py").write_text(MODULE)
    return root / "venv/bin", work


def console(installed, *args: str) -> subprocess.CompletedProcess:
    bin_dir, work = installed
    env = {k: v for k, v in cli_env().items() if k != "PYTHONPATH"}
    return subprocess.run([str(bin_dir / "representation-probe"), *args], cwd=work, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow
def test_the_wheel_runs_from_anywhere_with_a_users_config_directory_and_module(installed):
    bin_dir, work = installed
    where = subprocess.run([str(bin_dir / "python"), "-c", "import representation_probe as rp; print(rp.__file__)"],
                           cwd=work, capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(bin_dir.parent)) and "site-packages" in where  # the wheel, not the repository
    assert "invert" in console(installed, "--help").stdout

    done = console(installed, "invert", f"hydra.searchpath=[file://{work / 'myconf'}]", "model=tiny_resnet",
                   "layers=conv2", "inversion.steps=3", "logger=csv", "hydra.run.dir=own_config")
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((work / "own_config/summary.json").read_text())
    assert (summary["model"], summary["layer"]) == ("resnet10", "conv2")

    done = console(installed, "invert", "model=module", "model.target=mymodels:Tiny", "model.image_size=16",
                   "layers=conv2", "inversion.steps=3", "logger=csv", "hydra.run.dir=own_module")
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((work / "own_module/summary.json").read_text())
    assert (summary["model"], summary["layer"], summary["relative_depth"]) == ("module", "conv2", 1.0)


LAB_HYDRA = "1.3.2"  # an older hydra-core than constraints.txt's, inside pyproject.toml's range (its floor)


@pytest.mark.slow
def test_the_wheel_installs_beside_a_labs_own_torch_and_libraries_and_leaves_them(installed, tmp_path):
    """A lab's environment: this one's torch, torchvision and the rest (as if installed there), and an older
    hydra-core of its own. pip installs the wheel with its dependencies from no index at all: nothing is
    replaced, nothing downloaded."""
    wheel = next((installed[0].parents[1] / "wheel").glob("representation_probe-*.whl"))
    lab = tmp_path / "lab"
    # no pip or setuptools of its own: those beside its torch (which needs a newer setuptools than a new venv's)
    subprocess.run([str(Path(sys.base_prefix) / "bin/python3"), "-m", "venv", "--without-pip", str(lab)], check=True)
    (lab / "lib/python3.11/site-packages/reuse.pth").write_text(site.getsitepackages()[0] + "\n")
    pip = [str(lab / "bin/python"), "-m", "pip"]
    own = tmp_path / "own"
    fetched = subprocess.run([*pip, "download", "-q", "--no-deps", "-d", str(own), f"hydra-core=={LAB_HYDRA}"],
                             capture_output=True, text=True)
    if fetched.returncode:
        pytest.skip(f"PyPI unreachable for the lab's own hydra-core: {fetched.stderr.strip()[-200:]}")
    subprocess.run([*pip, "install", "-q", "--no-deps", "--no-index", *map(str, own.iterdir())], check=True)

    def versions() -> dict:
        code = ("import importlib.metadata as m, torch; print({p: m.version(p) for p in ('torch', 'torchvision', "
                "'hydra-core', 'lightning')} | {'torch at': torch.__file__})")
        return eval(subprocess.run([str(lab / "bin/python"), "-c", code], capture_output=True, text=True,
                                   check=True).stdout)

    before = versions()
    assert before["hydra-core"] == LAB_HYDRA and before["torch"] == importlib.metadata.version("torch")
    done = subprocess.run([*pip, "install", "--no-index", "--find-links", str(wheel.parent), str(wheel)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-1500:] + done.stderr[-1500:]  # every requirement met as it was
    assert versions() == before  # torch, its place and the lab's hydra-core: left as they were
