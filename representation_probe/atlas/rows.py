"""Every study's numbers of one model and weights, per layer, on the relative-depth axis."""

from __future__ import annotations

from pathlib import Path
from statistics import mean, stdev

from representation_probe.decoders.evaluate import HELD_OUT

# atlas column -> (study, summary key); inversion values are averaged over the evaluation images
COLUMNS = {"inversion_psnr": ("invert", "psnr"), "inversion_m_g_over_m_s": ("invert", "m_g_over_m_s"),
           "inversion_m_i": ("invert", "m_i"), "decoder_psnr": ("decode", "psnr"), "decoder_ssim": ("decode", "ssim"),
           "colour_kept": ("decode", "colour_kept"), "probe_accuracy": ("probe", "accuracy"),
           "cka_vs_pixels": ("similarity", "cka_vs_pixels"), "cka_step": ("similarity", "cka_step")}


def layer_rows(summaries: dict[str, list[dict]], paths: dict[str, str | None], weights: str,
               label: str) -> list[dict]:
    """One row per probe point: its relative depth and each study's number (None where a study is
    missing), plus the run directories it came from (`paths`, by study)."""
    by_study = {study: _rows(rows, study, weights) for study, rows in summaries.items()}
    depth: dict[str, float] = {}
    for rows in by_study.values():
        for row in rows:
            if row.get("relative_depth") is not None:
                depth.setdefault(row["layer"], row["relative_depth"])
    out = []
    for layer in sorted(depth, key=depth.get):
        row = dict(command="atlas", weights=weights, label=label, layer=layer, relative_depth=depth[layer])
        for column, (study, key) in COLUMNS.items():
            values = [r[key] for r in by_study.get(study, []) if r["layer"] == layer and r.get(key) is not None]
            row[column] = mean(values) if values else None
        row["runs"] = dict(paths)
        out.append(row)
    return out


def study_dir(atlas: Path, path: str) -> Path:
    """A study's run directory as an atlas row records it: relative to the atlas's directory (which may have
    moved), else as it was written (an absolute path, a reused run elsewhere)."""
    inside = atlas / path
    return inside if not Path(path).is_absolute() and inside.is_dir() else Path(path)


def cells(rows: list[dict]) -> list[dict]:
    """The rows of one or more seeds as one per (weights label, layer), in their order: each column's mean over
    the seeds and its sd (`<column>_sd`, n - 1; None for one seed), `seeds` how many there were."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["label"], row["layer"]), []).append(row)
    out = []
    for (label, layer), group in groups.items():
        weights = {str(row["weights"]) for row in group}
        cell = dict(model=group[0].get("model"), label=label, weights=weights.pop() if len(weights) == 1 else None,
                    layer=layer, relative_depth=group[0]["relative_depth"], seeds=len(group))
        for column in COLUMNS:
            values = [row[column] for row in group if row.get(column) is not None]
            cell[column] = mean(values) if values else None
            cell[f"{column}_sd"] = stdev(values) if len(values) > 1 else None
        out.append(cell)
    return out


def _rows(rows: list[dict], study: str, weights: str) -> list[dict]:
    """The summary rows of a study run that speak of `weights` (a similarity run holds several weights;
    a decode run, held-out rows beside per-image ones)."""
    if study == "similarity":
        rows = [r for r in rows if str(r.get("weights")) == weights]
    if study == "decode":
        rows = [r for r in rows if r.get("image") == HELD_OUT]
    return rows
