"""How runs and layers are named and ordered in every figure and table of the report."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

from representation_probe.runs.rundir import Run


def weights_label(weights) -> str:
    """'untrained', 'imagenet' (or its version), or the run a checkpoint comes from."""
    if str(weights) == "none":
        return "untrained"
    path = Path(str(weights))
    return f"{path.parent.parent.name}/{path.stem}" if path.parent.name == "checkpoints" else path.stem


def layer_order(summaries) -> list[str]:
    """Layers by relative depth (probe points), then the others in order of first appearance."""
    depth: dict[str, float] = {}
    for s in summaries:
        value = s.get("relative_depth")
        depth.setdefault(s["layer"], math.inf if value is None else value)
    return sorted(depth, key=lambda layer: depth[layer])  # a stable sort keeps the order of appearance


def labeler(samples: list[tuple[Run, dict]]):
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
