"""`rp.similarity`: layer x layer similarity (CKA, mutual k-NN, Information Imbalance) of every probe point of
one or more models, and of the pixels, on the same images; processing-step profiles."""

from __future__ import annotations

import contextlib
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

from representation_probe.api.data import as_datamodule, dataset_label, sized_images
from representation_probe.api.results import Result
from representation_probe.api.runtime import as_model, public
from representation_probe.config.checks import positive_int
from representation_probe.errors import ConfigError
from representation_probe.metrics.neighbours import check_neighbours
from representation_probe.models import FeatureExtractor
from representation_probe.reporting import similarity as figures
from representation_probe.reporting.labels import weights_label
from representation_probe.runs.rundir import Run, RunDir, write_atomic, write_csv
from representation_probe.similarity.pipeline import bytes_needed, dimensions, gram_bytes, measure
from representation_probe.similarity.results import METRICS, Similarity

GIB = 2**30


@dataclass(repr=False)  # Result's short repr
class Comparison(Result):
    """A row per model and representation (the pixels, then its probe points): `<metric>_step` (the distance
    from the representation before) and `<metric>_vs_pixels`; `similarity` holds every (L, L) matrix."""

    command = "similarity"
    metrics = tuple(f"{m}_{key}" for m in METRICS for key in ("step", "vs_pixels"))
    conditions = ("label",)
    by_depth = tuple(f"{m}_vs_pixels" for m in METRICS)

    similarity: Similarity | None = field(default=None, repr=False)

    def matrix(self, metric: str = "cka"):
        """One metric's matrix as a DataFrame, rows and columns labelled (model label, layer)."""
        import pandas as pd

        s = self.similarity
        names = [(s.models[m] if m >= 0 else "", layer) for m, layer in zip(s.model, s.layer)]
        index = pd.MultiIndex.from_tuples(names, names=["model", "layer"])
        return pd.DataFrame(s.matrices[metric], index=index, columns=index)

    def _write(self, run_dir: RunDir) -> None:
        result = self.similarity
        result.save(run_dir.similarity_file)
        for metric in result.matrices:
            for a, b in result.pairs():
                block = result.block(metric, a, b)
                columns = [f"{result.layer[j]} ({result.depth[j]:.3g})" for j in result.axis(b)]
                write_csv(run_dir.similarity_table(metric, a, b), [
                    dict(layer=result.layer[i], relative_depth=result.depth[i], **dict(zip(columns, row.tolist())))
                    for i, row in zip(result.axis(a), block)])
        write_csv(run_dir.table("profiles"), result.profiles())
        write_csv(run_dir.table("best_match"), result.best_matches())
        pngs = {run_dir.figure(f"similarity_{metric}"): figures.heatmaps(result, metric) for metric in result.matrices}
        pngs[run_dir.figure("profiles")] = figures.profiles(result)
        for path, png in pngs.items():
            write_atomic(path, png)

    @classmethod
    def from_run(cls, run: Run) -> Comparison:
        found = Similarity.load(run.similarity_file) if run.similarity_file.is_file() else None
        return cls(rows=run.summaries, history_rows=run.metrics, config=run.config, similarity=found)


