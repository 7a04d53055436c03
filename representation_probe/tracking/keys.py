"""How a run's rows are told apart in its metric keys: by what varies inside the run only (tracking/results.py)."""

from __future__ import annotations

from collections.abc import Sequence


def sample_key(row: dict, varying: Sequence[str]) -> str:
    """A row's part of a metric key: only what varies inside the run (`chelsea/seed1`, `conv3`)."""
    return "/".join(f"seed{row[key]}" if key == "seed" else str(row[key]) for key in varying)


def varying_ids(rows: list[dict], ids: Sequence[str] = ("layer", "image", "seed")) -> list[str]:
    """The fewest of `ids`, in their order, that tell the rows of one run apart: an id whose value follows
    from those before it (a model's label from the model) is left out."""
    chosen: list[str] = []
    for key in ids:
        values: dict[tuple, set] = {}
        for row in rows:
            values.setdefault(tuple(as_text(row.get(k)) for k in chosen), set()).add(as_text(row.get(key)))
        if any(len(v) > 1 for v in values.values()):
            chosen.append(key)
    return chosen


def as_text(value) -> str:
    return "" if value is None else str(value)
