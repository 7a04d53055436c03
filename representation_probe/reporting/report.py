"""A self-contained HTML report (report.html + report_files/) of inversion and training runs."""

from __future__ import annotations

import html
import io
import shutil
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402

from representation_probe import rundir  # noqa: E402
from representation_probe.reporting.runs import Run, find_runs, layer_order, weights_label  # noqa: E402

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
.muted { color: #777; } figure { margin: 1em 0; } figure img { max-width: 100%; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 13px; }
th, td { padding: 3px 8px; border-bottom: 1px solid #eee; text-align: right; }
th { background: #f6f6f6; } td.text, th.text { text-align: left; }
table.grid td { text-align: center; vertical-align: top; border: none; padding: 4px; }
table.grid img { width: 112px; height: 112px; image-rendering: pixelated; border: 1px solid #ccc; }
table.grid .caption { font-size: 11px; color: #555; }
.good { color: #1a7f37; } .bad { color: #c62828; } .failed td { background: #fff0f0; }
"""


def write_report(roots: list[Path], out: Path) -> Path:
    """Read every run under `roots` and write `out/report.html` with its PNGs in `out/report_files/`."""
    runs = find_runs(roots)
    files = out / "report_files"
    if files.exists():
        shutil.rmtree(files)
    inversions = [r for r in runs if r.summaries and r.command == "invert"]
    samples = [(run, s) for run in inversions for s in run.summaries]
    sections = [f"<h1>representation_probe report</h1><p class='muted'>{len(runs)} run directories under "
                f"{', '.join(html.escape(str(r)) for r in roots)}</p>"]
    if samples:
        sections += [_section("Distances along the run (m_g, m_i vs step)",
                              _figure(files, "distances.png", _plot_distances(inversions), out)),
                     _section("m_i against m_g", _figure(files, "mg_vs_mi.png", _plot_mg_vs_mi(inversions), out)),
                     _section("m_g / m_s per layer (below 1: a_g is closer in embedding space than a')",
                              _figure(files, "mg_over_ms.png", _plot_ratio(samples), out)),
                     _section("Generated inputs a_g per layer", _image_grid(samples, files, out)),
                     _section("Summary", _summary_table(samples, out))]
    trained = [r for r in runs if r.summaries and r.command == "train"]
    if trained:
        sections.append(_section("Training runs", _training_table(trained, out)))
    kernels = [(r, p) for r in runs for p in (r.image("conv1_kernels.png"), r.path / "kernels.png") if p and p.is_file()]
    if kernels:
        sections.append(_section("First-layer kernels", "".join(
            _figure(files, f"kernels_{i}.png", p.read_bytes(), out, caption=_rel(r.path, out))
            for i, (r, p) in enumerate(kernels))))
    studies = [(r, r.path / name) for r in runs if r.command == "invertibility"
               for name in ("spectra.png", "noise_histogram.png", "relu_widths.png") if (r.path / name).is_file()]
    if studies:
        sections.append(_section("Invertibility studies (exact inversion, output noise, ReLU widths)", "".join(
            _figure(files, f"invertibility_{i}_{p.name}", p.read_bytes(), out, caption=_rel(r.path, out))
            for i, (r, p) in enumerate(studies))))
    failed = [r for r in runs if r.status != "done"]
    if failed:
        sections.append(_section(f"Failed or incomplete jobs ({len(failed)})", _failure_table(failed, out)))
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>representation_probe report</title>"
            f"<style>{STYLE}</style></head><body>{''.join(sections)}</body></html>")
    rundir.write_atomic(out / "report.html", page.encode())
    return out / "report.html"


# ---- figures --------------------------------------------------------------------------------------
def _labeler(samples: list[tuple[Run, dict]]):
    """(run, sample) -> a legend label: model and weights, plus image and seed when several, plus the
    run directory's name when two runs would otherwise share a label."""
    many = len({(s["image"], s["seed"]) for _, s in samples}) > 1

    def base(sample: dict) -> str:
        label = f"{sample.get('model', '?')} {weights_label(sample.get('weights', 'none'))}"
        if "widths" in sample:  # MLPs of one sweep differ only in their widths
            label = f"{sample['model']} {sample['widths']}"
        return f"{label} {sample['image']} s{sample['seed']}" if many else label

    runs_of: dict[str, set] = defaultdict(set)
    for run, s in samples:
        runs_of[base(s)].add(run.path)
    return lambda run, s: base(s) if len(runs_of[base(s)]) == 1 else f"{base(s)} [{run.path.name}]"


def _series(inversions: list[Run]) -> dict[str, dict[str, tuple[list[dict], float]]]:
    """layer -> series label -> (metrics rows of that sample in step order, its m_s)."""
    label = _labeler([(r, s) for r in inversions for s in r.summaries])
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
    fig, axes = plt.subplots(rows * grid, cols, figsize=(3.3 * cols, 2.7 * rows * grid), squeeze=False)
    return fig, axes, cols


def _plot_distances(inversions: list[Run]) -> bytes:
    series = _series(inversions)
    layers = layer_order(series)
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
    return _png(fig)


def _plot_mg_vs_mi(inversions: list[Run]) -> bytes:
    series = _series(inversions)
    layers = layer_order(series)
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
    return _png(fig)


def _plot_ratio(samples: list[tuple[Run, dict]]) -> bytes:
    layers = layer_order(s["layer"] for _, s in samples)
    label = _labeler(samples)
    by_label: dict[str, dict[str, float]] = defaultdict(dict)
    for run, s in samples:
        by_label[label(run, s)][s["layer"]] = s["m_g_over_m_s"]
    colors = _colors(by_label)
    width = 0.8 / len(by_label)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(layers) + 2), 3.4))
    for j, (label, ratios) in enumerate(by_label.items()):
        xs = [i + j * width for i, layer in enumerate(layers) if ratios.get(layer) is not None]
        ax.bar(xs, [ratios[layer] for layer in layers if ratios.get(layer) is not None], width, label=label,
               color=colors[label])
    ax.axhline(1.0, color="k", linestyle="--", linewidth=1)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(layers))], layers)
    ax.set_yscale("log")
    ax.set_ylabel("m_g / m_s")
    ax.legend(fontsize=7)
    return _png(fig)


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
    cmap = plt.get_cmap("tab10")
    return {label: cmap(i % 10) for i, label in enumerate(sorted(labels))}