@public
def similarity(models, data="patches", *, metrics=("cka", "mknn", "ii"), pool: str = "mean", pixels: bool = True,
               debiased: bool = False, cka_batch_size: int | None = None, mknn_k: int = 10, ii_k: int = 1,
               memory_gb: float = 4.0, batch_size: int | None = None, spill: str | Path | None = None) -> Comparison:
    """Compare every probe point of `models` (and the pixels, as depth 0) on the same images.

    Args:
        models: a model or a list of them (anything rp.load takes; a loaded model's name labels it).
        data: images as a tensor (N, 3, H, W) in [0, 1], all compared; or a dataset (a preset name,
            rp.dataset(...), a datamodule): its validation split.
        metrics: any of cka (linear CKA), mknn (mutual k-NN), ii (Information Imbalance).
        pool: spatial maps and tokens to vectors: mean, flatten, cls. pixels: the pixels as representation 0.
        debiased: the unbiased HSIC estimator; cka_batch_size: minibatch CKA (batches of this size, which
            must divide the number of images); mknn_k, ii_k: neighbours.
        memory_gb: features beyond this are memory-mapped from `spill` (a temporary directory if None).
        batch_size: images per forward (cka_batch_size when given; None: the dataset's, else 64).
    """
    metrics = [str(m) for m in ([metrics] if isinstance(metrics, str) else metrics)]
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise ConfigError(f"unknown metric '{unknown[0] if unknown else ''}'; allowed: {', '.join(METRICS)}")
    models = list(models) if isinstance(models, (list, tuple)) else [models]
    if not models:
        raise ConfigError("models is empty: name one or more models, e.g. models=[resnet18,vit_tiny]")
    backbones = [as_model(model) for model in models]
    pinned = {b.pinned_size: b.name for b in backbones if b.pinned_size is not None}
    if len(pinned) > 1:
        raise ConfigError(f"every model sees the same images, and these take different sizes: "
                          f"{', '.join(f'{name} {h}x{w}' for (h, w), name in pinned.items())}; load them at one "
                          "image_size, or without one to follow the data")
    images, label_data, loading = _images(data, next(iter(pinned), None))
    n = len(images)
    cka_batch_size = _check_counts(metrics, n, cka_batch_size, mknn_k, ii_k)
    size = tuple(images[0][0].shape[-2:])
    wrong = [f"{b.name} {b.pinned_size[0]}x{b.pinned_size[1]}" for b in backbones if b.pinned_size not in (None, size)]
    if wrong:
        raise ConfigError(f"every model sees the same images, and the data's are {size[0]}x{size[1]} (dataset."
                          f"image_size): {', '.join(wrong)}; load the models without image_size, or make the data at "
                          "theirs")
    with contextlib.ExitStack() as stack:  # users' own modules: frozen for the call, then as they were
        for backbone in backbones:
            stack.enter_context(backbone.frozen())
        extractors = [FeatureExtractor(b, list(b.probe_points), size) for b in backbones]
        labels = _labels([f"{b.name} {weights_label(b.weights)}" for b in backbones])
        result = Similarity.over(labels, [b.probe_points for b in backbones], pixels)
        dims = dimensions(extractors, size, images[0][0].shape[0], pool, pixels)
        if "cka" in metrics and cka_batch_size is None and gram_bytes(n, len(dims)) > memory_gb * GIB:
            raise ConfigError(f"CKA over all {n} images at once needs {gram_bytes(n, len(dims)) / GIB:.1f} GiB of Gram "
                              f"matrices (memory_gb={memory_gb}): set cka_batch_size (minibatch CKA, e.g. 500)")
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as scratch:
            on_disk = bytes_needed(n, dims) > memory_gb * GIB
            loader = DataLoader(images, batch_size=cka_batch_size or batch_size or loading["batch_size"], shuffle=False,
                                num_workers=loading["workers"])
            matrices = measure(extractors, loader, n, metrics, how=pool, pixels=pixels,
                               minibatch=cka_batch_size is not None, debiased=debiased, mknn_k=mknn_k, ii_k=ii_k,
                               spill=(Path(spill) if spill else Path(scratch) / "features") if on_disk else None)
        result.matrices = {metric: matrix.numpy() for metric, matrix in matrices.items()}
    seconds = time.perf_counter() - start
    common = dict(command="similarity", images=n, pool=pool, **label_data, image_size=size[0] if size[0] == size[1]
                  else list(size),
                  file=RunDir("").similarity_file.name, seconds=round(seconds, 3))
    profiles = result.profiles()
    rows = []
    for m, (label, backbone) in enumerate(zip(labels, backbones)):
        for i in result.axis(m):
            values = {f"{p['metric']}_{key}": p[key] for p in profiles
                      if p["model"] == label and p["layer"] == result.layer[i] for key in ("step", "vs_pixels")}
            rows.append(dict(common, model=backbone.name, weights=backbone.weights, label=label, layer=result.layer[i],
                             relative_depth=result.depth[i], **backbone.details, **values))
    arguments = dict(models=labels, metrics=metrics, pool=pool, pixels=pixels, images=n, debiased=debiased,
                     cka_batch_size=cka_batch_size, mknn_k=mknn_k, ii_k=ii_k)
    return Comparison(rows=rows, config=arguments, similarity=result)


def _images(data, size: tuple[int, int] | None) -> tuple:
    """The images every model sees (at `size`, the models' pinned size, if any), how the rows name their source,
    and how to load them."""
    if isinstance(data, torch.Tensor):
        data = sized_images(data.float(), size)  # resized (said) when a model is pinned to a size
        return (TensorDataset(data, torch.zeros(len(data))), dict(dataset="tensors", dataset_seed=None),
                dict(batch_size=64, workers=0))
    datamodule = as_datamodule(data, size)
    datamodule.setup("validate")
    h = datamodule.hparams
    return (datamodule.val_set, dict(dataset=dataset_label(datamodule), dataset_seed=h.get("seed")),
            dict(batch_size=h.get("batch_size", 64), workers=h.get("workers", 0)))


def _check_counts(metrics: list[str], n: int, batch_size: int | None, mknn_k: int, ii_k: int) -> int | None:
    """k of each neighbour metric below n; the minibatch size (returned) dividing n."""
    for metric, k in (("mknn", mknn_k), ("ii", ii_k)):
        if metric in metrics:
            check_neighbours(k, n, f"{metric}_k")
    if batch_size is not None and "cka" in metrics and (positive_int("cka_batch_size", batch_size) < 4
                                                        or n % batch_size):
        raise ConfigError(f"minibatch CKA needs batches of one size, at least 4: cka_batch_size={batch_size} "
                          f"must divide the {n} images")
    return batch_size


def _labels(labels: list[str]) -> list[str]:
    return [f"{label} #{i}" if labels.count(label) > 1 else label for i, label in enumerate(labels)]
