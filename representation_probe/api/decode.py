"""`rp.decode`: learned inverse decoders per layer, trained on a dataset, scored on held-out and named images
beside gradient inversion, across layers (cross) and under colour perturbation."""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from representation_probe.api.data import as_datamodule, data_size, dataset_label
from representation_probe.api.images import as_images
from representation_probe.api.invert import Inversion, invert
from representation_probe.api.results import Result, open as open_run
from representation_probe.api.runtime import Progress, as_model, checkpointing, make_trainer, public, quiet
from representation_probe.api.seeds import repeat
from representation_probe.config.checks import seed_list
from representation_probe.config.optimizers import optimizer_factory
from representation_probe.decoders import MODES, DecoderModule, cache as embedding_cache, evaluate
from representation_probe.decoders.evaluate import HELD_OUT
from representation_probe.errors import ConfigError, DegenerateWarning
from representation_probe.metrics import doubts
from representation_probe.models import FeatureExtractor
from representation_probe.models.layers import select_layers
from representation_probe.reporting import decoders as figures
from representation_probe.runs.rundir import RunDir, write_atomic, write_csv, write_png
from representation_probe.training.epoch_metrics import EpochMetrics
from representation_probe.training.keep_best import KeepBest

INVERSION_KEYS = ("psnr", "ssim", "m_i", "m_g_over_m_s", "seconds")  # beside the decoder's, as inversion_<key>


@dataclass(repr=False)  # Result's short repr
class Decoding(Result):
    """A row per layer for the held-out split (`image` 'held-out'), then a row per (layer, evaluation image);
    `reconstructions[layer]` the evaluation images decoded from each layer (`chained` the same through the
    stage inverses), `a_g[(layer, image)]` gradient inversion's images, `decoders` the trained module."""

    command = "decode"
    metrics = ("mse", "psnr", "ssim", "m_i", "baseline_psnr", "colour_kept", "chained_mse", "chained_psnr",
               "chained_ssim", "chained_m_i", "inversion_psnr", "inversion_ssim", "inversion_m_i",
               "inversion_m_g_over_m_s")
    conditions = ("mode",)
    by_depth = ("psnr", "ssim")
    tensors = ("targets", "reconstructions", "chained", "a_g", "cross", "colour_rows", "colour_examples")

    decoders: DecoderModule | None = field(default=None, repr=False)  # not read back: it needs the model
    targets: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)
    reconstructions: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)
    chained: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)
    a_g: dict[tuple[str, str, int], torch.Tensor] = field(default_factory=dict, repr=False)
    cross: torch.Tensor | None = field(default=None, repr=False)
    colour_rows: list[dict] = field(default_factory=list, repr=False)
    colour_examples: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    def row_images(self) -> list | None:
        """Each evaluation image's reconstruction from the row's layer (none for the held-out rows)."""
        if not self.reconstructions:
            return None
        names = list(self.targets)
        return [self.reconstructions[row["layer"]][names.index(row["image"])]
                if row["image"] in names and row["layer"] in self.reconstructions else None for row in self.rows]

    def _write(self, run_dir: RunDir) -> None:
        names, model = list(self.targets), self.rows[0]["model"]
        for name, image in self.targets.items():
            write_png(run_dir.target(name), image)
        for chained, recons in ((False, self.reconstructions), (True, self.chained)):
            for layer, images in recons.items():
                for name, image in zip(names, images):
                    write_png(run_dir.decoded(layer, name, chained), image)
        for (layer, image, seed), a_g in self.a_g.items():
            write_png(run_dir.a_g(layer, image, seed), a_g)
        if self.decoders is not None:
            buffer = io.BytesIO()
            torch.save(dict(layers=self.decoders.layers, mode=self.decoders.mode, shapes=self.decoders.shapes,
                            state_dict=self.decoders.state_dict()), buffer)
            write_atomic(run_dir.decoders, buffer.getvalue())
        layers = list(dict.fromkeys(row["layer"] for row in self.rows))
        if self.cross is not None:
            write_csv(run_dir.table("cross"), [dict(decoder=decoder, input=layer, mse=float(self.cross[i, j]))
                                              for i, decoder in enumerate(layers) for j, layer in enumerate(layers)])
            write_atomic(run_dir.figure("cross"), figures.cross_heatmap(self.cross, layers, model))
        if self.colour_rows:
            write_csv(run_dir.table("colour"), self.colour_rows)
            write_atomic(run_dir.figure("colour"), figures.colour_grid(self.colour_examples, layers, model))


