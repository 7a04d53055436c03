"""One function per command: f(cfg) -> the number a sweeper optimises, or None."""

from __future__ import annotations

import logging
import math
import sys
import time
from pathlib import Path

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig, ListConfig, OmegaConf

from representation_probe import rundir
from representation_probe.data import image_name, load_target
from representation_probe.errors import ConfigError
from representation_probe.inversion import Sample, exact
from representation_probe.models import LayerEmbedder, layer_shapes
from representation_probe.reporting import invertibility as figures
from representation_probe.reporting import write_kernel_panels, write_report
from representation_probe.training import ClassifierModule

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> float | None:
    """Dispatch on the entry config's name; bad input becomes one line, loggers always close.

    A failed job leaves failure.json (its error line) in its run directory for the report; in a
    multirun the exception goes on to Hydra, which marks the job failed while the others run on.
    """
    hydra_cfg = HydraConfig.get()
    command = hydra_cfg.job.config_name
    try:
        return TASKS[command](cfg)
    except Exception as err:
        user_error = _config_error(err)
        line = str(user_error) if user_error else f"{type(err).__name__}: {err}".splitlines()[0]
        if hydra_cfg.output_subdir is not None:  # commands that print only have no run directory
            rundir.write_json(Path(hydra_cfg.runtime.output_dir) / "failure.json",
                              dict(command=command, error=line, overrides=list(hydra_cfg.overrides.task)))
        if user_error is None:
            raise
        print(f"error: {line}", file=sys.stderr)
        if hydra_cfg.mode == RunMode.MULTIRUN:
            raise user_error from None
        sys.exit(2)
    finally:
        if "wandb" in sys.modules:
            import wandb

            wandb.finish()


def _config_error(err: BaseException | None) -> ConfigError | None:
    """The ConfigError behind an exception, also when hydra's instantiate wrapped it."""
    while err is not None and not isinstance(err, ConfigError):
        err = err.__cause__
    return err


def layers(cfg: DictConfig) -> None:
    backbone = instantiate(cfg.model)
    shapes = layer_shapes(backbone)
    width = max(map(len, shapes))
    print(f"# {backbone.name} at {backbone.image_size} px; paper aliases first (they win over FX nodes)")
    for name, shape in shapes.items():
        print(f"{name:<{width}}  {shape}")


def invert(cfg: DictConfig) -> float:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    _require_positive(steps=cfg.inversion.steps, **{"model.image_size": cfg.model.image_size},
                      record_every=cfg.inversion.record_every)
    if cfg.inversion.steps_per_batch is not None:  # null: timed
        _require_positive(**{"inversion.steps_per_batch": cfg.inversion.steps_per_batch})
    backbone = instantiate(cfg.model)
    if cfg.layer is None:  # the family's default: conv4 for ResNets, the last layer of an MLP
        if backbone.default_layer is None:
            raise ConfigError(f"{backbone.name} has no default layer: pass layer=<name> (see `layers model=...`)")
        cfg.layer = backbone.default_layer  # config.yaml records the layer actually inverted
    layer_names, images, seeds = _as_list(cfg.layer), _as_list(cfg.image), _as_list(cfg.seed)
    size = cfg.model.image_size
    names = [image_name(image) for image in images]
    if len(set(names)) < len(names):
        raise ConfigError(f"two images share a name ({', '.join(names)}): rename one file, since names "
                          "label the results and a file named like a sample would shadow it")
    targets = {name: load_target(image, size) for name, image in zip(names, images)}
    samples = [Sample(layer, name, int(seed)) for layer in layer_names for name in targets for seed in seeds]

    build_module = instantiate(cfg.inversion, _partial_=True)  # call-time objects stay untouched
    module = build_module(embedder=LayerEmbedder(backbone, layer_names),
                          targets=torch.stack([targets[s.image] for s in samples]), samples=samples)
    loggers = _loggers(cfg, tags=[cfg.model.name, f"weights:{cfg.model.weights}", *map(str, layer_names)])
    trainer = instantiate(cfg.trainer, max_epochs=1, logger=loggers or False, enable_checkpointing=False,
                          enable_model_summary=False, num_sanity_val_steps=0)
    start = time.perf_counter()
    trainer.fit(module)
    seconds = time.perf_counter() - start

    results = module.results()
    _write_inversion(run_dir, cfg, module, [backbone.details | r for r in results], targets, seconds)
    if module.diverged_at is not None:
        raise ConfigError(f"the inversion diverged (NaN or infinite distances) at step {module.diverged_at}; what was measured is in "
                          f"{run_dir}; try a smaller inversion.lr (now {cfg.inversion.lr})")
    for r in results:
        log.info("%s %s seed %d: m_g/m_s %.3g  m_i %.3g (m_i_ref %.3g)  PSNR %.1f",
                 r["layer"], r["image"], r["seed"], r["m_g_over_m_s"], r["m_i"], r["m_i_ref"], r["psnr"])
    return sum(r["m_g"] for r in results) / len(results)


