"""A self-contained HTML report (report.html + report_files/) of the runs under some directories."""

from __future__ import annotations

import html
import shutil
from pathlib import Path

from representation_probe import rundir
from representation_probe.reporting import plots, tradeoff
from representation_probe.reporting.labels import labeler, layer_order, weights_label
from representation_probe.rundir import Run, find_runs

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
                              _figure(files, "distances.png", plots.distances(inversions), out)),
                     _section("m_i against m_g", _figure(files, "mg_vs_mi.png", plots.mg_vs_mi(inversions), out)),
                     _section("m_g / m_s per layer (below 1: a_g is closer in embedding space than a')",
                              _figure(files, "mg_over_ms.png", plots.ratio(samples), out)),
                     _section("Generated inputs a_g per layer", _image_grid(samples, files, out)),
                     _section("Summary", _summary_table(samples, out))]
    trained = [r for r in runs if r.summaries and r.command == "train"]
    if trained:
        sections.append(_section("Training runs", _training_table(trained, out)))
    kernels = [(r, p) for r in runs for p in (r.trained_kernels, r.figure("kernels")) if p.is_file()]
    if kernels:
        sections.append(_section("First-layer kernels", "".join(
            _figure(files, f"kernels_{i}.png", p.read_bytes(), out, caption=_rel(r.path, out))
            for i, (r, p) in enumerate(kernels))))
    studies = [(r, p) for r in runs if r.command == "invertibility" for p in r.figures()]
    if studies:
        sections.append(_section("Invertibility studies (exact inversion, output noise, ReLU widths)", "".join(
            _figure(files, f"invertibility_{i}_{p.name}", p.read_bytes(), out, caption=_rel(r.path, out))
            for i, (r, p) in enumerate(studies))))
    for study in tradeoff.sections(runs):  # the trade-off and linear probes
        sections.append(_section(study.title, "".join(_figure(files, name, data, out) for name, data in study.figures)
                                 + _table(study.headers, study.rows, text_columns=study.text_columns)))
    failed = [r for r in runs if r.status != "done"]
    if failed:
        sections.append(_section(f"Failed or incomplete jobs ({len(failed)})", _failure_table(failed, out)))
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>representation_probe report</title>"
            f"<style>{STYLE}</style></head><body>{''.join(sections)}</body></html>")
    rundir.write_atomic(out / "report.html", page.encode())
    return out / "report.html"


# ---- HTML pieces ----------------------------------------------------------------------------------
def _section(title: str, body: str) -> str:
    return f"<h2>{html.escape(title)}</h2>{body}"


def _figure(files: Path, name: str, png: bytes, out: Path, caption: str = "") -> str:
    rundir.write_atomic(files / name, png)
    cap = f"<figcaption class='muted'>{html.escape(caption)}</figcaption>" if caption else ""
    return f"<figure><img src='{_rel(files / name, out)}' alt='{html.escape(name)}'>{cap}</figure>"


def _copy(src: Path, files: Path, out: Path) -> str:
    """Copy a run's PNG into report_files/ (the report stays valid if runs move) and return its src."""
    if not src.is_file():
        return ""
    name = "img_" + "_".join(src.relative_to(src.anchor).parts[-5:]).replace("/", "_")
    rundir.write_atomic(files / name, src.read_bytes())
    return _rel(files / name, out)


def _image_grid(samples: list[tuple[Run, dict]], files: Path, out: Path) -> str:
    """Rows: model/weights (and image, seed); columns: the target, a' and a_g of each layer."""
    layers = layer_order(s for _, s in samples)
    label_of = labeler(samples)
    rows: dict[str, dict] = {}
    for run, s in samples:
        row = rows.setdefault(label_of(run, s), {"run": run, "sample": s, "layers": {}})
        row["layers"][s["layer"]] = (run, s)
    head = "".join(f"<th>{html.escape(name)}</th>" for name in ["", "target a", "shifted a'", *layers])
    body = []
    for label, row in rows.items():
        run, s = row["run"], row["sample"]
        cells = [f"<td class='text'><b>{html.escape(label)}</b></td>",
                 _img_cell(_copy(run.target(s["image"]), files, out), ""),
                 _img_cell(_copy(run.shifted(s["image"], s["seed"]), files, out),
                           f"m_i_ref {s['m_i_ref']:.3g}")]
        for layer in layers:
            if layer not in row["layers"]:
                cells.append("<td></td>")
                continue
            lrun, ls = row["layers"][layer]
            ratio = ls["m_g_over_m_s"]
            verdict = "good" if ratio is not None and ratio < 1 else "bad"
            caption = f"<span class='{verdict}'>m_g/m_s {_fmt(ratio)}</span><br>m_i {_fmt(ls['m_i'])}"
            cells.append(_img_cell(_copy(lrun.a_g(layer, ls["image"], ls["seed"]), files, out),
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
    order = {layer: i for i, layer in enumerate(layer_order(s for _, s in samples))}
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
