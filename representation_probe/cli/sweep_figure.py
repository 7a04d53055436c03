"""One PNG per inversion sweep, laid out like the paper's MLP figures (6, 7, 8, the ReLU widths).

A Hydra callback: an experiment file adds it under `hydra.callbacks`, and when the multirun ends it
reads the jobs' run directories (config.yaml, summary.json, metrics.csv, images/) and writes
<sweep dir>/<file>: the a_g of every job in a grid (columns and rows: two swept keys), and below it
the final m_i and m_g/m_s against a third key (`x`, e.g. the number of steps) or, without one, m_i
along each run.
"""

from __future__ import annotations

import logging
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig
from PIL import Image

from representation_probe.reporting.figures import figure, png
from representation_probe.runs import rundir

log = logging.getLogger(__name__)


class SweepFigure(Callback):
    """Writes the sweep's figure at the end of a multirun.

    Args:
        file: name of the PNG in the sweep directory.
        columns: dotted config key whose values make the grid's columns (e.g. model.widths).
        rows: dotted config key for the grid's rows (e.g. inversion.steps), or None for one row.
        x: dotted config key for the x axis of the lower plots, or None for m_i along each run.
        title: the figure's title.
    """

    def __init__(self, file: str, columns: str, rows: str | None = None, x: str | None = None, title: str = ""):
        self.file, self.columns, self.rows, self.x, self.title = file, columns, rows, x, title

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        sweep = Path(config.hydra.sweep.dir)
        jobs = read_jobs(sweep)
        if not jobs:
            log.warning("no finished inversion runs under %s: no %s", sweep, self.file)
            return
        rundir.write_atomic(sweep / self.file, sweep_figure(jobs, self.columns, self.rows, self.x, self.title))
        log.info("wrote %s", sweep / self.file)


def read_jobs(sweep: Path) -> list[dict]:
    """Each finished single-sample inversion under `sweep`: its config, summary, metrics and a_g path."""
    jobs = []
    for run in sorted(rundir.find_runs([sweep]), key=lambda r: _natural(r.path.name)):
        if run.command != "invert" or len(run.summaries) != 1:
            continue
        s = run.summaries[0]
        jobs.append(dict(config=run.config, summary=s, metrics=run.metrics, target=run.target(s["image"]),
                         a_g=run.a_g(s["layer"], s["image"], s["seed"])))
    return jobs


def _natural(name: str):
    return (0, int(name)) if name.isdigit() else (1, name)


def value(config: dict, key: str | None):
    """A dotted key of a resolved config, as a hashable label ('[1000]' for a list)."""
    if key is None:
        return ""
    node = config
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return "[" + ",".join(map(str, node)) + "]" if isinstance(node, list) else node


def _ordered(values) -> list:
    """Numbers ascending; anything else (a list of widths) in the sweep's own order."""
    unique = list(dict.fromkeys(values))
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in unique)
    return sorted(unique) if numbers else unique


def sweep_figure(jobs: list[dict], columns: str, rows: str | None, x: str | None, title: str) -> bytes:
    cols = _ordered(value(j["config"], columns) for j in jobs)
    row_values = _ordered(value(j["config"], rows) for j in jobs)
    cell = {(value(j["config"], rows), value(j["config"], columns)): j for j in jobs}
    fig = figure(figsize=(1.9 * (len(cols) + 1), 2.1 * len(row_values) + 3.2))
    grid = fig.add_gridspec(len(row_values) + 1, len(cols) + 1,
                            height_ratios=[1.0] * len(row_values) + [1.5])
    for r, row in enumerate(row_values):
        ax = fig.add_subplot(grid[r, 0])
        _show(ax, jobs[0]["target"], "target a" if r == 0 else "")
        ax.set_ylabel(f"{_short(rows)} = {row}" if rows else "", fontsize=8)
        for c, col in enumerate(cols):
            ax = fig.add_subplot(grid[r, c + 1])
            job = cell.get((row, col))
            if job is None:
                ax.axis("off")
                continue
            s = job["summary"]
            _show(ax, job["a_g"], f"{_short(columns)} {col}" if r == 0 else "")
            ax.set_xlabel(f"m_i {s['m_i']:.3g}\nm_g/m_s {s['m_g_over_m_s']:.2g}", fontsize=7)
    half = max(1, (len(cols) + 1) // 2)
    left, right = fig.add_subplot(grid[-1, :half]), fig.add_subplot(grid[-1, half:])
    for col in cols:
        series = sorted((j for j in jobs if value(j["config"], columns) == col),
                        key=lambda j: value(j["config"], x) if x else 0)
        if x:
            xs = [value(j["config"], x) for j in series]
            left.plot(xs, [j["summary"]["m_i"] for j in series], "o-", label=f"{_short(columns)} {col}")
            right.plot(xs, [j["summary"]["m_g_over_m_s"] for j in series], "o-")
        else:
            for j in series:
                left.plot([m["step"] for m in j["metrics"]], [m["m_i"] for m in j["metrics"]],
                          label=f"{_short(columns)} {col}")
                right.plot([m["step"] for m in j["metrics"]], [m["m_g"] / j["summary"]["m_s"] for m in j["metrics"]])
    m_i_ref = jobs[0]["summary"]["m_i_ref"]
    left.axhline(m_i_ref, color="k", linestyle=":", linewidth=1, label=f"m_i_ref = ||a' - a|| = {m_i_ref:.3g}")
    right.axhline(1.0, color="k", linestyle=":", linewidth=1)
    for ax, name in ((left, "m_i = ||a_g - a||"), (right, "m_g / m_s")):
        ax.set_yscale("log")
        ax.set_ylabel(name)
        ax.set_xlabel(_short(x) if x else "step")
        if x:
            ax.set_xscale("log")
    left.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    return png(fig)


def _short(key: str | None) -> str:
    return (key or "").rsplit(".", 1)[-1]


def _show(ax, path: Path, title: str) -> None:
    if path.is_file():
        with Image.open(path) as image:
            ax.imshow(image.copy(), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=8)
