"""Plots, image grids and the HTML report, read from run directories through `rundir`."""

from representation_probe.reporting.kernels import kernel_grid, kernel_panels
from representation_probe.reporting.report import write_report

__all__ = ["kernel_grid", "kernel_panels", "write_report"]
