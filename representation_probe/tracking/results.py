"""What a study's result tells W&B (README, *W&B*): `final/*` summary values, the ids as config, one table of
the rows and the charts drawn from it. Keys hold only what varies inside a run (keys.py)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from pathlib import Path

from representation_probe.tracking.keys import as_text, sample_key, varying_ids

IDS = ("model", "weights", "layer", "relative_depth", "image", "seed")  # a row's ids, as config
MAX_ROWS = 10_000  # W&B's limit on a logged table (and so on a line_series chart)

def log_result(loggers, result) -> None:
    """A study's final rows to each W&B run: `final/*` summary values, the ids as config, one table of
    the rows (with the image of each row where the study has one), and its charts."""
    log_rows(loggers, result.command, result.rows, metrics=result.metrics, conditions=result.conditions,
             by_depth=result.by_depth, images=result.row_images(), curves=result.curves())


def log_rows(loggers, command: str, rows: list[dict], metrics: Sequence[str], conditions: Sequence[str] = (),
             by_depth: Sequence[str] = (), images: list | None = None, curves: dict | None = None) -> None:
    """See log_result; `curves` as Result.curves returns them."""
    runs = [logger.experiment for logger in loggers if type(logger).__name__ == "WandbLogger"]
    runs = [run for run in runs if hasattr(run, "summary")]  # not another DDP rank's stand-in
    if not runs or not rows:
        return
    import wandb

    ids = [key for key in (*IDS, *conditions) if any(key in row for row in rows)]
    varying = varying_ids(rows, [key for key in ids if key != "relative_depth"])  # depth follows the layer
    config = {key: _one_or_all([row.get(key) for row in rows]) for key in ids  # `layer: conv1,conv2` if several
              if not (key == "relative_depth" and "layer" in varying)}
    metrics = [m for m in metrics if any(_number(row.get(m)) is not None for row in rows)]
    summary = {}
    for metric in metrics:
        values = [v for v in (_number(row.get(metric)) for row in rows) if v is not None]
        summary[f"final/{metric}"] = sum(values) / len(values)  # a run of one row: its value
        if varying:
            summary |= {f"final/{sample_key(row, varying)}/{metric}": _number(row.get(metric)) for row in rows}
    if "seed" in varying:
        summary |= _over_seeds(rows, [key for key in varying if key != "seed"], metrics)
    warnings = [w for row in rows for w in row.get("warnings") or []]
    summary |= {"final/warnings": len(warnings), "warnings": "; ".join(warnings)} if warnings else {}
    columns = [*varying, *(["relative_depth"] if "relative_depth" in ids else []), *metrics]
    table = wandb.Table(columns=[*columns, *(["image"] if images else [])])
    for i, row in enumerate(rows[:MAX_ROWS]):
        image = [None if images[i] is None else wandb.Image(_hwc(images[i]))] if images else []
        table.add_data(*[_cell(row.get(key)) for key in columns], *image)
    # A chart is drawn from its config entry and the table it names; under `_charts/` the table's file
    # record stays out of the metric grids (W&B's and LEET's draw every numeric history key, `_` ones aside).
    charts = {}
    if {"m_g", "m_i"} <= set(metrics):  # the paper's Figs. 4-5: pixel against embedding distance
        charts["m_i_vs_m_g"] = wandb.plot.scatter(table, "m_g", "m_i", title="m_i against m_g")
    if "layer" in varying and "relative_depth" in columns:
        for metric in (m for m in by_depth if m in metrics):
            charts[f"{metric}_by_depth"] = wandb.plot.scatter(table, "relative_depth", metric,
                                                              title=f"{metric} against relative depth")
    for kind, lines in (curves or {}).items():  # one chart per kind, a line per sample
        lines = dict(list(lines.items())[:MAX_ROWS // max(1, max(map(len, lines.values()), default=1))])
        xs = [[step for step, _ in points] for points in lines.values()]
        ys = [[value for _, value in points] for points in lines.values()]
        charts[f"curves/{kind}"] = wandb.plot.line_series(xs, ys, keys=list(lines), title=kind, xname="step")
    for run in runs:
        run.config.update(config, allow_val_change=True)
        run.summary.update(summary | {f"{command}/results": table})
        if charts:
            run.log({f"_charts/{command}/{key}": chart for key, chart in charts.items()})


def _over_seeds(rows: list[dict], cells: list[str], metrics: Sequence[str]) -> dict:
    """Each cell's mean over the seeds, under the key a run of one seed gives its value (`final/conv3/psnr`),
    and its sd (`final/conv3/psnr_sd`, n - 1)."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(sample_key(row, cells), []).append(row)
    summary = {}
    for cell, group in groups.items():
        for metric in metrics:
            values = [v for v in (_number(row.get(metric)) for row in group) if v is not None]
            key = "/".join(["final", *([cell] if cell else []), metric])
            summary |= {key: statistics.mean(values)} if values else {}
            summary |= {f"{key}_sd": statistics.stdev(values)} if len(values) > 1 else {}
    return summary


def _one_or_all(values: list):
    """One value when all rows share it, else them all as text (`conv1,conv2`): W&B config takes scalars."""
    distinct = list(dict.fromkeys(as_text(v) for v in values))
    return values[0] if len(distinct) == 1 else ",".join(distinct)


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _cell(value):
    return value if value is None or isinstance(value, (int, float, str, bool)) else str(value)


def _hwc(image):
    """A (3, H, W) tensor in [0, 1] as W&B's images take it; a path as it is."""
    if isinstance(image, (str, Path)):
        return str(image)
    return (image.detach().cpu().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
