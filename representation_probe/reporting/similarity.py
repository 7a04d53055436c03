"""Figures of similarity runs (layer x layer heatmaps, processing-step profiles) and their report section."""

from __future__ import annotations

import html

import numpy as np

from representation_probe.reporting.figures import png, subplots
from representation_probe.reporting.html import Page, section
from representation_probe.runs.rundir import Run
from representation_probe.similarity.results import METRICS, Similarity

TITLES = {"cka": "linear CKA", "mknn": "mutual k-NN", "ii": "Information Imbalance"}
STEP = {"cka": "1 - CKA(l-1, l)", "mknn": "1 - mutual k-NN(l-1, l)", "ii": "mean of Delta(l-1 -> l), Delta(l -> l-1)"}
PIXELS = {"cka": "CKA(pixels, l)", "mknn": "mutual k-NN(pixels, l)", "ii": "Delta(l -> pixels)"}


def heatmaps(result: Similarity, metric: str) -> bytes:
    """One panel per model pair (a model with itself, then with each other): rows model a's
    representations input to output, columns model b's, each labelled with its relative depth."""
    pairs = result.pairs()
    columns = min(3, len(pairs))
    rows = -(-len(pairs) // columns)
    fig, axes = subplots(rows, columns, figsize=(4.3 * columns, 3.9 * rows), squeeze=False)
    cmap = "viridis_r" if metric == "ii" else "viridis"  # bright: alike, for every metric
    top = float(np.nanmax(result.matrices[metric])) if metric == "ii" else 1.0  # II of near images stays small
    for ax, (a, b) in zip(axes.flat, pairs):
        block = result.block(metric, a, b)
        image = ax.imshow(block, origin="lower", cmap=cmap, vmin=0, vmax=top, aspect="auto")
        for axis, ticks, model in ((ax.set_yticks, result.axis(a), a), (ax.set_xticks, result.axis(b), b)):
            axis(range(len(ticks)), [f"{result.layer[i]} ({result.depth[i]:.2g})" for i in ticks], fontsize=7)
        ax.tick_params(axis="x", labelrotation=60)
        ax.set_ylabel(result.models[a], fontsize=8)
        ax.set_xlabel(result.models[b], fontsize=8)
        if block.size <= 100:
            for (i, j), value in np.ndenumerate(block):
                ax.text(j, i, "-" if np.isnan(value) else f"{value:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if (value > top / 2) == (metric == "ii") else "black")
        fig.colorbar(image, ax=ax, fraction=0.046)
    for ax in axes.flat[len(pairs):]:
        ax.axis("off")
    fig.suptitle(METRICS[metric], fontsize=9)
    return png(fig)


def profiles(result: Similarity) -> bytes:
    """Per metric: each model's processing steps against relative depth (top), and how much of the
    pixels' structure each layer keeps (bottom)."""
    metrics = list(result.matrices)
    rows = result.profiles()
    fig, axes = subplots(2, len(metrics), figsize=(4.2 * len(metrics), 6.4), squeeze=False)
    for col, metric in enumerate(metrics):
        for label in result.models:
            mine = [r for r in rows if r["metric"] == metric and r["model"] == label]
            steps = [r for r in mine if r["step"] is not None]
            axes[0, col].plot([r["relative_depth"] for r in steps], [r["step"] for r in steps], "o-", label=label)
            axes[1, col].plot([r["relative_depth"] for r in mine if r["vs_pixels"] is not None],
                              [r["vs_pixels"] for r in mine if r["vs_pixels"] is not None], "o-", label=label)
        axes[0, col].set_title(f"{TITLES[metric]}: step {STEP[metric]}", fontsize=9)
        axes[1, col].set_title(f"what is left of the pixels: {PIXELS[metric]}", fontsize=9)
        for ax in axes[:, col]:
            ax.set_xlabel("relative depth (0 = pixels)", fontsize=8)
            ax.set_xlim(-0.03, 1.03)
            ax.grid(alpha=0.3)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8, bbox_to_anchor=(0.5, -0.04))
    return png(fig)


def sections(runs: list[Run], page: Page) -> str:
    """The report's section on every similarity run among `runs` ('' when there is none): its heatmaps
    per metric and its profiles."""
    parts = []
    found = [r for r in runs if r.command == "similarity" and r.similarity_file.is_file()]
    for i, run in enumerate(found):
        result = Similarity.load(run.similarity_file)
        first = run.summaries[0]
        where = f"{run.path.name}: {first['images']} images, pool={first['pool']}"
        parts.append(f"<h3>{html.escape(' vs '.join(result.models))}</h3>")
        name = f"similarity_{i}_{run.path.name}"  # the index keeps runs of one name apart
        parts += [page.figure(f"{name}_{metric}.png", heatmaps(result, metric), f"{TITLES[metric]} ({where})")
                  for metric in result.matrices]
        parts.append(page.figure(f"{name}_profiles.png", profiles(result), f"processing steps ({where})"))
    title = "Similarity of layers within and across models (CKA, mutual k-NN, II)"
    return section(title, "".join(parts)) if parts else ""
