"""`similarity`: layer x layer similarity (CKA, mutual k-NN, Information Imbalance) of every probe point
of several models and the pixels, on the same held-out images; processing-step profiles."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import MissingConfigException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from representation_probe.__main__ import CONF
from representation_probe.errors import ConfigError
from representation_probe.loggers import build_loggers
from representation_probe.models import Backbone, FeatureExtractor
from representation_probe.reporting import similarity as figures
from representation_probe.reporting.labels import weights_label
from representation_probe.rundir import RunDir, write_atomic, write_csv
from representation_probe.similarity.neighbours import check_neighbours
from representation_probe.similarity.pipeline import bytes_needed, dimensions, gram_bytes, measure
from representation_probe.similarity.results import METRICS, Similarity
from representation_probe.validation import as_list, positive_int

log = logging.getLogger(__name__)
GIB = 2**30


def run(cfg: DictConfig) -> None:
    """Every check first (one line each), then the features and the matrices, then the record."""
    run_dir = RunDir.current()
    metrics = _metrics(cfg)
    names, weights = _models_and_weights(cfg)
    # the held-out split, the same images for every model: dataset.count of them where the dataset
    # generates its images (patches, noise), a folder's whole validation split
    datamodule = instantiate(cfg.dataset, **({"val_count": cfg.dataset.count} if "count" in cfg.dataset else {}))
    datamodule.setup("validate")
    images = datamodule.val_set
    n = len(images)
    batch_size = _check_counts(cfg, metrics, n)
    backbones = _backbones(cfg, names, weights, image_size=images[0][0].shape[-1])
    extractors = [FeatureExtractor(b, list(b.probe_points)) for b in backbones]
    result = Similarity.over(_labels(names, weights), [b.probe_points for b in backbones], cfg.pixels)
    dims = dimensions(extractors, backbones[0].image_size, cfg.pool, cfg.pixels)
    if "cka" in metrics and batch_size is None and gram_bytes(n, len(dims)) > cfg.memory_gb * GIB:
        raise ConfigError(f"CKA over all {n} images at once needs {gram_bytes(n, len(dims)) / GIB:.1f} GiB of Gram "
                          f"matrices (memory_gb={cfg.memory_gb}): set cka.batch_size (minibatch CKA, e.g. 500)")
    on_disk = bytes_needed(n, dims) > cfg.memory_gb * GIB

    start = time.perf_counter()
    loader = DataLoader(images, batch_size=batch_size or cfg.dataset.batch_size, shuffle=False,
                        num_workers=cfg.dataset.workers)
    matrices = measure(extractors, loader, n, metrics, how=cfg.pool, pixels=cfg.pixels,
                       minibatch=batch_size is not None, debiased=cfg.cka.debiased, mknn_k=cfg.mknn.k,
                       ii_k=cfg.ii.k, spill=run_dir.features if on_disk else None)
    result.matrices = {metric: matrix.numpy() for metric, matrix in matrices.items()}
    seconds = time.perf_counter() - start
    figures_written = _write(run_dir, cfg, result, names, weights, backbones, n, seconds)
    _log(cfg, result, names, weights, figures_written)


def _metrics(cfg: DictConfig) -> list[str]:
    metrics = [str(m) for m in as_list(cfg.metric)]
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise ConfigError(f"unknown metric '{unknown[0] if unknown else ''}'; allowed: {', '.join(METRICS)}")
    return metrics


def _check_counts(cfg: DictConfig, metrics: list[str], n: int) -> int | None:
    """k of each neighbour metric below n; the minibatch size (returned) dividing n."""
    for metric, k in (("mknn", cfg.mknn.k), ("ii", cfg.ii.k)):
        if metric in metrics:
            check_neighbours(k, n, f"{metric}.k")
    batch_size = cfg.cka.batch_size
    if batch_size is not None and "cka" in metrics and (positive_int("cka.batch_size", batch_size) < 4
                                                        or n % batch_size):
        raise ConfigError(f"minibatch CKA needs batches of one size, at least 4: cka.batch_size={batch_size} "
                          f"must divide the {n} images")
    return batch_size


def _backbones(cfg: DictConfig, names: list[str], weights: list[str], image_size: int) -> list[Backbone]:
    backbones = [_backbone(cfg, name, w) for name, w in zip(names, weights)]
    wrong = [f"{name} {b.image_size} px" for name, b in zip(names, backbones) if b.image_size != image_size]
    if wrong:
        raise ConfigError(f"every model must see the same images, {image_size} px (dataset.image_size): "
                          f"{', '.join(wrong)}; set model.image_size for all models or dataset.image_size")
    return backbones


def _models_and_weights(cfg: DictConfig) -> tuple[list[str], list[str]]:
    names = [str(m) for m in as_list(cfg.models)]
    weights = [str(w) for w in as_list(cfg.weights)]
    if not names:
        raise ConfigError("models is empty: name one or more model configs, e.g. models=[resnet18,vit_tiny]")
    if len(weights) == 1:
        weights *= len(names)
    if len(weights) != len(names):
        raise ConfigError(f"weights has {len(weights)} entries for {len(names)} models: give one per model, "
                          "or one for all")
    return names, weights


def _backbone(cfg: DictConfig, name: str, weights: str) -> Backbone:
    """conf/model/<name>.yaml as Hydra composes `model=<name>`, then the overrides every model shares
    (`model.*` of this command's config; null: the model's own), then this entry's weights."""
    overrides = {key: value for key, value in OmegaConf.to_container(cfg.model, resolve=True).items()
                 if value is not None}
    config = _model_config(name)
    OmegaConf.set_struct(config, False)  # `+model.<key>` may add a key the model's file does not have
    return instantiate(OmegaConf.merge(config, overrides, {"weights": weights}))


