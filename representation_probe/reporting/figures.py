"""Matplotlib without a screen, and the one way a figure becomes PNG bytes."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["plt", "png"]


def png(fig, dpi: int = 110) -> bytes:
    """The figure as PNG bytes (cropped to what is drawn, so a legend placed below stays), then closed."""
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()
