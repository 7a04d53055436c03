"""The report's figures of inversion runs: distances along the run, m_i against m_g, m_g / m_s per layer."""

from __future__ import annotations

from collections import defaultdict

from matplotlib.ticker import NullFormatter

from representation_probe.reporting.figures import colormap, png, subplots
from representation_probe.reporting.labels import labeler, layer_order
from representation_probe.runs.rundir import Run


def _series(inversions: list[Run]) -> dict[str, dict[str, tuple[list[dict], float]]]:
    """layer -> series label -> (metrics rows of that sample in step order, its m_s)."""
    label = labeler([(r, s) for r in inversions for s in r.summaries])
    out: dict[str, dict[str, tuple[list[dict], float]]] = defaultdict(dict)
    for run in inversions:
        for s in run.summaries:
            rows = [m for m in run.metrics if m["layer"] == s["layer"] and m["image"] == s["image"]
                    and int(m["seed"]) == int(s["seed"])]
            out[s["layer"]][label(run, s)] = (sorted(rows, key=lambda m: m["step"]), s["m_s"])
    return out


def _panels(n: int, rows: int = 1):
    cols = min(n, 5)
    grid = (n + cols - 1) // cols
    fig, axes = subplots(rows * grid, cols, figsize=(3.3 * cols, 2.7 * rows * grid), squeeze=False)
    return fig, axes, cols


def distances(inversions: list[Run]) -> bytes:
    series = _series(inversions)
    layers = layer_order(s for run in inversions for s in run.summaries)
    fig, axes, cols = _panels(len(layers), rows=2)
    colors = _colors({label for by_label in series.values() for label in by_label})
    for i, layer in enumerate(layers):
        top, bottom = axes[2 * (i // cols), i % cols], axes[2 * (i // cols) + 1, i % cols]
        for label, (rows, m_s) in series[layer].items():
            steps = [m["step"] for m in rows]
            top.plot(steps, [m["m_g"] for m in rows], color=colors[label], label=label)
            bottom.plot(steps, [m["m_i"] for m in rows], color=colors[label])
            if m_s is not None:
                top.axhline(m_s, color=colors[label], linestyle=":", linewidth=1)
        top.set_title(layer)
        _scale(top, "y", [v for rows, m_s in series[layer].values() for v in [*(m["m_g"] for m in rows), m_s]])
        top.set_ylabel("m_g (dotted: m_s)")
        bottom.set_ylabel("m_i")
        bottom.set_xlabel("step")
    _hide_unused(axes, len(layers), cols, rows=2)
    _legend_below(fig, axes)
    return png(fig)


def mg_vs_mi(inversions: list[Run]) -> bytes:
    series = _series(inversions)
    layers = layer_order(s for run in inversions for s in run.summaries)
    fig, axes, cols = _panels(len(layers))
    colors = _colors({label for by_label in series.values() for label in by_label})
    for i, layer in enumerate(layers):
        ax = axes[i // cols, i % cols]
        for label, (rows, _) in series[layer].items():
            ax.plot([m["m_g"] for m in rows], [m["m_i"] for m in rows], color=colors[label], label=label, marker=".",
                    markersize=3)
            if rows:
                ax.plot(rows[-1]["m_g"], rows[-1]["m_i"], "o", color=colors[label])
        log_x = _scale(ax, "x", [m["m_g"] for rows, _ in series[layer].values() for m in rows])
        ax.set_title(layer)
        ax.set_xlabel("m_g (log)" if log_x else "m_g")
        ax.set_ylabel("m_i")
    _hide_unused(axes, len(layers), cols)
    _legend_below(fig, axes)
    return png(fig)


def ratio(samples: list[tuple[Run, dict]]) -> bytes:
    layers = layer_order(s for _, s in samples)
    label = labeler(samples)
    by_label: dict[str, dict[str, float]] = defaultdict(dict)
    for run, s in samples:
        by_label[label(run, s)][s["layer"]] = s["m_g_over_m_s"]
    colors = _colors(by_label)
    width = 0.8 / len(by_label)
    fig, ax = subplots(figsize=(max(5.0, 1.2 * len(layers) + 2), 3.4))
    for j, (label, ratios) in enumerate(by_label.items()):
        xs = [i + j * width for i, layer in enumerate(layers) if ratios.get(layer) is not None]
        ax.bar(xs, [ratios[layer] for layer in layers if ratios.get(layer) is not None], width, label=label,
               color=colors[label])
    ax.axhline(1.0, color="k", linestyle="--", linewidth=1)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(layers))], layers)
    ax.set_yscale("log")
    ax.set_ylabel("m_g / m_s")
    ax.legend(fontsize=7)
    return png(fig)


def _scale(ax, which: str, values) -> bool:
    """Log scale when the values span at least a decade, with labels on the powers of ten only (minor
    labels crowd each other); linear otherwise. Returns whether the scale is log."""
    values = [v for v in values if v is not None and v > 0]
    log = bool(values) and max(values) >= 10 * min(values)
    getattr(ax, f"set_{which}scale")("log" if log else "linear")
    if log:
        getattr(ax, f"{which}axis").set_minor_formatter(NullFormatter())
    return log


def _legend_below(fig, axes) -> None:
    """One legend for all panels, under them, so it never covers a curve."""
    by_label = {label: handle for ax in axes.flat for handle, label in zip(*ax.get_legend_handles_labels())}
    handles, labels = list(by_label.values()), list(by_label)
    if handles:
        fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=min(len(labels), 4),
                   fontsize=8, frameon=False)


def _colors(labels) -> dict[str, tuple]:
    cmap = colormap("tab10")
    return {label: cmap(i % 10) for i, label in enumerate(sorted(labels))}


def _hide_unused(axes, used: int, cols: int, rows: int = 1) -> None:
    for i in range(used, axes.shape[0] // rows * cols):
        for r in range(rows):
            axes[rows * (i // cols) + r, i % cols].axis("off")
