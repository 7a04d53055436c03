"""The layer x layer matrices of one similarity run, what is read off them (processing-step profiles,
similarity to the pixels, best-matching layers), and their record on disk (similarity.npz)."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from representation_probe.runs.rundir import write_atomic

METRICS = {  # name -> what its matrix holds
    "cka": "linear CKA (similarity, 1 = same up to rotation and scale)",
    "mknn": "mutual k-NN alignment (similarity, 1 = same neighbourhoods)",
    "ii": "Information Imbalance Delta(row -> column) (0 = the row predicts the column's neighbourhoods)",
}
PIXELS = "pixels"


def distance(metric: str, matrix: np.ndarray) -> np.ndarray:
    """How far apart two representations are: 1 - similarity for CKA and mutual k-NN; for Information
    Imbalance, which is already a distance but asymmetric, the mean of both directions."""
    return (matrix + matrix.T) / 2 if metric == "ii" else 1 - matrix


@dataclass
class Similarity:
    """Every compared representation (the pixels, then each model's probe points in order) and one
    (L, L) matrix per metric over all of them; a model pair's matrix is a block of it."""

    models: list[str]  # a label per model: its config name and weights
    model: list[int]  # per representation: index into models, -1 for the pixels
    layer: list[str]
    depth: list[float]  # relative depth: 0 for the pixels, (i + 1) / n for probe point i of n
    matrices: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def over(cls, models: list[str], probe_points: list[dict[str, float]], pixels: bool) -> Similarity:
        """The axis: the pixels (if compared), then each model's probe points with their relative depth."""
        entries = [(-1, PIXELS, 0.0)] if pixels else []
        entries += [(m, layer, depth) for m, points in enumerate(probe_points) for layer, depth in points.items()]
        model, layer, depth = (list(column) for column in zip(*entries))
        return cls(models, model, layer, depth)

    def axis(self, m: int) -> list[int]:
        """Model m's representations, input to output: the pixels (depth 0) first when they were compared."""
        return [i for i, owner in enumerate(self.model) if owner in (-1, m)]

    def block(self, metric: str, a: int, b: int) -> np.ndarray:
        """Rows: model a's axis; columns: model b's."""
        return self.matrices[metric][np.ix_(self.axis(a), self.axis(b))]

    def pairs(self) -> list[tuple[int, int]]:
        """Every model with itself and with each later model."""
        return [(a, b) for a in range(len(self.models)) for b in range(a, len(self.models))]

    def profiles(self) -> list[dict]:
        """Per model and metric, each representation's step from the one before it (1 - CKA(l-1, l), ...)
        and its relation to the pixels (similarity; for Information Imbalance Delta(layer -> pixels):
        how well the layer still tells which images look alike)."""
        rows = []
        pixels = self.model.index(-1) if -1 in self.model else None
        for metric, matrix in self.matrices.items():
            far = distance(metric, matrix)
            for m, label in enumerate(self.models):
                axis = self.axis(m)
                for before, i in zip([None, *axis], axis):
                    rows.append(dict(model=label, layer=self.layer[i], relative_depth=self.depth[i], metric=metric,
                                     step=None if before is None else float(far[before, i]),
                                     vs_pixels=None if pixels is None else float(matrix[i, pixels])))
        return rows

    def best_matches(self) -> list[dict]:
        """For each representation of model a, the closest one of every other model b (by `distance`)."""
        rows = []
        for metric, matrix in self.matrices.items():
            far = distance(metric, matrix)
            for a, label_a in enumerate(self.models):
                for b, label_b in enumerate(self.models):
                    if a == b:
                        continue
                    columns = self.axis(b)
                    for i in self.axis(a):
                        if self.model[i] == -1:
                            continue  # the shared pixels match themselves
                        row = far[i, columns]
                        j = columns[int(np.argmin(np.where(np.isnan(row), np.inf, row)))]  # NaN: constant layer
                        rows.append(dict(metric=metric, model=label_a, layer=self.layer[i],
                                         relative_depth=self.depth[i], other=label_b, best_layer=self.layer[j],
                                         best_relative_depth=self.depth[j], value=float(matrix[i, j])))
        return rows

    def save(self, path: Path) -> None:
        """similarity.npz: the matrices by metric name, and the axis (models, model, layer, depth)."""
        buffer = io.BytesIO()
        np.savez(buffer, models=np.array(self.models), model=np.array(self.model), layer=np.array(self.layer),
                 depth=np.array(self.depth, dtype=np.float64), **self.matrices)
        write_atomic(path, buffer.getvalue())

    @classmethod
    def load(cls, path: Path) -> Similarity:
        with np.load(path) as data:
            return cls(models=data["models"].tolist(), model=data["model"].tolist(), layer=data["layer"].tolist(),
                       depth=data["depth"].tolist(), matrices={m: data[m] for m in METRICS if m in data})