def _hide_unused(axes, used: int, cols: int, rows: int = 1) -> None:
    for i in range(used, axes.shape[0] // rows * cols):
        for r in range(rows):
            axes[rows * (i // cols) + r, i % cols].axis("off")


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")  # keeps a legend placed below
    plt.close(fig)
    return buffer.getvalue()


# ---- HTML pieces ----------------------------------------------------------------------------------
def _section(title: str, body: str) -> str:
    return f"<h2>{html.escape(title)}</h2>{body}"


def _figure(files: Path, name: str, png: bytes, out: Path, caption: str = "") -> str:
    rundir.write_atomic(files / name, png)
    cap = f"<figcaption class='muted'>{html.escape(caption)}</figcaption>" if caption else ""
    return f"<figure><img src='{_rel(files / name, out)}' alt='{html.escape(name)}'>{cap}</figure>"


def _copy(src: Path | None, files: Path, out: Path) -> str:
    """Copy a run's PNG into report_files/ (the report stays valid if runs move) and return its src."""
    if src is None or not src.is_file():
        return ""
    name = "img_" + "_".join(src.relative_to(src.anchor).parts[-5:]).replace("/", "_")
    rundir.write_atomic(files / name, src.read_bytes())
    return _rel(files / name, out)


def _image_grid(samples: list[tuple[Run, dict]], files: Path, out: Path) -> str:
    """Rows: model/weights (and image, seed); columns: the target, a' and a_g of each layer."""
    layers = layer_order(s["layer"] for _, s in samples)
    label_of = _labeler(samples)
    rows: dict[str, dict] = {}
    for run, s in samples:
        row = rows.setdefault(label_of(run, s), {"run": run, "sample": s, "layers": {}})
        row["layers"][s["layer"]] = (run, s)
    head = "".join(f"<th>{html.escape(name)}</th>" for name in ["", "target a", "shifted a'", *layers])
    body = []
    for label, row in rows.items():
        run, s = row["run"], row["sample"]
        cells = [f"<td class='text'><b>{html.escape(label)}</b></td>",
                 _img_cell(_copy(run.image(f"target_{s['image']}.png"), files, out), ""),
                 _img_cell(_copy(run.image(f"shifted_{s['image']}_seed{s['seed']}.png"), files, out),
                           f"m_i_ref {s['m_i_ref']:.3g}")]
        for layer in layers:
            if layer not in row["layers"]:
                cells.append("<td></td>")
                continue
            lrun, ls = row["layers"][layer]
            ratio = ls["m_g_over_m_s"]
            verdict = "good" if ratio is not None and ratio < 1 else "bad"
            caption = f"<span class='{verdict}'>m_g/m_s {_fmt(ratio)}</span><br>m_i {_fmt(ls['m_i'])}"
            cells.append(_img_cell(_copy(lrun.image(f"a_g_{layer}_{ls['image']}_seed{ls['seed']}.png"), files, out),
                                   caption))
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table class='grid'><tr>{head}</tr>{''.join(body)}</table>"


def _img_cell(src: str, caption: str) -> str:
    img = f"<img src='{src}' alt=''>" if src else "<span class='muted'>missing</span>"
    return f"<td>{img}<div class='caption'>{caption}</div></td>"


def _fmt(value) -> str:
    return "—" if value is None else f"{value:.3g}" if isinstance(value, float) else html.escape(str(value))


def _table(headers: list[str], rows: list[list], text_columns: int = 1, row_class=None) -> str:
    head = "".join(f"<th class='{'text' if i < text_columns else ''}'>{html.escape(h)}</th>"
                   for i, h in enumerate(headers))
    body = "".join(
        f"<tr class='{row_class(i) if row_class else ''}'>"
        + "".join(f"<td class='{'text' if j < text_columns else ''}'>{_fmt(v)}</td>" for j, v in enumerate(row))
        + "</tr>" for i, row in enumerate(rows))
    return f"<table><tr>{head}</tr>{body}</table>"


def _summary_table(samples: list[tuple[Run, dict]], out: Path) -> str:
    keys = ["m_g", "m_s", "m_g_over_m_s", "m_i", "m_i_ref", "psnr", "ssim", "steps", "seconds"]
    order = {layer: i for i, layer in enumerate(layer_order(s["layer"] for _, s in samples))}
    ordered = sorted(samples, key=lambda rs: (rs[1]["model"], str(rs[1]["weights"]), order[rs[1]["layer"]]))
    rows = [[s["model"], weights_label(s["weights"]), s["layer"], s["image"], s["seed"], *[s.get(k) for k in keys],
             _rel(run.path, out)] for run, s in ordered]
    return _table(["model", "weights", "layer", "image", "seed", *keys, "run"], rows, text_columns=4)


def _training_table(runs: list[Run], out: Path) -> str:
    rows = [[s["model"], s.get("dataset", "?").rsplit(".", 1)[-1], s.get("train_acc"), s.get("val_acc"),
             s.get("epochs"), s.get("seconds"), _rel(r.path, out)] for r in runs for s in r.summaries]
    return _table(["model", "dataset", "train acc", "val acc", "epochs", "seconds", "run"], rows, text_columns=2)


def _failure_table(runs: list[Run], out: Path) -> str:
    rows = [[_rel(r.path, out), r.status, " ".join(map(str, r.overrides)), r.failure or "no summary.json"]
            for r in runs]
    return _table(["run", "status", "overrides", "error"], rows, text_columns=4, row_class=lambda i: "failed")


def _rel(path: Path, out: Path) -> str:
    try:
        return str(path.resolve().relative_to(out.resolve()))
    except ValueError:
        return str(path)
