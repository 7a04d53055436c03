"""Shared helpers: compose the real configs from conf/, run commands in-process against tmp_path, or
run the real command line in a subprocess."""

from __future__ import annotations

import copy
import importlib
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, open_dict

from representation_probe.cli import task
from representation_probe.cli.shell import arguments
from representation_probe.inversion import InversionModule, Sample
from representation_probe.models import Backbone, LayerEmbedder
from representation_probe.models.load import load

CONF = Path(__file__).resolve().parents[1] / "conf"
ENTRY_CONFIGS = sorted(p.stem for p in CONF.glob("*.yaml"))  # the commands

# Tiny tensors gain nothing from intra-op threads, and on a busy 2-core machine OpenMP's spinning
# threads make a 1 s test take 30 s.
torch.set_num_threads(1)


LONGEST = ("slurm", "gpu_check")  # a test group or test name of a minute or more: started first of all


def pytest_collection_modifyitems(items):
    """The slow tests first, the longest of them before the others, so that with workers (pytest -n) the long
    ones start early and short ones fill the end."""
    def longest(item) -> bool:
        group = item.get_closest_marker("xdist_group")
        return any(word in item.name or (group is not None and word in group.args) for word in LONGEST)

    items.sort(key=lambda item: (item.get_closest_marker("slow") is None, not longest(item)))


def compose_config(config_name: str, overrides: list[str] = (), hydra: bool = False) -> DictConfig:
    """An entry config of conf/ composed with command-line style overrides, as the CLI would."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name, overrides=list(overrides), return_hydra_config=hydra)


def build_model(name: str = "resnet18", image_size: int = 32, *overrides: str) -> Backbone:
    """A backbone built from conf/model/<name>.yaml."""
    cfg = compose_config("invert", [f"model={name}", f"model.image_size={image_size}", *overrides])
    return load(arguments(cfg.model))


def run_inversion(backbone: Backbone, targets: torch.Tensor, samples: list[Sample], *overrides: str,
                  callbacks: list = ()) -> InversionModule:
    """Fit an InversionModule built from conf/inversion (overrides like 'inversion.steps=30') on CPU."""
    cfg = compose_config("invert", ["logger=csv", *overrides])
    embedder = LayerEmbedder(backbone, [s.layer for s in samples])
    module = InversionModule(embedder=embedder, targets=targets, samples=samples, **arguments(cfg.inversion))
    trainer = instantiate(cfg.trainer, max_epochs=1, logger=False, enable_checkpointing=False,
                          enable_model_summary=False, enable_progress_bar=False, num_sanity_val_steps=0,
                          callbacks=list(callbacks))
    trainer.fit(module)
    return module


def cli(*args: str, cwd: Path, timeout: int = 300, **env: str) -> subprocess.CompletedProcess:
    """`python -m representation_probe <args>` in a subprocess, as a user runs it (`env`: extra variables)."""
    return subprocess.run(cli_command(*args), cwd=cwd, env=cli_env(**env), capture_output=True, text=True,
                          timeout=timeout)


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "representation_probe", *args]


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}  # the user's default view
    env["OMP_NUM_THREADS"] = "1"  # tiny runs; see above
    return env | extra


@pytest.fixture
def run_cli(capsys, monkeypatch):
    """(*args) -> Result(exit code, stdout, stderr, run_dir=None) of `python -m representation_probe <args>`
    run in-process through the real entry point (Hydra's composition and run directories included)."""
    from hydra.core.global_hydra import GlobalHydra

    from representation_probe.__main__ import main as entry_point

    def run(*args: str) -> Result:
        monkeypatch.setattr(sys, "argv", ["representation_probe", *args])
        monkeypatch.setenv("HYDRA_FULL_ERROR", "1")  # what the entry point sets; restored afterwards
        capsys.readouterr()
        root = logging.getLogger()
        handlers, level = list(root.handlers), root.level
        disabled = {name: log.disabled for name, log in root.manager.loggerDict.items() if hasattr(log, "disabled")}
        try:
            entry_point()
            code = 0
        except SystemExit as exit:
            code = exit.code
        finally:  # Hydra configured logging for the job (report disables every logger): undo it
            GlobalHydra.instance().clear()
            HydraConfig.instance().cfg = None
            for handler in root.handlers:
                if handler not in handlers:
                    handler.close()
            root.handlers[:], root.level = handlers, level
            for name, log in root.manager.loggerDict.items():
                if hasattr(log, "disabled"):
                    log.disabled = disabled.get(name, False)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err, None)

    return run


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


@pytest.fixture
def hydra_job(tmp_path):
    """Set up a command's job in-process as Hydra's run_job would: HydraConfig set, `hydra` node removed.

    Returns a function (command, overrides, run_dir=None) -> (task config, run directory); the run
    directory defaults to a fresh folder under tmp_path.
    """
    count = 0

    def setup(command: str, overrides: list[str], run_dir: Path | None = None):
        nonlocal count
        count += 1
        run_dir = run_dir or tmp_path / f"run{count}"
        cfg = compose_config(command, overrides, hydra=True)
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(run_dir)
        HydraConfig.instance().set_config(cfg)
        task_cfg = copy.deepcopy(cfg)
        with open_dict(task_cfg):
            del task_cfg["hydra"]
        return task_cfg, run_dir

    yield setup
    HydraConfig.instance().cfg = None


@pytest.fixture
def run_task(hydra_job):
    """(command, overrides, run_dir=None) -> (the command's return value, run directory); errors raise."""

    def run(command: str, overrides: list[str], run_dir: Path | None = None):
        cfg, run_dir = hydra_job(command, overrides, run_dir)
        return importlib.import_module(f"representation_probe.commands.{command}").run(cfg), run_dir

    return run


class Result(NamedTuple):
    code: int
    out: str
    err: str
    run_dir: Path


@pytest.fixture
def run_main(hydra_job, capsys):
    """(command, overrides, run_dir=None) -> Result(exit code, stdout, stderr, run directory) of the task Hydra runs
    for every command, in-process: what a user sees, without the interpreter's start-up."""

    def run(command: str, overrides: list[str], run_dir: Path | None = None) -> Result:
        cfg, run_dir = hydra_job(command, overrides, run_dir)
        capsys.readouterr()
        try:
            task.main(cfg)
            code = 0
        except SystemExit as exit:
            code = exit.code
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err, run_dir)

    return run
