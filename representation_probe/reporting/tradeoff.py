"""Report sections on class information: the classification/reconstruction trade-off (accuracy and MSE
against w per latent size, the accuracy-vs-MSE Pareto front) and linear probes (accuracy against depth)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from representation_probe.reporting.figures import png, subplots
from representation_probe.reporting.html import Page, section, table
from representation_probe.reporting.labels import weights_label
from representation_probe.runs.rundir import Run


def sections(runs: list[Run], page: Page) -> str:
    """The trade-off and probe sections of whatever runs are among `runs` ('' when there are none)."""
    found = []
    tradeoff = [s for run in runs if run.command == "tradeoff" for s in run.summaries]
    if tradeoff:
        cells = seed_statistics(tradeoff)
        rows = [[*key, len(c["accuracy"]), _mean_sd(c["accuracy"]), _mean_sd(c["mse"]), float(np.mean(c["psnr"]))]
                for key, c in sorted(cells.items())]
        found.append(section(
            "Classification vs reconstruction (tradeoff): test accuracy and MSE, mean ± sd over seeds",
            page.figure("tradeoff_vs_weight.png", versus_weight(cells)) + page.figure("tradeoff_pareto.png", pareto(cells))
            + table(["model", "dataset", "latent", "w", "seeds", "accuracy", "MSE (x in [-1, 1])", "PSNR (dB)"], rows,
                    text_columns=2)))
    probes = [s for run in runs if run.command == "probe" for s in run.summaries]
    if probes:
        ordered = sorted(probes, key=lambda s: (_probe_label(s), s["relative_depth"] is None, s["relative_depth"] or 0))
        rows = [[s["model"], weights_label(s["weights"]), s["dataset"], s["layer"], s["relative_depth"], s["accuracy"],
                 s["val_acc"], s["best_epoch"], s["features"], s["seed"]] for s in ordered]
        found.append(section("Linear probes: test accuracy per layer", page.figure("probe_accuracy.png",
                                                                                    probe_depth(probes))
                             + table(["model", "weights", "dataset", "layer", "relative depth", "accuracy", "val acc",
                                      "best epoch", "features", "seed"], rows, text_columns=4)))
    return "".join(found)


def seed_statistics(summaries: list[dict]) -> dict[tuple, dict[str, list[float]]]:
    """(model, dataset, latent, w) -> accuracy, mse and psnr of each seed."""
    cells: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for s in summaries:
        cell = cells[(s["model"], s["dataset"], s["latent"], s["weight"])]
        for key in ("accuracy", "mse", "psnr"):
            cell[key].append(s[key])
    return cells


def _mean_sd(values: list[float]) -> str:
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}" if len(values) > 1 else f"{values[0]:.3f}"


def _panels(cells: dict) -> dict[tuple, dict[int, list[tuple[float, dict]]]]:
    """(model, dataset) -> latent -> [(w, cell)] sorted by w: one panel per architecture and data."""
    panels: dict[tuple, dict[int, list]] = defaultdict(lambda: defaultdict(list))
    for (model, dataset, latent, weight), cell in sorted(cells.items()):
        panels[(model, dataset)][latent].append((weight, cell))
    return panels


def versus_weight(cells: dict) -> bytes:
    """Accuracy and MSE against w, one line per latent size (error bars: sd over seeds)."""
    panels = _panels(cells)
    fig, axes = subplots(len(panels), 2, figsize=(10, 3.6 * len(panels)), squeeze=False)
    for row, ((model, dataset), latents) in zip(axes, panels.items()):
        for latent, points in latents.items():
            weights = [w for w, _ in points]
            for ax, key in zip(row, ("accuracy", "mse")):
                ax.errorbar(weights, [np.mean(c[key]) for _, c in points], yerr=[np.std(c[key]) for _, c in points],
                            marker="o", capsize=3, label=f"latent {latent}")
        for ax, name in zip(row, ("test accuracy", "test MSE (x in [-1, 1])")):
            ax.set(xlabel="w (weight of reconstruction)", ylabel=name, title=f"{model}, {dataset}")
            ax.grid(alpha=0.3)
        row[0].legend(fontsize=8)
    return png(fig)


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (mse, accuracy) points no other point beats on both (lower MSE and higher accuracy), by MSE."""
    front = [p for p in points if not any(q[0] <= p[0] and q[1] >= p[1] and q != p for q in points)]
    return sorted(set(front))


def pareto(cells: dict) -> bytes:
    """Accuracy against MSE per latent size: each w's mean over seeds, the non-dominated ones joined."""
    panels = _panels(cells)
    fig, axes = subplots(1, len(panels), figsize=(5.5 * len(panels), 4.4), squeeze=False)
    for ax, ((model, dataset), latents) in zip(axes[0], panels.items()):
        for latent, points in latents.items():
            means = [(float(np.mean(c["mse"])), float(np.mean(c["accuracy"]))) for _, c in points]
            line = ax.plot(*zip(*means), "o", alpha=0.5)[0]
            ax.plot(*zip(*pareto_front(means)), "-", color=line.get_color(), label=f"latent {latent}")
            for (weight, _), (mse, accuracy) in zip(points, means):
                ax.annotate(f"{weight:g}", (mse, accuracy), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set(xlabel="test MSE (lower is better)", ylabel="test accuracy", title=f"Pareto front: {model}, {dataset}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, title="labels: w", title_fontsize=7)
    return png(fig)


def _probe_label(s: dict) -> str:
    return f"{s['model']} {weights_label(s['weights'])} on {s['dataset']}"


def probe_depth(summaries: list[dict]) -> bytes:
    """Test accuracy against relative depth, one line per model, weights and probe data; dotted: chance."""
    lines: dict[str, list[tuple[float, float]]] = defaultdict(list)
    chance = {}
    for s in summaries:
        if s["relative_depth"] is not None:  # other layers are in the table only
            lines[_probe_label(s)].append((s["relative_depth"], s["accuracy"]))
        chance[s["dataset"]] = 1 / s["classes"]
    fig, ax = subplots(figsize=(7, 4.4))
    for label, points in sorted(lines.items()):
        ax.plot(*zip(*sorted(points)), marker="o", label=label)
    for dataset, level in chance.items():
        ax.axhline(level, linestyle=":", color="grey")
        ax.annotate(f"chance ({dataset})", (0, level), fontsize=7, color="grey", xytext=(2, 2), textcoords="offset points")
    ax.set(xlabel="relative depth of the probed layer", ylabel="test accuracy of the linear probe", xlim=(0, 1.05))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return png(fig)