def invertibility(cfg: DictConfig) -> float:
    """Exact inversion, output noise, spectra and ReLU widths of an MLP; returns the composed condition number."""
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    _require_positive(**{"model.image_size": cfg.model.image_size, "random_inputs.count": cfg.random_inputs.count})
    backbone = instantiate(cfg.model)
    if backbone.family != "mlp":
        raise ConfigError(f"invertibility studies MLPs (model=mlp); {backbone.name} is a {backbone.family} model, "
                          "whose convolutions, pooling and residual sums are not inverted layer by layer here")
    target = load_target(cfg.image, cfg.model.image_size)
    start = time.perf_counter()
    result = exact.study(backbone.net, target, seed=cfg.seed, exact=cfg.exact, precisions=_as_list(cfg.precisions),
                         method=cfg.method, draws=cfg.noise.draws, noise_std=cfg.noise.std, shift_std=cfg.shift_std,
                         random_count=cfg.random_inputs.count, random_mean=cfg.random_inputs.mean,
                         random_std=cfg.random_inputs.std)
    seconds = time.perf_counter() - start
    summary = dict(command="invertibility", model=cfg.model.name, weights=str(cfg.model.weights),
                   layer=backbone.default_layer, image=image_name(cfg.image), seed=cfg.seed, **backbone.details,
                   method=cfg.method, **result.summary, seconds=round(seconds, 3))
    _write_invertibility(run_dir, cfg, summary, result, target)
    composed = summary["composed"]
    loggers = _loggers(cfg, tags=[cfg.model.name, "invertibility"])
    for logger in loggers:
        logger.log_metrics(_flat_numbers(summary, "invertibility"), step=0)
        if hasattr(logger, "log_image"):
            pngs = sorted(run_dir.glob("*.png"))
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


def _write_invertibility(run_dir: Path, cfg: DictConfig, summary: dict, result: exact.Study,
                         target: torch.Tensor) -> None:
    """config.yaml, summary.json, noise.csv, spectra.csv, the figures and images/, each atomically."""
    rundir.write_atomic(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True).encode())
    rundir.write_json(run_dir / "summary.json", summary)
    title = f"{cfg.model.name} widths {summary['widths']} {summary['activation']} ({summary['image']})"
    spectra = result.spectra
    rundir.write_csv(run_dir / "spectra.csv", [
        {"index": i, **{name: float(v[i]) if i < len(v) else None for name, v in spectra.items()}}
        for i in range(max(len(v) for v in spectra.values()))])
    rundir.write_atomic(run_dir / "spectra.png", figures.spectra_plot(spectra, title))
    if result.noise is not None:
        rundir.write_csv(run_dir / "noise.csv", [
            dict(draw=i, input_distance=float(d_in), output_distance=float(d_out), outside_01=float(out))
            for i, (d_in, d_out, out) in enumerate(zip(*result.noise.values()))])
        rundir.write_atomic(run_dir / "noise_histogram.png", figures.noise_histogram(
            result.noise, summary["m_i_ref"], summary["m_s"], f"{title}: {cfg.noise.draws} draws of N(0, {cfg.noise.std})"))
    if result.relu is not None:
        rundir.write_atomic(run_dir / "relu_widths.png",
                            figures.relu_widths_plot(result.relu, target.numel(), title))
    images = run_dir / "images"
    rundir.write_png(images / f"target_{summary['image']}.png", target)
    rundir.write_png(images / f"shifted_{summary['image']}_seed{cfg.seed}.png", result.shifted.view_as(target).float())
    for name, x in result.reconstructions.items():
        rundir.write_png(images / f"exact_{name}.png", x.nan_to_num(0.0).view_as(target).float())
    if result.a_pp_median is not None:
        rundir.write_png(images / "a_pp_median.png", result.a_pp_median.view_as(target).float())


