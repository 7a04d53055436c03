"""Plots and image grids read from run directories."""

from representation_probe.reporting.kernels import kernel_grid, write_kernel_panels

__all__ = ["kernel_grid", "write_kernel_panels"]
