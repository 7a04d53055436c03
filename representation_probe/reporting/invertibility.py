"""Figures of the `invertibility` command: the output-noise histogram (Figure S2), the singular values
of each layer and of the composed map (the "spiky ball"), and the ReLU widths against the required ones."""

from __future__ import annotations

import math

import matplotlib.ticker
import torch

from representation_probe.reporting.figures import png, subplots


def noise_histogram(noise: dict[str, torch.Tensor], m_i_ref: float, m_s: float, title: str) -> bytes:
    """Left: ||a - a''|| over the draws against ||a - a'||; right: ||O(a'') - O(a)|| against m_s."""
    d_in = noise["input_distance"][torch.isfinite(noise["input_distance"])]
    d_out = noise["output_distance"][torch.isfinite(noise["output_distance"])]
    fig, (left, right) = subplots(1, 2, figsize=(10, 3.6))
    if len(d_in):
        low = math.log10(min(float(d_in.min()), m_i_ref)) - 0.3
        high = math.log10(max(float(d_in.max()), m_i_ref)) + 0.3
        left.hist(d_in.numpy(), bins=torch.logspace(low, high, 60).numpy(), color="tab:blue")
        left.axvline(float(d_in.median()), color="tab:blue", linestyle="--",
                     label=f"median ||a - a''|| = {float(d_in.median()):.3g}")
    left.axvline(m_i_ref, color="tab:red", label=f"||a - a'|| = {m_i_ref:.3g}")
    left.set_xscale("log")
    left.set_xlabel("||a - a''||  (input space, log)")
    left.set_ylabel("draws")
    left.legend(fontsize=8)
    right.hist(d_out.numpy(), bins=40, color="tab:green")
    right.axvline(m_s, color="tab:red", label=f"||O(a') - O(a)|| = {m_s:.3g}")
    right.set_xlabel("||O(a'') - O(a)||  (output space)")
    right.set_xscale("log")
    right.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # minor labels would overlap
    right.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    return png(fig)


def spectra_plot(spectra: dict[str, torch.Tensor], title: str) -> bytes:
    """Sorted singular values of each layer's weight matrix and of the composed map / Jacobian."""
    fig, ax = subplots(figsize=(6, 3.8))
    for name, values in spectra.items():
        composed = name == "composed"
        ax.plot(range(1, len(values) + 1), values.clamp_min(1e-300).numpy(), label=name,
                color="k" if composed else None, linewidth=2 if composed else 1)
    ax.set_yscale("log")
    ax.set_xlabel("index (descending)")
    ax.set_ylabel("singular value")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return png(fig)


def relu_widths_plot(rows: list[dict], input_size: int, title: str) -> bytes:
    """Per layer: actual width, the width m (1/p)^n requires, and the Jacobian rank against m."""
    names = [row["layer"] for row in rows]
    xs = range(len(rows))
    fig, (left, right) = subplots(1, 2, figsize=(10, 3.6))
    left.plot(xs, [row["width"] for row in rows], "o-", label="actual width")
    left.plot(xs, [row["required_paper"] for row in rows], "s--", label="required m (1/p)^n (random inputs)")
    left.plot(xs, [row["required_paper_target"] for row in rows], "^:", label="required m (1/p)^n (target)")
    left.set_yscale("log")
    left.set_xticks(list(xs), names)
    left.set_ylabel("units")
    left.legend(fontsize=8)
    right.plot(xs, [row["jacobian_rank"] for row in rows], "o-", label="rank of d(layer)/d(input) at a")
    right.plot(xs, [row["active_target"] for row in rows], "x:", label="nonzero units at a")
    right.axhline(input_size, color="tab:red", label=f"input size m = {input_size}")
    right.set_xticks(list(xs), names)
    right.set_ylabel("dimensions")
    right.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    return png(fig)

