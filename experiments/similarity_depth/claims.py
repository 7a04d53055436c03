"""The numbers behind the three claims, read from similarity run directories (similarity.npz).

    python experiments/similarity_depth/claims.py outputs/similarity_depth/*/
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from representation_probe.runs.rundir import RunDir
from representation_probe.similarity.results import Similarity, distance


def depth_gaps(result: Similarity, metric: str) -> list[str]:
    """Claim 1: for each layer of a, the relative-depth gap to its best match in b, against chance (the
    mean gap to every representation of b)."""
    lines = []
    for match in {(r["model"], r["other"]) for r in result.best_matches() if r["metric"] == metric}:
        rows = [r for r in result.best_matches() if r["metric"] == metric and (r["model"], r["other"]) == match]
        other = result.axis(result.models.index(match[1]))
        gap = np.mean([abs(r["relative_depth"] - r["best_relative_depth"]) for r in rows])
        chance = np.mean([abs(r["relative_depth"] - result.depth[j]) for r in rows for j in other])
        lines.append(f"| {metric} | {match[0]} -> {match[1]} | {gap:.2f} | {chance:.2f} |")
    return sorted(lines)


def last_layers(result: Similarity, metric: str) -> list[str]:
    """Claim 2: what is left of the pixels at the last layer and how much the last step removed."""
    lines = []
    for label in result.models:
        rows = [r for r in result.profiles() if r["metric"] == metric and r["model"] == label]
        lines.append(f"| {metric} | {label} | {rows[-2]['vs_pixels']:.3f} | {rows[-1]['vs_pixels']:.3f} | "
                     f"{rows[-1]['step']:.3f} |")
    return lines


def steps(result: Similarity, metric: str) -> list[str]:
    """Claim 3: layer-to-layer steps (the step from the pixels to the first layer left out)."""
    far = distance(metric, result.matrices[metric])
    lines = []
    for m, label in enumerate(result.models):
        axis = [i for i in result.axis(m) if result.model[i] != -1]
        values = [far[i, j] for i, j in zip(axis, axis[1:])]
        lines.append(f"| {metric} | {label} | {np.mean(values):.3f} | {np.max(values):.3f} | "
                     f"{' '.join(f'{v:.3f}' for v in values)} |")
    return lines


def main() -> None:
    for path in map(Path, sys.argv[1:]):
        result = Similarity.load(RunDir(path).similarity_file)
        print(f"\n## {path.name}: {' vs '.join(result.models)}")
        print("\n| metric | layers of -> best match in | mean depth gap | chance |\n|---|---|---|---|")
        print("\n".join(line for metric in result.matrices for line in depth_gaps(result, metric)))
        print("\n| metric | model | pixels at the layer before the last | at the last | last step |\n|---|---|---|---|---|")
        print("\n".join(line for metric in result.matrices for line in last_layers(result, metric)))
        print("\n| metric | model | mean step | largest step | steps |\n|---|---|---|---|---|")
        print("\n".join(line for metric in result.matrices for line in steps(result, metric)))


if __name__ == "__main__":
    main()
