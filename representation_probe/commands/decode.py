"""`decode`: learned inverse decoders per layer, scored on held-out and named images beside gradient
inversion, across layers (cross) and under colour perturbation."""

from __future__ import annotations

import io
import logging
import math
import time

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Dataset, Subset

from representation_probe.data import load_targets
from representation_probe.decoders import MODES, DecoderModule, cache, evaluate
from representation_probe.decoders.evaluate import HELD_OUT
from representation_probe.errors import ConfigError
from representation_probe.inversion.fit import fit_inversion
from representation_probe.loggers import build_loggers
from representation_probe.models import FeatureExtractor
from representation_probe.reporting import decoders as figures
from representation_probe.rundir import RunDir, read_run, write_atomic, write_csv, write_png
from representation_probe.training.checkpoints import build_callbacks, remove_untracked, resume_path
from representation_probe.training.epoch_metrics import EpochMetrics
from representation_probe.validation import as_list

log = logging.getLogger(__name__)
INVERSION_KEYS = ("psnr", "ssim", "m_i", "m_g_over_m_s", "seconds")  # beside the decoder's, as inversion_<key>


def run(cfg: DictConfig) -> float:
    """Train the decoders, evaluate them; returns the mean held-out PSNR over the layers."""
    run_dir, d = RunDir.current(), cfg.decode
    if d.mode not in MODES:
        raise ConfigError(f"unknown decode.mode '{d.mode}'; allowed: {', '.join(MODES)}")
    if not 0 < d.held_out < 1:
        raise ConfigError(f"decode.held_out must be a fraction between 0 and 1, got {d.held_out}")
    if isinstance(d.colour_images, bool) or not isinstance(d.colour_images, int) or d.colour_images < 0:
        raise ConfigError(f"decode.colour_images must be a whole number >= 0, got {d.colour_images!r}")
    dtype = cache.storage(d.cache_dtype)
    resume = resume_path(cfg.ckpt_path, run_dir)
    inverted = _inversion_run(d.inversion)
    L.seed_everything(cfg.seed, workers=True)
    backbone = instantiate(cfg.model)
    layers = as_list(d.layers) if d.layers is not None else list(backbone.probe_points)
    if not layers:
        raise ConfigError(f"{backbone.name} has no probe points: pass decode.layers=[...] (see `layers model=...`)")
    targets = load_targets(as_list(cfg.eval_images), cfg.model.image_size)
    # the decoders first: caching draws from the global generator (DataLoader seeds), which must not move their init
    module = instantiate(d.module, features=FeatureExtractor(backbone, layers))
    datamodule = instantiate(cfg.dataset)
    datamodule.setup("fit")
    train_set, val_set = datamodule.train_set, datamodule.val_set
    selection, held = _split(len(val_set), d.held_out, cfg.seed)
    loggers = build_loggers(cfg, tags=[cfg.model.name, f"weights:{cfg.model.weights}", "decode", d.mode])
    callbacks = [*build_callbacks(cfg.callbacks, run_dir), EpochMetrics(run_dir)]
    trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks, default_root_dir=run_dir.path)
    datamodule.trainer = trainer  # the training batches of this rank (DDP)
    cached = cache.use_cache(d.cache, datamodule, module, len(train_set) + len(val_set), trainer.num_devices, dtype,
                             d.cache_limit_gb)
    start = time.perf_counter()
    if cached:  # every DDP process holds them all: each epoch gives each rank another share of the indices
        train_set, val_set = (cache.embed(module, data, datamodule.hparams.batch_size, datamodule.hparams.workers,
                                          trainer.strategy.root_device, dtype) for data in (train_set, val_set))
    train = datamodule.epoch_loader(train_set, workers=0 if cached else datamodule.hparams.workers)
    trainer.fit(module, train, _loader(Subset(val_set, selection), datamodule), ckpt_path=resume.path)
    seconds = time.perf_counter() - start
    remove_untracked(run_dir, [callback.state_dict() for callback in trainer.checkpoint_callbacks])
    if not trainer.is_global_zero:
        return math.nan
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    if best:
        module.load_state_dict(torch.load(best, map_location="cpu", weights_only=False)["state_dict"])
    module.cpu().eval()
    module.features.cpu()

    common = dict(command="decode", model=cfg.model.name, weights=str(cfg.model.weights), mode=d.mode,
                  dataset=cfg.dataset._target_, seed=cfg.seed, epochs=trainer.current_epoch,
                  best_checkpoint=best or None, cached=cached, cache_dtype=d.cache_dtype if cached else None,
                  seconds=round(seconds, 3))
    held_loader = _loader(Subset(val_set, held), datamodule)
    rows = _held_out_rows(module, held_loader, _loader(train_set, datamodule), backbone, common)
    cross = evaluate.cross(module, held_loader) if d.mode == "cross" else None
    colour_rows, colour_examples = evaluate.colour_study(module, d.colour_images, cfg.seed) if d.colour_images \
        else ([], {})
    for row in rows:  # the mean share of a recolouring that survives, per layer
        kept = [c["kept"] for c in colour_rows if c["layer"] == row["layer"] and c["condition"] != "grayscale"]
        row["colour_kept"] = sum(kept) / len(kept) if kept else None
    rows += _image_rows(cfg, module, backbone, targets, inverted, common, run_dir)
    _write(run_dir, cfg, module, rows, cross, colour_rows, colour_examples)
    _log(loggers, rows, module.layers, list(targets), run_dir)
    held_rows = [r for r in rows if r["image"] == HELD_OUT]
    log.info("held-out PSNR per layer: %s (mean image: %.1f dB)",
             ", ".join(f"{r['layer']} {r['psnr']:.1f}" for r in held_rows), held_rows[0]["baseline_psnr"])
    return sum(r["psnr"] for r in held_rows) / len(held_rows)


