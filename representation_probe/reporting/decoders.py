"""Figures and the report section of the `decode` study: PSNR against relative depth, reconstructions
beside gradient inversion's a_g, the cross-layer matrix and the colour perturbation."""

from __future__ import annotations

import html
from collections import Counter

import torch

from representation_probe.decoders.evaluate import HELD_OUT
from representation_probe.reporting.figures import png, subplots
from representation_probe.reporting.html import Page, fmt, grid, label_cell, section, table
from representation_probe.reporting.labels import layer_order, weights_label
from representation_probe.runs.rundir import Run


def cross_heatmap(errors: torch.Tensor, layers: list[str], title: str) -> bytes:
    """MSE of decoder i (rows) fed layer j's output (columns); blank where the shapes differ."""
    fig, ax = subplots(figsize=(1.2 + 0.5 * len(layers), 1.0 + 0.45 * len(layers)))
    shown = ax.imshow(errors.numpy(), cmap="viridis")
    ax.set_xticks(range(len(layers)), layers, rotation=90, fontsize=7)
    ax.set_yticks(range(len(layers)), layers, fontsize=7)
    ax.set_xlabel("input: layer j's output")
    ax.set_ylabel("decoder of layer i")
    ax.set_title(f"{title}: reconstruction MSE", fontsize=9)
    fig.colorbar(shown, ax=ax, fraction=0.046)
    return png(fig)


def colour_grid(examples: dict[str, torch.Tensor], layers: list[str], title: str) -> bytes:
    """Rows: perturbations; columns: the perturbed image, then its reconstruction from each layer."""
    fig, axes = subplots(len(examples), 1 + len(layers), figsize=(1.3 * (1 + len(layers)), 1.35 * len(examples)),
                             squeeze=False)
    for r, (condition, images) in enumerate(examples.items()):
        for c, image in enumerate(images):
            axes[r, c].imshow(image.clamp(0, 1).permute(1, 2, 0).numpy(), interpolation="nearest")
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
            if r == 0:
                axes[r, c].set_title("perturbed" if c == 0 else layers[c - 1], fontsize=7)
        axes[r, 0].set_ylabel(condition, fontsize=7)
    fig.suptitle(title, fontsize=9)
    return png(fig)


def sections(runs: list[Run], page: Page) -> str:
    decodes = [r for r in runs if r.summaries and r.command == "decode"]
    if not decodes:
        return ""
    label = _labels(decodes)
    held = [(run, s) for run in decodes for s in run.summaries if s["image"] == HELD_OUT]
    parts = [section("Learned decoders: held-out reconstruction against relative depth",
                     page.figure("decoders_by_depth.png", _by_depth(held, label)) + _table(held, label, page)),
             section("Decoder reconstructions beside gradient inversion", _grids(decodes, label, page))]
    crosses = [(r, r.figure("cross")) for r in decodes if r.figure("cross").is_file()]
    if crosses:
        parts.append(section("Cross-layer decoding (decoder i fed layer j)", "".join(
            page.figure(f"cross_{i}.png", p.read_bytes(), caption=label[r.path]) for i, (r, p) in enumerate(crosses))))
    colours = [(r, r.figure("colour")) for r in decodes if r.figure("colour").is_file()]
    if colours:
        parts.append(section("Colour perturbation: how much of a recolouring survives per layer", "".join(
            page.figure(f"colour_{i}.png", p.read_bytes(), caption=label[r.path]) for i, (r, p) in enumerate(colours))))
    return "".join(parts)


def _labels(runs: list[Run]) -> dict:
    """run path -> 'model weights mode', with the run directory's name where two would be alike."""
    base = {r.path: f"{r.summaries[0]['model']} {weights_label(r.summaries[0]['weights'])} {r.summaries[0]['mode']}"
            for r in runs}
    count = Counter(base.values())
    return {path: text if count[text] == 1 else f"{text} [{path.name}]" for path, text in base.items()}


def _by_depth(held: list[tuple[Run, dict]], label: dict) -> bytes:
    fig, (left, right) = subplots(1, 2, figsize=(10, 3.6))
    for run in dict.fromkeys(run for run, _ in held):
        rows = sorted((s for r, s in held if r is run), key=lambda s: s.get("relative_depth") or 0)
        depth = [s.get("relative_depth") for s in rows]
        line, = left.plot(depth, [s["psnr"] for s in rows], "o-", label=label[run.path])
        if rows[0].get("chained_psnr") is not None:
            left.plot(depth, [s["chained_psnr"] for s in rows], "s--", color=line.get_color(),
                      label=f"{label[run.path]} (chained)")
        left.axhline(rows[0]["baseline_psnr"], color=line.get_color(), linestyle=":", linewidth=1)
        right.plot(depth, [s["ssim"] for s in rows], "o-", color=line.get_color())
    left.set_ylabel("held-out PSNR (dB; dotted: mean image)")
    right.set_ylabel("held-out SSIM")
    for ax in (left, right):
        ax.set_xlabel("relative depth")
    fig.legend(*left.get_legend_handles_labels(), loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2,
               fontsize=8, frameon=False)
    return png(fig)


def _table(held: list[tuple[Run, dict]], label: dict, page: Page) -> str:
    keys = ["relative_depth", "psnr", "ssim", "m_i", "chained_psnr", "colour_kept", "baseline_psnr", "epochs"]
    rows = [[label[run.path], s["layer"], *[s.get(key) for key in keys], page.rel(run.path)] for run, s in held]
    return table(["run", "layer", *keys, "directory"], rows, text_columns=2)


def _grids(runs: list[Run], label: dict, page: Page) -> str:
    """Per evaluation image: a row per run with the target and, per layer, the decoder's reconstruction
    and (when the run inverted the image too) gradient inversion's a_g."""
    out = []
    images = dict.fromkeys(s["image"] for r in runs for s in r.summaries if s["image"] != HELD_OUT)
    for image in images:
        samples = [(r, s) for r in runs for s in r.summaries if s["image"] == image]
        layers = layer_order(s for _, s in samples)
        rows = []
        for run in dict.fromkeys(r for r, _ in samples):
            by_layer = {s["layer"]: s for r, s in samples if r is run}
            rows.append([label_cell(f"{label[run.path]}: decoder"), page.image_cell(run.target(image))] + [
                page.image_cell(run.decoded(layer, image), f"PSNR {fmt(by_layer[layer]['psnr'])}")
                if layer in by_layer else "<td></td>" for layer in layers])
            if any(s.get("inversion_psnr") is not None for s in by_layer.values()):
                rows.append([label_cell(f"{label[run.path]}: inversion"), "<td></td>"] + [
                    page.image_cell(run.a_g(layer, image, by_layer[layer]["seed"]),
                                    f"PSNR {fmt(by_layer[layer].get('inversion_psnr'))}")
                    if layer in by_layer else "<td></td>" for layer in layers])
        out.append(f"<h3>{html.escape(image)}</h3>" + grid(["", "target", *layers], rows))
    return "".join(out)