@public
def decode(model, data="patches", layers=None, *, mode: str = "direct", epochs: int = 10, optimizer="adam",
           lr: float | None = 1e-3, width: int = 64, min_width: int = 16, depth: int = 1, held_out: float = 0.5,
           colour_images: int = 8, eval_images=("chelsea", "astronaut"), inversion="run",
           inversion_options: dict | None = None, cache: bool | str = "auto", cache_dtype: str = "float32",
           cache_limit_gb: float | None = None, seed=0, trainer=None, callbacks=(), resume=None,
           directory: str | Path | None = None, progress: Progress = False, loggers=()) -> Decoding:
    """Train one decoder per layer (layer -> image, MSE in pixel space) on a frozen model, pick each run's
    best epoch by validation loss, and score it.

    Args:
        model: anything rp.load takes (a spec is built after seeding, as the CLI does), or a loaded model.
        data: a dataset (a preset name, rp.dataset(name, **settings), a datamodule, or image tensors): its
            validation images are split (seeded, `held_out`) into epoch selection and final scores.
        layers: the layers to decode (names, indices, depths, modules); None: the probe points.
        mode: direct (layer -> image), chained (also stage k -> k-1, composed down to the image), cross
            (the direct decoders fed every other layer of the same shape).
        epochs, optimizer, lr: Adam 1e-3 by default; width, min_width, depth: the decoder's shape.
        colour_images: shapes images for the colour perturbation study (0: skip).
        eval_images: images never trained on, scored one by one (any form rp.invert takes).
        inversion: 'run' (invert eval_images at the same layers, with `inversion_options`), an invert run
            directory or an Inversion result to set beside, or None.
        cache: embeddings computed once ('auto': when the data does not augment and they fit in memory).
        seed: one seed or several (a list): each trains its own decoders (an untrained model's weights come from its
            init_seed); several give rows per seed, `spread()` their mean and sd, each run in <directory>/seed<s>.
        trainer, callbacks, loggers, progress: as in rp.invert; resume: a checkpoint to resume from;
            directory: where the per-epoch record (metrics.csv) is written while training (None: nowhere).
    """
    settings = {key: value for key, value in locals().items() if key not in ("seed", "directory", "loggers")}
    if resume is not None and len(seed_list(seed)) > 1:
        raise ConfigError("resume names one checkpoint, and each seed trains its own decoders: give one seed")
    return repeat(seed, lambda one, where, logged: _decode(**settings, seed=one, directory=where, loggers=logged),
                  directory, loggers=loggers)


def _decode(model, data, layers, *, mode, epochs, optimizer, lr, width, min_width, depth, held_out, colour_images,
            eval_images, inversion, inversion_options, cache, cache_dtype, cache_limit_gb, seed, trainer, callbacks,
            resume, directory, progress, loggers) -> Decoding:
    if mode not in MODES:
        raise ConfigError(f"unknown decode.mode '{mode}'; allowed: {', '.join(MODES)}")
    if not 0 < held_out < 1:
        raise ConfigError(f"decode.held_out must be a fraction between 0 and 1, got {held_out}")
    if isinstance(colour_images, bool) or not isinstance(colour_images, int) or colour_images < 0:
        raise ConfigError(f"decode.colour_images must be a whole number >= 0, got {colour_images!r}")
    dtype = embedding_cache.storage(cache_dtype)
    inverted = _inversion_rows(inversion)
    L.seed_everything(seed, workers=True, verbose=False)
    backbone = as_model(model)
    layers = select_layers(backbone, layers) if layers is not None else list(backbone.probe_points)
    if not layers:
        raise ConfigError(f"{backbone.name} has no probe points: pass decode.layers=[...] (see `layers model=...`)")
    datamodule = as_datamodule(data, backbone.pinned_size)  # its set-up draws nothing from the global generator
    datamodule.setup("fit")
    size = data_size(datamodule, backbone)
    none = eval_images is None or (isinstance(eval_images, (list, tuple, dict)) and not eval_images)
    targets = {} if none else as_images(eval_images, size, backbone.channels)
    # the decoders first: caching draws from the global generator (DataLoader seeds), which must not move their init
    with backbone.frozen():  # a user's own module: frozen for the call, then as it was
        module = DecoderModule(FeatureExtractor(backbone, layers, size), optimizer_factory(optimizer, lr), mode=mode,
                               width=width, min_width=min_width, depth=depth)
        train_set, val_set = datamodule.train_set, datamodule.val_set
        selection, held = _split(len(val_set), held_out, seed)
        record, best = EpochMetrics(RunDir(directory) if directory is not None else None), KeepBest("val/loss")
        with quiet():
            fit = make_trainer(trainer, progress=progress, loggers=loggers, callbacks=[*callbacks, record, best],
                               max_epochs=epochs, **checkpointing(callbacks, directory))
            datamodule.trainer = fit  # the training batches of this rank (DDP)
            cached = embedding_cache.use_cache(cache, datamodule, module, len(train_set) + len(val_set),
                                               fit.num_devices, dtype, cache_limit_gb)
            start = time.perf_counter()
            if cached:  # every DDP process holds them all: each epoch gives each rank another share of the indices
                train_set, val_set = (embedding_cache.embed(module, part, datamodule.hparams.batch_size,
                                                         datamodule.hparams.workers, fit.strategy.root_device, dtype)
                                      for part in (train_set, val_set))
            train = datamodule.epoch_loader(train_set, workers=0 if cached else datamodule.hparams.workers)
            fit.fit(module, train, _loader(Subset(val_set, selection), datamodule), ckpt_path=resume)
            seconds = time.perf_counter() - start
        if not fit.is_global_zero:
            return Decoding(rows=[])  # the other DDP ranks: rank 0 evaluates
        best.restore(module)
        module.cpu().eval()
        module.features.cpu()
        checkpoint = fit.checkpoint_callback.best_model_path if fit.checkpoint_callback else ""
        common = dict(command="decode", model=backbone.name, weights=backbone.weights, mode=mode,
                      dataset=dataset_label(datamodule), seed=seed, epochs=fit.current_epoch,
                      best_checkpoint=checkpoint or None, cached=cached, cache_dtype=cache_dtype if cached else None,
                      seconds=round(seconds, 3))
        held_loader = _loader(Subset(val_set, held), datamodule)
        rows = _held_out_rows(module, held_loader, _loader(train_set, datamodule), backbone, common)
        cross = evaluate.cross(module, held_loader) if mode == "cross" else None
        colour_rows, colour_examples = evaluate.colour_study(module, colour_images, seed) if colour_images else ([], {})
        for row in rows:  # the mean share of a recolouring that survives, per layer
            kept = [c["kept"] for c in colour_rows if c["layer"] == row["layer"] and c["condition"] != "grayscale"]
            row["colour_kept"] = sum(kept) / len(kept) if kept else None
        result = Decoding(rows=rows, history_rows=record.rows, decoders=module, targets=targets, cross=cross,
                          colour_rows=colour_rows, colour_examples=colour_examples)
        if targets:
            if inverted is None and inversion == "run":
                inverted = _inversion_rows(invert(backbone, targets, module.layers, seed=[seed], trainer=trainer,
                                                  **(inversion_options or {})), shared=True)
            _score_images(result, module, backbone, inverted, common)
    result.config = dict(model=backbone.name, weights=backbone.weights, layers=module.layers, mode=mode,
                         epochs=epochs, held_out=held_out, seed=seed, dataset=common["dataset"])
    doubts.say(result.rows, DegenerateWarning)
    return result


