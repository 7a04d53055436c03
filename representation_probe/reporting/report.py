"""A self-contained HTML report (report.html + report_files/) of the runs under some directories: one
section per study, each from the run records alone."""

from __future__ import annotations

import html
import re
import shutil
import statistics
from pathlib import Path

from representation_probe.reporting import atlas, decoders, inversion, similarity, tradeoff
from representation_probe.reporting.html import STYLE, Page, section, table
from representation_probe.runs import rundir
from representation_probe.runs.rundir import Run, find_runs


def write_report(roots: list[Path], out: Path) -> Path:
    """Read every run under `roots` and write `out/report.html` with its PNGs in `out/report_files/`."""
    runs = find_runs(roots)
    done = {r.path for r in runs if r.status == "done"}
    repeated = {r.path.parent for r in runs if re.fullmatch(r"seed\d+", r.path.name)} & done
    shown = [r for r in runs if r.path not in repeated]  # a study of several seeds: each seed's run shows it
    page = Page(out)
    if page.files.exists():
        shutil.rmtree(page.files)
    sections = [f"<h1>representation_probe report</h1><p class='muted'>{len(runs)} run directories under "
                f"{', '.join(html.escape(str(r)) for r in roots)}</p>"]
    studies = (_warnings, atlas.sections, inversion.sections, decoders.sections, similarity.sections, tradeoff.sections,
               _training, _kernels, _invertibility, _failures)
    sections += [study(shown, page) for study in studies]
    sections.insert(2, _spread([r for r in runs if r.path in repeated], page))
    document = (f"<!doctype html><html><head><meta charset='utf-8'><title>representation_probe report</title>"
                f"<style>{STYLE}</style></head><body>{''.join(sections)}</body></html>")
    rundir.write_atomic(out / "report.html", document.encode())
    return out / "report.html"


SPREAD = {"probe": ("accuracy",), "decode": ("psnr", "ssim")}  # the measurements shown beside their seed spread


def _spread(parents: list[Run], page: Page) -> str:
    """Studies run over several seeds (api/seeds.py): each cell's mean ± sd over the seeds."""
    parts = []
    for run in parents:
        metrics = SPREAD.get(run.command, ())
        cells: dict[tuple, list[dict]] = {}
        for row in run.summaries:
            cells.setdefault((row.get("layer"), row.get("image")), []).append(row)
        rows = [[layer, image or "", group[0].get("relative_depth"), len(group),
                 *[_mean_sd([r[m] for r in group if r.get(m) is not None]) for m in metrics]]
                for (layer, image), group in cells.items()]
        seeds = sorted({row.get("seed") for row in run.summaries})
        parts.append(f"<h3>{html.escape(run.command)}: {html.escape(page.rel(run.path))}, seeds {seeds}</h3>"
                     + table(["layer", "image", "relative depth", "seeds", *metrics], rows, text_columns=2))
    return section("Over seeds: mean ± sd (n - 1) per cell", "".join(parts)) if parts else ""


def _mean_sd(values: list[float]) -> str:
    if not values:
        return "—"
    sd = f" ± {statistics.stdev(values):.3g}" if len(values) > 1 else ""
    return f"{statistics.mean(values):.3g}{sd}"


def _training(runs: list[Run], page: Page) -> str:
    trained = [r for r in runs if r.summaries and r.command == "train"]
    rows = [[s["model"], s.get("dataset", "?").rsplit(".", 1)[-1], s.get("train_acc"), s.get("val_acc"),
             s.get("epochs"), s.get("seconds"), page.rel(r.path)] for r in trained for s in r.summaries]
    headers = ["model", "dataset", "train acc", "val acc", "epochs", "seconds", "run"]
    return section("Training runs", table(headers, rows, text_columns=2)) if rows else ""


def _kernels(runs: list[Run], page: Page) -> str:
    kernels = [(r, p) for r in runs for p in (r.trained_kernels, r.figure("kernels")) if p.is_file()]
    figures = "".join(page.figure(f"kernels_{i}.png", p.read_bytes(), caption=page.rel(r.path))
                      for i, (r, p) in enumerate(kernels))
    return section("First-layer kernels", figures) if kernels else ""


def _invertibility(runs: list[Run], page: Page) -> str:
    studies = [(r, p) for r in runs if r.command == "invertibility" for p in r.figures()]
    figures = "".join(page.figure(f"invertibility_{i}_{p.name}", p.read_bytes(), caption=page.rel(r.path))
                      for i, (r, p) in enumerate(studies))
    return section("Invertibility studies (exact inversion, output noise, ReLU widths)", figures) if studies else ""


def _warnings(runs: list[Run], page: Page) -> str:
    """Results a check found degenerate or suspect (their summaries' `warnings`), first: no claim rests on them
    unseen."""
    rows = [[page.rel(r.path), r.command, "/".join(str(s[k]) for k in ("layer", "image", "seed", "weight", "latent")
                                                  if s.get(k) is not None), warning]
            for r in runs for s in r.summaries for warning in s.get("warnings") or []]
    body = table(["run", "command", "sample", "warning"], rows, text_columns=4, row_class=lambda i: "failed")
    return section(f"Degenerate or suspect results ({len(rows)})", body) if rows else ""


def _failures(runs: list[Run], page: Page) -> str:
    failed = [r for r in runs if r.status != "done"]
    rows = [[page.rel(r.path), r.status, " ".join(map(str, r.overrides)), r.broken or r.failure or "no summary.json"]
            for r in failed]
    body = table(["run", "status", "overrides", "error"], rows, text_columns=4, row_class=lambda i: "failed")
    return section(f"Failed or incomplete jobs ({len(failed)})", body) if failed else ""
