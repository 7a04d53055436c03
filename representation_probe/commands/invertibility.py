"""`invertibility`: exact inversion, output noise, spectra and ReLU widths of an MLP (paper section 4)."""

from __future__ import annotations

import logging
import math
import time

import torch
from omegaconf import DictConfig

from representation_probe.cli.shell import arguments, plain, run_directory
from representation_probe.config.checks import as_list, positive_int
from representation_probe.data import image_name, load_target
from representation_probe.errors import ConfigError
from representation_probe.inversion.invertibility import Study, study
from representation_probe.models.load import load
from representation_probe.reporting import invertibility as figures
from representation_probe.runs.rundir import RunDir, write_atomic, write_csv, write_png
from representation_probe.tracking.loggers import build_loggers
from representation_probe.tracking.results import log_rows

log = logging.getLogger(__name__)


def one_image(images) -> str:
    """The one image the study inverts exactly (images=chelsea, or a list of one)."""
    listed = as_list(images)
    if len(listed) != 1:
        raise ConfigError(f"invertibility studies one image: images=chelsea (or a file), got {len(listed)} ({listed})")
    return str(listed[0])


def run(cfg: DictConfig) -> float:
    """Returns the composed map's condition number (a sweep can minimise it)."""
    run_dir = run_directory()
    positive_int("model.image_size", cfg.model.image_size)
    positive_int("random_inputs.count", cfg.random_inputs.count)
    backbone = load(arguments(cfg.model))
    if backbone.family.name != "mlp":
        raise ConfigError(f"invertibility studies MLPs (model=mlp); {backbone.name} is a {backbone.family.name} "
                          "model, whose convolutions, pooling and residual sums are not inverted layer by layer here")
    image = one_image(plain(cfg.images))
    target = load_target(image, cfg.model.image_size)
    start = time.perf_counter()
    result = study(backbone.net, target, seed=cfg.seed, exact=cfg.exact, precisions=as_list(cfg.precisions),
                   method=cfg.method, draws=cfg.noise.draws, noise_std=cfg.noise.std, shift_std=cfg.shift_std,
                   random_count=cfg.random_inputs.count, random_mean=cfg.random_inputs.mean,
                   random_std=cfg.random_inputs.std)
    seconds = time.perf_counter() - start
    summary = dict(command="invertibility", model=cfg.model.name, weights=str(cfg.model.weights),
                   layer=backbone.default_layer, image=image_name(image), seed=cfg.seed, **backbone.details,
                   method=cfg.method, **result.summary, seconds=round(seconds, 3))
    _write(run_dir, cfg, summary, result, target)
    composed = summary["composed"]
    loggers = build_loggers(cfg, "invertibility", tags=[cfg.model.name, "invertibility"])
    numbers = _flat_numbers({key: value for key, value in summary.items() if key not in ("seed", "seconds")})
    log_rows(loggers, "invertibility", [summary | numbers], metrics=list(numbers))
    for logger in loggers:
        if hasattr(logger, "log_image"):
            pngs = run_dir.figures()
            logger.log_image("invertibility/figures", [str(png) for png in pngs], step=0,
                             caption=[png.stem for png in pngs])
    found = [f"d(output)/d(input) {composed['shape']}: condition {composed['condition']:.3g}, "
             f"rank {composed['rank']} of {target.numel()}"]
    for precision, errors in (summary["exact"] or {}).items():
        found.append(f"{precision} relative error {errors['relative_error']}")
    if summary["noise"]:
        found.append(f"median ||a - a''|| / ||a - a'|| {summary['noise']['median_over_m_i_ref']}")
    if summary["relu"]:
        found.append(f"Jacobian ranks {[row['jacobian_rank'] for row in summary['relu']['layers']]}")
    log.info("; ".join(found))
    return composed["condition"]


def _write(run_dir: RunDir, cfg: DictConfig, summary: dict, result: Study, target: torch.Tensor) -> None:
    """config.yaml, summary.json, noise.csv, spectra.csv, the figures and images/, each atomically."""
    run_dir.write_config(cfg)
    run_dir.write_summary(summary)
    title = f"{cfg.model.name} widths {summary['widths']} {summary['activation']} ({summary['image']})"
    spectra = result.spectra
    write_csv(run_dir.table("spectra"), [
        {"index": i, **{name: float(v[i]) if i < len(v) else None for name, v in spectra.items()}}
        for i in range(max(len(v) for v in spectra.values()))])
    write_atomic(run_dir.figure("spectra"), figures.spectra_plot(spectra, title))
    if result.noise is not None:
        write_csv(run_dir.table("noise"), [
            dict(draw=i, input_distance=float(d_in), output_distance=float(d_out), outside_01=float(out))
            for i, (d_in, d_out, out) in enumerate(zip(*result.noise.values()))])
        noise_title = f"{title}: {cfg.noise.draws} draws of N(0, {cfg.noise.std})"
        write_atomic(run_dir.figure("noise_histogram"),
                     figures.noise_histogram(result.noise, summary["m_i_ref"], summary["m_s"], noise_title))
    if result.relu is not None:
        write_atomic(run_dir.figure("relu_widths"), figures.relu_widths_plot(result.relu, target.numel(), title))
    write_png(run_dir.target(summary["image"]), target)
    write_png(run_dir.shifted(summary["image"], cfg.seed), result.shifted.view_as(target).float())
    for name, x in result.reconstructions.items():
        write_png(run_dir.exact(name), x.nan_to_num(0.0).view_as(target).float())
    if result.a_pp_median is not None:
        write_png(run_dir.a_pp_median, result.a_pp_median.view_as(target).float())


def _flat_numbers(tree, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of nested dicts and lists as {'a/b': value} for the loggers."""
    if isinstance(tree, dict):
        return {k: v for key, value in tree.items() for k, v in _flat_numbers(value, f"{prefix}{key}/").items()}
    if isinstance(tree, list):
        return {k: v for i, value in enumerate(tree) for k, v in _flat_numbers(value, f"{prefix}{i}/").items()}
    if isinstance(tree, (int, float)) and not isinstance(tree, bool) and math.isfinite(tree):
        return {prefix.rstrip("/"): float(tree)}
    return {}