def _flat_numbers(tree, prefix: str) -> dict[str, float]:
    """Numeric leaves of nested dicts and lists as {'prefix/a/b': value} for the loggers."""
    if isinstance(tree, dict):
        return {k: v for key, value in tree.items() for k, v in _flat_numbers(value, f"{prefix}/{key}").items()}
    if isinstance(tree, list):
        return {k: v for i, value in enumerate(tree) for k, v in _flat_numbers(value, f"{prefix}/{i}").items()}
    if isinstance(tree, (int, float)) and not isinstance(tree, bool) and math.isfinite(tree):
        return {prefix: float(tree)}
    return {}


def train(cfg: DictConfig) -> float:
    """Train a classifier; re-running in the same run directory resumes from its last.ckpt."""
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    L.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.dataset)
    backbone = instantiate(cfg.model, num_classes=datamodule.num_classes, init_seed=cfg.seed)
    scheduler = instantiate(cfg.scheduler) if cfg.scheduler else None
    module = ClassifierModule(backbone.net, datamodule.num_classes, instantiate(cfg.optimizer), scheduler,
                              normalize=backbone.normalize, channels_last=cfg.channels_last)
    checkpoints = run_dir / "checkpoints"
    callbacks = [ModelCheckpoint(dirpath=checkpoints, filename="best-{epoch}", monitor="val/acc", mode="max",
                                 save_last=True, save_top_k=1)]
    loggers = _loggers(cfg, tags=[cfg.model.name, f"weights:{cfg.model.weights}", "train"])
    trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks, default_root_dir=run_dir)
    resume = _resume_path(cfg.ckpt_path, checkpoints / "last.ckpt")
    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume)
    seconds = time.perf_counter() - start

    metrics = {key: float(value) for key, value in trainer.callback_metrics.items()}
    best = callbacks[0].best_model_score
    val_acc = float(best) if best is not None else metrics.get("val/acc", float("nan"))
    if trainer.is_global_zero:
        write_kernel_panels(run_dir / "images" / "conv1_kernels.png", {f"{cfg.model.name} trained": module.net})
        rundir.write_atomic(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True).encode())
        rundir.write_json(run_dir / "summary.json", dict(
            command="train", model=cfg.model.name, weights=str(cfg.model.weights), dataset=cfg.dataset._target_,
            seed=cfg.seed, val_acc=val_acc, train_acc=metrics.get("train/acc"), epochs=trainer.current_epoch,
            global_step=trainer.global_step, checkpoint=str(checkpoints / "last.ckpt"),
            best_checkpoint=callbacks[0].best_model_path, resumed_from=resume, seconds=round(seconds, 3)))
    return val_acc


def kernels(cfg: DictConfig) -> None:
    """First-layer kernels of each `weights` entry side by side, in kernels.png."""
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    panels = {_weights_label(w): instantiate(cfg.model, weights=w).net for w in _as_list(cfg.weights)}
    write_kernel_panels(run_dir / "kernels.png", panels)
    rundir.write_json(run_dir / "summary.json", dict(command="kernels", model=cfg.model.name,
                                                     weights=list(panels), file="kernels.png"))
    print(f"wrote {run_dir / 'kernels.png'}")