def _model_config(name: str) -> DictConfig:
    """The model group's config `name`, composed by Hydra (its defaults list resolved)."""
    overrides = [f"+model={name}"]
    try:
        if GlobalHydra.instance().is_initialized():  # inside the running app
            return compose(overrides=overrides).model
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return compose(overrides=overrides).model
    except MissingConfigException:
        known = ", ".join(sorted(p.stem for p in (CONF / "model").glob("*.yaml")))
        raise ConfigError(f"unknown model '{name}'; models (conf/model/): {known}") from None


def _labels(names: list[str], weights: list[str]) -> list[str]:
    labels = [f"{name} {weights_label(w)}" for name, w in zip(names, weights)]
    return [f"{label} #{i}" if labels.count(label) > 1 else label for i, label in enumerate(labels)]


def _write(run_dir: RunDir, cfg: DictConfig, result: Similarity, names: list[str], weights: list[str],
           backbones: list[Backbone], n: int, seconds: float) -> list[Path]:
    """config.yaml, similarity.npz, one CSV per model pair and metric, profiles.csv, best_match.csv,
    summary.json (a row per model and representation) and the figures, whose paths it returns."""
    run_dir.write_config(cfg)
    result.save(run_dir.similarity_file)
    for metric in result.matrices:
        for a, b in result.pairs():
            block = result.block(metric, a, b)
            columns = [f"{result.layer[j]} ({result.depth[j]:.3g})" for j in result.axis(b)]
            write_csv(run_dir.similarity_table(metric, a, b), [
                dict(layer=result.layer[i], relative_depth=result.depth[i], **dict(zip(columns, row.tolist())))
                for i, row in zip(result.axis(a), block)])
    profiles = result.profiles()
    write_csv(run_dir.table("profiles"), profiles)
    write_csv(run_dir.table("best_match"), result.best_matches())
    common = dict(command="similarity", images=n, pool=cfg.pool, dataset=cfg.dataset._target_,
                  dataset_seed=cfg.dataset.get("seed"), image_size=backbones[0].image_size,
                  file=run_dir.similarity_file.name, seconds=round(seconds, 3))
    rows = []
    for m, label in enumerate(result.models):
        for i in result.axis(m):
            values = {f"{p['metric']}_{key}": p[key] for p in profiles
                      if p["model"] == label and p["layer"] == result.layer[i] for key in ("step", "vs_pixels")}
            rows.append(dict(common, model=names[m], weights=weights[m], label=label, layer=result.layer[i],
                             relative_depth=result.depth[i], **backbones[m].details, **values))
    run_dir.write_summary(rows)
    pngs = {run_dir.figure(f"similarity_{metric}"): figures.heatmaps(result, metric) for metric in result.matrices}
    pngs[run_dir.figure("profiles")] = figures.profiles(result)
    for path, png in pngs.items():
        write_atomic(path, png)
    return list(pngs)


def _log(cfg: DictConfig, result: Similarity, names: list[str], weights: list[str], pngs: list[Path]) -> None:
    """The headline numbers to the log, the figures to the configured loggers."""
    for row in result.profiles():
        if row["step"] is not None:
            log.info("%s %s %s: step %.3f, vs pixels %s", row["metric"], row["model"], row["layer"], row["step"],
                     "-" if row["vs_pixels"] is None else f"{row['vs_pixels']:.3f}")
    for logger in build_loggers(cfg, tags=[*names, *(f"weights:{w}" for w in weights), "similarity"]):
        if hasattr(logger, "log_image"):
            logger.log_image("similarity/figures", [str(p) for p in pngs], step=0, caption=[p.stem for p in pngs])
        steps = {f"similarity/{r['metric']}/step/{r['model']}/{r['layer']}": r["step"] for r in result.profiles()
                 if r["step"] is not None and math.isfinite(r["step"])}
        logger.log_metrics(steps, step=0)