def _log(loggers: list, rows: list[dict], layers: list[str], images: list[str], run_dir: RunDir) -> None:
    """Held-out scores per layer, and each evaluation image's reconstructions, to the loggers."""
    for logger in loggers:
        logger.log_metrics({f"decode/{key}/{r['layer']}": r[key] for r in rows if r["image"] == HELD_OUT
                            for key in ("psnr", "ssim", "mse")})
        if hasattr(logger, "log_image"):
            for image in images:
                logger.log_image(f"decode/{image}", [str(run_dir.decoded(layer, image)) for layer in layers],
                                 caption=layers)


def _inversion_run(setting) -> dict | None:
    """The rows of an existing invert run directory by (layer, image), each with its `run`; or None
    (decode.inversion: run or null)."""
    if setting in (None, "run"):
        return None
    run = read_run(setting)
    rows = [s for s in run.summaries if s.get("command") == "invert"]
    if not rows:
        raise ConfigError(f"decode.inversion={setting} is not a finished invert run directory (run, null or a path)")
    return {(s["layer"], s["image"]): s | dict(run=run) for s in rows}


def _split(count: int, held_out: float, seed: int) -> tuple[list[int], list[int]]:
    """The indices of `count` validation images in two seeded parts: one selects the best epoch, one scores it."""
    held = round(count * held_out)
    if held < 1 or held >= count:
        raise ConfigError(f"the dataset's {count} validation images cannot be split by decode.held_out="
                          f"{held_out} into a selection part and a held-out part: give more validation images")
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed)).tolist()
    return order[held:], order[:held]


def _loader(dataset: Dataset, datamodule) -> DataLoader:
    return DataLoader(dataset, batch_size=datamodule.hparams.batch_size, shuffle=False)


def _held_out_rows(module: DecoderModule, held: DataLoader, train: DataLoader, backbone, common: dict) -> list[dict]:
    scores = evaluate.held_out(module, held)
    chained = evaluate.held_out(module, held, chained=True) if module.mode == "chained" else {}
    baseline = evaluate.mean_image_psnr(train, held)
    return [common | dict(layer=layer, relative_depth=backbone.probe_points.get(layer), image=HELD_OUT,
                          images=len(held.dataset), **scores[layer], baseline_psnr=baseline,
                          **{f"chained_{key}": value for key, value in chained.get(layer, {}).items()})
            for layer in module.layers]


def _image_rows(cfg: DictConfig, module: DecoderModule, backbone, targets: dict, inverted: dict | None,
                common: dict, run_dir: RunDir) -> list[dict]:
    """Per (layer, evaluation image): the decoder's scores and, beside them, gradient inversion's."""
    if not targets:
        return []
    images = torch.stack(list(targets.values()))
    names = list(targets)
    recons = {False: module.reconstruct(images)}
    if module.mode == "chained":
        recons[True] = module.reconstruct(images, chained=True)
    if inverted is None and cfg.decode.inversion == "run":
        fitted, results, seconds = fit_inversion(cfg.inversion, cfg.trainer, backbone, module.layers, targets,
                                                 [cfg.seed])
        for i, s in enumerate(fitted.samples):
            write_png(run_dir.a_g(s.layer, s.image, s.seed), fitted.image[i])
        inverted = {(r["layer"], r["image"]): r | dict(seconds=seconds / len(results)) for r in results}
    rows = []
    for name, image in zip(names, images):
        write_png(run_dir.target(name), image)
    for layer in module.layers:
        by_image = {chained: evaluate.scores(recon[layer], images) for chained, recon in recons.items()}
        for i, name in enumerate(names):
            row = common | dict(layer=layer, relative_depth=backbone.probe_points.get(layer), image=name,
                                **{key: values[i] for key, values in by_image[False].items()})
            if True in by_image:
                row |= {f"chained_{key}": values[i] for key, values in by_image[True].items()}
            if inverted and (layer, name) in inverted:
                found = inverted[(layer, name)]
                row |= {f"inversion_{key}": found.get(key) for key in INVERSION_KEYS}
                elsewhere = found["run"].a_g(layer, name, found["seed"]) if "run" in found else None
                if elsewhere and elsewhere.is_file():  # a_g of an existing run, beside our reconstructions
                    write_atomic(run_dir.a_g(layer, name, found["seed"]), elsewhere.read_bytes())
            rows.append(row)
            for chained, recon in recons.items():
                write_png(run_dir.decoded(layer, name, chained), recon[layer][i])
    return rows


def _write(run_dir: RunDir, cfg: DictConfig, module: DecoderModule, rows: list[dict], cross: torch.Tensor | None,
           colour_rows: list[dict], colour_examples: dict) -> None:
    """config.yaml, summary.json, decoders.ckpt, and the cross and colour tables and figures."""
    run_dir.write_config(cfg)
    run_dir.write_summary(rows)
    buffer = io.BytesIO()
    torch.save(dict(layers=module.layers, mode=module.mode, shapes=module.shapes, state_dict=module.state_dict()),
               buffer)
    write_atomic(run_dir.decoders, buffer.getvalue())
    if cross is not None:
        write_csv(run_dir.table("cross"), [dict(decoder=decoder, input=layer, mse=float(cross[i, j]))
                                          for i, decoder in enumerate(module.layers)
                                          for j, layer in enumerate(module.layers)])
        write_atomic(run_dir.figure("cross"), figures.cross_heatmap(cross, module.layers, cfg.model.name))
    if colour_rows:
        write_csv(run_dir.table("colour"), colour_rows)
        write_atomic(run_dir.figure("colour"), figures.colour_grid(colour_examples, module.layers, cfg.model.name))
