"""The layer atlas: what each probe point still knows of its input (inversion, decoders), what class
information it holds (linear probes) and how close it stays to the pixels (CKA), per weights."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from representation_probe.atlas.rows import cells, study_dir
from representation_probe.reporting.figures import colormap, png, subplots
from representation_probe.reporting.html import Page, fmt, grid, label_cell, section, table
from representation_probe.runs.rundir import Run, read_run

PANELS = (  # (title, [(column, line style, legend suffix)])
    ("input information: PSNR (dB)", [("inversion_psnr", "o-", "inversion"), ("decoder_psnr", "s--", "decoder")]),
    ("class information: probe test accuracy", [("probe_accuracy", "o-", "")]),
    ("CKA to the pixels", [("cka_vs_pixels", "o-", "")]),
    ("processing step: 1 - CKA to the previous layer", [("cka_step", "o-", "")]),
)
PSNR_CEILING = 45.0  # dB; above it an image is a copy of its target to the eye
COLUMNS = ["relative_depth", "inversion_psnr", "inversion_m_g_over_m_s", "decoder_psnr", "decoder_ssim",
           "probe_accuracy", "cka_vs_pixels", "cka_step"]


def by_depth(rows: list[dict], title: str) -> bytes:
    """Four panels against relative depth, one line per weights (inversion solid, decoder dashed); `rows` the
    atlas cells (atlas/rows.py), whose sd over the seeds, where there is one, is the band around each line."""
    fig, axes = subplots(1, len(PANELS), figsize=(4.2 * len(PANELS), 3.6))
    colors = colormap("tab10")
    labels = list(dict.fromkeys(row["label"] for row in rows))
    for ax, (name, lines) in zip(axes, PANELS):
        for i, label in enumerate(labels):
            mine = [row for row in rows if row["label"] == label]
            for column, style, suffix in lines:
                points = [(row["relative_depth"], row[column], row.get(f"{column}_sd") or 0.0) for row in mine
                          if row.get(column) is not None]
                if points:
                    x, y, sd = map(np.array, zip(*points))
                    ax.plot(x, y, style, color=colors(i % 10), label=f"{label} {suffix}".strip())
                    if sd.any():
                        ax.fill_between(x, y - sd, y + sd, color=colors(i % 10), alpha=0.18, linewidth=0)
        _clip_exact_copies(ax)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("relative depth")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=3,
               fontsize=8, frameon=False)
    seeds = max((row.get("seeds") or 1 for row in rows), default=1)
    fig.suptitle(f"layer atlas: {title}" + (f" (mean ± sd over {seeds} seeds)" if seeds > 1 else ""), fontsize=10)
    return png(fig)


def _clip_exact_copies(ax, ceiling: float = PSNR_CEILING) -> None:
    """An exact inversion (~77 dB in float32) would flatten every other PSNR: cap the axis, mark the
    capped points with their value."""
    tops = [(x, y) for line in ax.get_lines() for x, y in zip(*line.get_data()) if y > ceiling]
    if not tops:
        return
    ax.set_ylim(top=ceiling + 2)
    for x in sorted({x for x, _ in tops}):
        values = sorted(y for x2, y in tops if x2 == x)
        text = f"{values[0]:.0f}" + (f"-{values[-1]:.0f}" if round(values[-1]) != round(values[0]) else "")
        ax.annotate(f"{text} dB", (x, ceiling + 2), textcoords="offset points", xytext=(3, -9), fontsize=7)


def sections(runs: list[Run], page: Page) -> str:
    atlases = [r for r in runs if r.summaries and r.command == "atlas"]
    parts = []
    for i, run in enumerate(atlases):
        rows = cells(run.summaries)
        title = " ".join(dict.fromkeys(row.get("model") or "" for row in rows)).strip() or run.path.name
        body = page.figure(f"atlas_{i}.png", by_depth(rows, title))
        seeds = max(row["seeds"] for row in rows)
        body += table(["weights", "layer", *COLUMNS, *(["seeds"] if seeds > 1 else [])],
                      [[row["label"], row["layer"], *[_mean_sd(row, c) for c in COLUMNS],
                        *([row["seeds"]] if seeds > 1 else [])] for row in rows], text_columns=2)
        where = page.rel(run.path)
        heading = f"Layer atlas: {title}" + (f" ({where})" if where != "." else "") + \
            (f", mean ± sd over {seeds} seeds" if seeds > 1 else "")
        first = run.summaries[0].get("seed")  # the images of one seed
        parts.append(section(html.escape(heading),
                             body + _grids([r for r in run.summaries if r.get("seed") == first], page, run.path)))
    return "".join(parts)


def _mean_sd(row: dict, column: str):
    """A cell's value, with ± its sd over the seeds where it has one."""
    sd = row.get(f"{column}_sd")
    return row.get(column) if sd is None else f"{fmt(row[column])} ± {fmt(sd)}"


def _grids(rows: list[dict], page: Page, atlas: Path) -> str:
    """Per evaluation image: the target, then per layer gradient inversion's a_g and the decoder's
    reconstruction, a row pair per weights (their run directories in the rows, relative to the atlas's)."""
    layers = list(dict.fromkeys(row["layer"] for row in sorted(rows, key=lambda r: r["relative_depth"])
                                if row["relative_depth"] > 0))  # depth 0, the pixels, has no image
    out = []
    by_label = {row["label"]: {study: study_dir(atlas, path) for study, path in row["runs"].items() if path}
                for row in rows}
    first = next(iter(by_label.values()))
    inversion = read_run(first["invert"]) if "invert" in first else None
    for image in dict.fromkeys(s["image"] for s in (inversion.summaries if inversion else [])):
        lines = []
        for label, paths in by_label.items():
            invert = read_run(paths["invert"]) if "invert" in paths else None
            decode = read_run(paths["decode"]) if "decode" in paths else None
            values = {(s["layer"], s["image"]): s for s in (invert.summaries if invert else [])}
            if invert:
                lines.append([label_cell(f"{label}: inversion"), page.image_cell(invert.target(image))] + [
                    page.image_cell(invert.a_g(layer, image, values[(layer, image)]["seed"]),
                                    f"PSNR {fmt(values[(layer, image)]['psnr'])}")
                    if (layer, image) in values else "<td></td>" for layer in layers])
            if decode:
                scores = {s["layer"]: s["psnr"] for s in decode.summaries if s.get("image") == image}
                lines.append([label_cell(f"{label}: decoder"), "<td></td>"] + [
                    page.image_cell(decode.decoded(layer, image), f"PSNR {fmt(scores[layer])}" if layer in scores
                                    else "") for layer in layers])
        out.append(f"<h3>{html.escape(image)}</h3>" + grid(["", "target", *layers], lines))
    return "".join(out)
