"""Plots, image grids and the HTML report, read from run directories."""

from representation_probe.reporting.kernels import kernel_grid, write_kernel_panels
from representation_probe.reporting.report import write_report
from representation_probe.reporting.runs import Run, find_runs, read_run

__all__ = ["Run", "find_runs", "kernel_grid", "read_run", "write_kernel_panels", "write_report"]