def _weights_label(weights: str) -> str:
    path = Path(str(weights))
    return str(weights) if len(path.parts) < 3 else str(Path(*path.parts[-3:]))


def _loggers(cfg: DictConfig, tags: list[str]) -> list:
    """The configured loggers, a multirun's jobs grouped by sweep, tagged, with the config logged once."""
    hydra_cfg = HydraConfig.get()
    loggers = []
    for conf in cfg.logger.values():
        extra = {}
        if "tags" in conf:
            extra["tags"] = [*conf.tags, *tags]
        if "group" in conf and conf.group is None and hydra_cfg.mode == RunMode.MULTIRUN:
            extra["group"] = str(hydra_cfg.sweep.dir)
            extra["name"] = f"{Path(hydra_cfg.sweep.dir).name}/{hydra_cfg.job.num}"
        loggers.append(instantiate(conf, **extra))
    config = OmegaConf.to_container(cfg, resolve=True)
    for logger in loggers:
        logger.log_hyperparams(config)
    return loggers


def report(cfg: DictConfig) -> None:
    """report.html from run directories (a run, a multirun, or several)."""
    roots = [Path(path) for path in _as_list(cfg.runs)]
    missing = [str(root) for root in roots if not root.is_dir()]
    if missing:
        raise ConfigError(f"not a run directory: {', '.join(missing)} (report takes run or multirun directories)")
    out = Path(cfg.out) if cfg.out else roots[0]
    print(f"wrote {write_report(roots, out)}")


def _resume_path(ckpt_path: str | None, last: Path) -> str | None:
    """None resumes from the run directory's last.ckpt when there is one."""
    if ckpt_path is None:
        return str(last) if last.exists() else None
    if ckpt_path == "last":
        if not last.exists():
            raise ConfigError(f"ckpt_path=last but there is no {last}; pass hydra.run.dir=<the run to resume>")
        return str(last)
    if not Path(ckpt_path).is_file():
        raise ConfigError(f"checkpoint not found: {ckpt_path} (ckpt_path takes null, last or a file)")
    return ckpt_path


def _write_inversion(run_dir: Path, cfg: DictConfig, module, results: list[dict], targets: dict,
                     seconds: float) -> None:
    """config.yaml, metrics.csv, summary.json and images/ of one inversion run, each atomically."""
    rundir.write_atomic(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True).encode())
    rundir.write_csv(run_dir / "metrics.csv", module.history)
    inv = cfg.inversion
    common = dict(command="invert", model=cfg.model.name, weights=str(cfg.model.weights), steps=inv.steps,
                  lr=OmegaConf.to_object(inv.lr) if isinstance(inv.lr, ListConfig) else inv.lr,
                  blur=OmegaConf.to_object(inv.blur_sigma) if isinstance(inv.blur_sigma, ListConfig)
                  else inv.blur_sigma, seconds=round(seconds, 3), diverged_at=module.diverged_at)
    summary = [common | r for r in results]
    rundir.write_json(run_dir / "summary.json", summary[0] if len(summary) == 1 else summary)
    images = run_dir / "images"
    for name, target in targets.items():
        rundir.write_png(images / f"target_{name}.png", target)
    for i, s in enumerate(module.samples):
        rundir.write_png(images / f"shifted_{s.image}_seed{s.seed}.png", module.shifted[i])
        rundir.write_png(images / f"a_g_{s.layer}_{s.image}_seed{s.seed}.png", module.image[i])


def _as_list(value) -> list:
    return list(value) if isinstance(value, (list, ListConfig)) else [value]


def _require_positive(**values) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or value <= 0:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")


TASKS = {"invert": invert, "layers": layers, "train": train, "kernels": kernels, "report": report,
         "invertibility": invertibility}
