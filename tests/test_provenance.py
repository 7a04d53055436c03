"""Every run records what made it (provenance.json): a command that makes it again, the commit, the versions."""

from __future__ import annotations

import json
import shlex
import subprocess

import torch

from representation_probe.runs.provenance import REPOSITORY


def test_a_run_records_the_command_that_makes_it_again_the_commit_and_the_versions(tmp_path, run_cli):
    run_dir = tmp_path / "run"
    done = run_cli("invert", "model=resnet10", "model.image_size=32", "inversion.steps=2", "logger=csv",
                   f"hydra.run.dir={run_dir}")
    assert done.code == 0, done.err[-2000:]
    record = json.loads((run_dir / "provenance.json").read_text())
    words = shlex.split(record["command"])
    assert words[:4] == ["python", "-m", "representation_probe", "invert"]
    assert "inversion.steps=2" in words and f"hydra.run.dir={run_dir}" in words  # the run again, in this directory
    head = subprocess.run(["git", "-C", str(REPOSITORY), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:
        assert record["commit"] == head.stdout.strip() and isinstance(record["uncommitted_changes"], bool)
    assert record["libraries"]["torch"] == torch.__version__.split("+")[0]
    assert record["threads"] == torch.get_num_threads()
