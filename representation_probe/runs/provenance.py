"""What made a run, recorded beside its results and checkpoints (<run dir>/provenance.json): the command as
typed, the commit of the code (and whether it had uncommitted changes), the threads, the host and the
library versions, so a number or a model can be traced to what produced it and made again."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import socket
import subprocess
import time
from pathlib import Path

import torch

LIBRARIES = ("torch", "torchvision", "lightning", "hydra-core", "omegaconf", "timm", "torchmetrics", "numpy",
             "scikit-image", "scikit-learn", "wandb", "transformers")
REPOSITORY = Path(__file__).resolve().parents[2]


def provenance(command: str, overrides: list[str]) -> dict:
    return dict(command=" ".join(["python -m representation_probe", command, *overrides]), version=_version(),
                **_commit(),
                threads=torch.get_num_threads(), omp_num_threads=os.environ.get("OMP_NUM_THREADS"),
                host=socket.gethostname(), python=platform.python_version(), at=time.strftime("%Y-%m-%dT%H:%M:%S"),
                cuda=torch.version.cuda if torch.cuda.is_available() else None, libraries=_versions())


def _commit() -> dict:
    """The checkout's commit and whether its tracked files differ from it; nothing for an installed package."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(REPOSITORY), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD") if (REPOSITORY / ".git").exists() else None
    changed = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return dict(commit=commit, uncommitted_changes=bool(changed) if commit else None)


def _version() -> str | None:
    """This package's version (a wheel install has no commit: its version says what made the run)."""
    try:
        return importlib.metadata.version("representation_probe")
    except importlib.metadata.PackageNotFoundError:
        return None


def _versions() -> dict[str, str | None]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions
