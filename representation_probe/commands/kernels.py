"""`kernels`: the first-layer kernels of each `weights` entry side by side (paper Figure S5)."""

from __future__ import annotations

from omegaconf import DictConfig

from representation_probe.cli.shell import arguments, run_directory
from representation_probe.config.checks import as_list
from representation_probe.models.load import load
from representation_probe.reporting import kernel_panels
from representation_probe.reporting.labels import weights_label
from representation_probe.runs.rundir import write_atomic


def run(cfg: DictConfig) -> None:
    run_dir = run_directory()
    weights = [str(w) for w in as_list(cfg.weights)]
    panels = {weights_label(w): load(arguments(cfg.model) | dict(weights=w)).net for w in weights}
    figure = run_dir.figure("kernels")
    write_atomic(figure, kernel_panels(panels))
    run_dir.write_config(cfg)
    run_dir.write_summary(dict(command="kernels", model=cfg.model.name, weights=weights, file=figure.name))
    print(f"wrote {figure}")