def _inversion_rows(inversion, shared: bool = False) -> dict | None:
    """(layer, image) -> inversion row with its a_g, from an Inversion or an invert run directory; None for
    'run' (done after training) and None. `shared`: the batch's seconds are split among its samples."""
    if inversion in (None, "run"):
        return None
    if not isinstance(inversion, Inversion):
        found = open_run(inversion) if Path(str(inversion)).is_dir() else None
        if not isinstance(found, Inversion):
            raise ConfigError(f"decode.inversion={inversion} is not a finished invert run directory (run, null or "
                              "a path)")
        inversion = found
    share = len(inversion.rows) if shared else 1
    return {(r["layer"], r["image"]): r | dict(a_g=None if inversion.a_g is None else inversion.a_g[i],
                                               seconds=r["seconds"] / share)
            for i, r in enumerate(inversion.rows)}


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
    return [common | dict(layer=layer, relative_depth=backbone.depth_of(layer), image=HELD_OUT,
                          images=len(held.dataset), **scores[layer], baseline_psnr=baseline,
                          **{f"chained_{key}": value for key, value in chained.get(layer, {}).items()},
                          warnings=doubts.psnr_no_better(scores[layer]["psnr"], baseline))
            for layer in module.layers]


def _score_images(result: Decoding, module: DecoderModule, backbone, inverted: dict | None, common: dict) -> None:
    """Per (layer, evaluation image): the decoder's scores and, beside them, gradient inversion's."""
    names, images = list(result.targets), torch.stack(list(result.targets.values()))
    result.reconstructions = module.reconstruct(images)
    if module.mode == "chained":
        result.chained = module.reconstruct(images, chained=True)
    for layer in module.layers:
        by_kind = {False: evaluate.scores(result.reconstructions[layer], images)}
        if result.chained:
            by_kind[True] = evaluate.scores(result.chained[layer], images)
        for i, name in enumerate(names):
            row = common | dict(layer=layer, relative_depth=backbone.depth_of(layer), image=name,
                                **{key: values[i] for key, values in by_kind[False].items()})
            if True in by_kind:
                row |= {f"chained_{key}": values[i] for key, values in by_kind[True].items()}
            if inverted and (layer, name) in inverted:
                found = inverted[(layer, name)]
                row |= {f"inversion_{key}": found.get(key) for key in INVERSION_KEYS}
                if found["a_g"] is not None:
                    result.a_g[(layer, name, found["seed"])] = found["a_g"]
            result.rows.append(row)
