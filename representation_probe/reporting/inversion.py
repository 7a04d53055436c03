"""The report's sections on gradient inversion runs: distances, m_i against m_g, m_g / m_s per layer,
the a_g grid and the summary table (paper Figs. 1-5, 10, S1)."""

from __future__ import annotations

from representation_probe.reporting import plots
from representation_probe.reporting.html import Page, fmt, grid, label_cell, section, table
from representation_probe.reporting.labels import labeler, layer_order, weights_label
from representation_probe.runs.rundir import Run


def sections(runs: list[Run], page: Page) -> str:
    inversions = [r for r in runs if r.summaries and r.command == "invert"]
    samples = [(run, s) for run in inversions for s in run.summaries]
    if not samples:
        return ""
    return "".join([
        section("Distances along the run (m_g, m_i vs step)",
                page.figure("distances.png", plots.distances(inversions))),
        section("m_i against m_g", page.figure("mg_vs_mi.png", plots.mg_vs_mi(inversions))),
        section("m_g / m_s per layer (below 1: a_g is closer in embedding space than a')",
                page.figure("mg_over_ms.png", plots.ratio(samples))),
        section("Generated inputs a_g per layer", _image_grid(samples, page)),
        section("Summary", _summary_table(samples, page))])


def _image_grid(samples: list[tuple[Run, dict]], page: Page) -> str:
    """Rows: model/weights (and image, seed); columns: the target, a' and a_g of each layer."""
    layers = layer_order(s for _, s in samples)
    label_of = labeler(samples)
    rows: dict[str, dict] = {}
    for run, s in samples:
        row = rows.setdefault(label_of(run, s), {"run": run, "sample": s, "layers": {}})
        row["layers"][s["layer"]] = (run, s)
    cells = []
    for label, row in rows.items():
        run, s = row["run"], row["sample"]
        line = [label_cell(label), page.image_cell(run.target(s["image"])),
                page.image_cell(run.shifted(s["image"], s["seed"]), f"m_i_ref {s['m_i_ref']:.3g}")]
        for layer in layers:
            if layer not in row["layers"]:
                line.append("<td></td>")
                continue
            lrun, ls = row["layers"][layer]
            ratio = ls["m_g_over_m_s"]
            verdict = "good" if ratio is not None and ratio < 1 else "bad"
            caption = f"<span class='{verdict}'>m_g/m_s {fmt(ratio)}</span><br>m_i {fmt(ls['m_i'])}"
            line.append(page.image_cell(lrun.a_g(layer, ls["image"], ls["seed"]), caption))
        cells.append(line)
    return grid(["", "target a", "shifted a'", *layers], cells)


def _summary_table(samples: list[tuple[Run, dict]], page: Page) -> str:
    keys = ["m_g", "m_s", "m_g_over_m_s", "m_i", "m_i_ref", "psnr", "ssim", "steps", "seconds"]
    order = {layer: i for i, layer in enumerate(layer_order(s for _, s in samples))}
    ordered = sorted(samples, key=lambda rs: (rs[1]["model"], str(rs[1]["weights"]), order[rs[1]["layer"]]))
    rows = [[s["model"], weights_label(s["weights"]), s["layer"], s["image"], s["seed"], *[s.get(k) for k in keys],
             page.rel(run.path)] for run, s in ordered]
    return table(["model", "weights", "layer", "image", "seed", *keys, "run"], rows, text_columns=4)
