"""Figures without pyplot: a matplotlib Figure renders its PNG by itself, so the library neither picks a
backend for the user's process (a notebook keeps its inline plots) nor keeps figures in pyplot's registry."""

from __future__ import annotations

import io

import matplotlib
from matplotlib.figure import Figure

__all__ = ["colormap", "figure", "png", "subplots"]


def figure(figsize=None) -> Figure:
    return Figure(figsize=figsize)


def subplots(*args, figsize=None, **kwargs):
    """(figure, axes) as pyplot.subplots returns them."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(*args, **kwargs)


def colormap(name: str):
    return matplotlib.colormaps[name]


def png(fig: Figure, dpi: int = 110) -> bytes:
    """The figure as PNG bytes (cropped to what is drawn, so a legend placed below stays)."""
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()
