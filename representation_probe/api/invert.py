"""`rp.invert`: gradient descent on the input toward one or more layers' embeddings (paper sections 2-3)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from representation_probe import metrics
from representation_probe.api.images import as_images, call_size, items
from representation_probe.api.results import Result
from representation_probe.api.runtime import Progress, as_model, make_trainer, public, quiet
from representation_probe.config.checks import distinct, seed_list
from representation_probe.errors import ConfigError, InversionWarning
from representation_probe.inversion import InversionModule, Sample
from representation_probe.metrics import doubts
from representation_probe.models import Backbone, LayerEmbedder
from representation_probe.models.layers import resolve_layers, select_layers
from representation_probe.models.outputs import joined
from representation_probe.runs.resources import check_fits, device_of
from representation_probe.runs.rundir import Run, RunDir, read_png, write_png
from representation_probe.tracking.keys import sample_key, varying_ids

PROBE_POINTS = "probe_points"  # layer= every probe point of the model, as one batch


@dataclass(repr=False)  # Result's short repr
class Inversion(Result):
    """One row per (layer, image, seed) sample: final loss, m_g, m_i, m_s, m_i_ref, m_g/m_s, PSNR, SSIM;
    `a_g` the generated images in the same order, `targets` by image name, `shifted` each sample's a'."""

    command = "invert"
    metrics = ("loss", "m_g", "m_i", "m_s", "m_i_ref", "m_g_over_m_s", "psnr", "ssim")
    by_depth = ("m_g_over_m_s", "m_i")
    tensors = ("a_g", "targets", "shifted")

    a_g: torch.Tensor | None = None
    targets: dict[str, torch.Tensor] = field(default_factory=dict)
    shifted: torch.Tensor | None = None

    @property
    def layers(self) -> list[str]:
        return list(dict.fromkeys(row["layer"] for row in self.rows))

    @property
    def diverged_at(self) -> int | None:
        return self.rows[0].get("diverged_at") if self.rows else None

    def _write(self, run_dir: RunDir) -> None:
        for name, target in self.targets.items():
            write_png(run_dir.target(name), target)
        for i, row in enumerate(self.rows):
            if self.shifted is not None:
                write_png(run_dir.shifted(row["image"], row["seed"]), self.shifted[i])
            if self.a_g is not None:
                write_png(run_dir.a_g(row["layer"], row["image"], row["seed"]), self.a_g[i])

    def row_images(self) -> list | None:
        return list(self.a_g) if self.a_g is not None else None

    def curves(self) -> dict[str, dict[str, list[tuple[int, float]]]]:
        """m_g/m_s and m_i of each sample against the step (one line per sample)."""
        varying = varying_ids(self.rows)
        if not varying:
            return {}
        m_s = {sample_key(row, varying): row["m_s"] for row in self.rows}
        curves = {"m_g_over_m_s": {key: [] for key in m_s}, "m_i": {key: [] for key in m_s}}
        for row in self.history_rows:
            key = sample_key(row, varying)
            curves["m_g_over_m_s"][key].append((row["step"], row["m_g"] / m_s[key] if m_s[key] else float("nan")))
            curves["m_i"][key].append((row["step"], row["m_i"]))
        return curves

    @classmethod
    def from_run(cls, run: Run) -> Inversion:
        """The images exactly (tensors.pt); from a run without it, as its PNGs hold them (8 bits per channel)."""
        if run.tensors_file.is_file():
            return super().from_run(run)

        def stack(paths):
            images = [read_png(path) for path in paths]
            return torch.stack(images) if images and all(i is not None for i in images) else None

        rows = [row for row in run.summaries if row.get("command") == cls.command]
        targets = {row["image"]: read_png(run.target(row["image"])) for row in rows}
        return cls(rows=run.summaries, history_rows=run.metrics, config=run.config,
                   a_g=stack([run.a_g(r["layer"], r["image"], r["seed"]) for r in rows]),
                   targets={k: v for k, v in targets.items() if v is not None},
                   shifted=stack([run.shifted(r["image"], r["seed"]) for r in rows]))


@public
def invert(model, images="chelsea", layers=None, *, seed=0, steps: int = 200, optimizer="adam",
           lr=(0.05, 0.0), blur_sigma=None, clamp: bool = False, loss: str = "l1", init_mean: float = 0.7,
           init_std: float = 0.05, shift_std: float = 0.05, record_every: int = 10, image_every: int = 100,
           eps_by_layer: Mapping[str, float] | None = None, steps_per_batch: int | None = None,
           bf16_until: float | None = None, trainer=None, progress: Progress = False, loggers=(),
           callbacks=()) -> Inversion:
    """Invert every (layer, image, seed) as one batch: gradient descent on a_0 ~ N(init_mean, init_std)
    toward each layer's embedding of each image. Each sample carries its own layer and target; the
    result equals separate runs.

    Args:
        model: anything rp.load takes, or a loaded model.
        images: sample names, files, PIL images or [0, 1] tensors (see rp.api.images.as_images).
        layers: a layer (name, alias, probe-point index, relative depth or module), a list of them,
            'probe_points', or None for the model's default layer.
        seed: one seed or several (a list): each draws its own a_0 and reference shift a'.
        steps, lr, optimizer: the descent: lr is eps, constant or [start, end] (linear); optimizer
            'adam' (default, no per-layer tuning) or 'sgd' (the paper's eq. 4), or a callable.
        blur_sigma: the 3x3 Gaussian of eq. 5 after each step (a sigma or [start, end]); clamp: to [0, 1].
        loss: 'l1' (the paper) or 'l2' (squared). init_mean, init_std: a_0; shift_std: a' = a + N(0, std).
        record_every: steps between recorded distances (`.history`); image_every: a_g to image loggers.
        eps_by_layer: per-layer eps factors for plain SGD. steps_per_batch: updates per Lightning batch.
        bf16_until: the first fraction of the steps in bf16 (autocast), the rest in float32 (None: float32).
        trainer: Lightning Trainer arguments (accelerator, precision='bf16-mixed', ...) or a Trainer factory.
        progress: True for Lightning's progress bar, or report(done, total, metrics) after every batch.
        loggers, callbacks: Lightning loggers (metrics every record_every steps) and callbacks.
    """
    backbone = as_model(model)
    size = call_size(backbone, images)
    if min(size) < metrics.MIN_SSIM_SIZE:
        raise ConfigError(f"model.image_size must be at least {metrics.MIN_SSIM_SIZE} for invert (the SSIM of a_g "
                          f"takes an 11-pixel window), got {size[0]}x{size[1]}")
    seeds = seed_list(seed)
    precision = str(_settings(trainer).get("precision", "32-true"))
    if bf16_until is not None and precision != "32-true":
        raise ConfigError(f"inversion.bf16_until switches the steps between bf16 and float32 itself: keep "
                          f"trainer.precision=32-true (got {precision}), or drop bf16_until")
    layers = chosen_layers(backbone, layers, size)
    check_fits(backbone.net, size, backbone.channels, len(layers) * len(items(images)) * len(seeds),
               "invert (model.image_size, the layers x images x seeds of one batch)", device=_device(trainer))
    targets = as_images(images, size, backbone.channels)
    samples = [Sample(name, image, seed) for name in layers for image in targets for seed in seeds]
    with backbone.frozen():  # a user's own module: frozen for the call, then as it was
        module = InversionModule(
            embedder=LayerEmbedder(backbone, [s.layer for s in samples], size),
            targets=torch.stack([targets[s.image] for s in samples]), samples=samples, steps=steps,
            optimizer=optimizer, lr=lr, blur_sigma=blur_sigma, clamp=clamp, loss=loss, init_mean=init_mean,
            init_std=init_std, shift_std=shift_std, record_every=record_every, image_every=image_every,
            eps_by_layer=eps_by_layer, steps_per_batch=steps_per_batch, bf16_until=bf16_until)
        with quiet():
            fit = make_trainer(trainer, progress=progress, loggers=loggers, callbacks=callbacks, max_epochs=1,
                               enable_checkpointing=False, enable_model_summary=False, num_sanity_val_steps=0)
            start = time.perf_counter()
            fit.fit(module)
            seconds = time.perf_counter() - start
        common = dict(command="invert", model=backbone.name, weights=backbone.weights, steps=steps, lr=_plain(lr),
                      blur=_plain(blur_sigma), seconds=round(seconds, 3), diverged_at=module.diverged_at)
        rows = [common | backbone.details | dict(relative_depth=backbone.depth_of(r["layer"])) | r
                for r in module.results()]
    doubts.say(rows, InversionWarning)
    arguments = dict(model=backbone.name, weights=backbone.weights, image_size=size[0] if size[0] == size[1] else
                     list(size),
                     images=list(targets), layers=layers, seed=seeds, steps=steps, optimizer=optimizer, lr=lr,
                     blur_sigma=blur_sigma, clamp=clamp, loss=loss, init_mean=init_mean, init_std=init_std,
                     shift_std=shift_std, record_every=record_every, eps_by_layer=eps_by_layer, bf16_until=bf16_until)
    return Inversion(rows=rows, history_rows=module.history, config=arguments, a_g=module.image.detach().cpu(),
                     targets=targets, shifted=module.shifted.cpu())


def _settings(trainer) -> Mapping:
    """The trainer's arguments as far as they are known before it is built."""
    return trainer.keywords if hasattr(trainer, "keywords") else trainer if isinstance(trainer, Mapping) else {}


def _device(trainer) -> str:
    """Where the trainer computes, as far as its settings say (a GPU trainer: the GPU's memory counts)."""
    return device_of(_settings(trainer).get("accelerator", "cpu"))


def chosen_layers(backbone: Backbone, layer, size: tuple[int, int] | None = None) -> list[str]:
    """The layers `layer` names (see `invert`), checked at `size`."""
    if layer is None:  # the family's default: conv4 for ResNets, the last block of a ViT, an MLP's output
        if backbone.default_layer is None:
            raise ConfigError(f"{backbone.name} has no default layer: pass layer=<name> (see `layers model=...`)")
        return [backbone.default_layer]
    if layer == PROBE_POINTS:
        return list(backbone.probe_points)
    layers = select_layers(backbone, layer)
    if not layers:
        raise ConfigError(f"layers is empty: name one or more layers of {backbone.name}, or probe_points")
    nodes = resolve_layers(backbone, layers, size)  # an unknown name fails here, before any logger or run starts
    distinct("layers", layers)
    distinct("layers (as the graph names them)", [joined(nodes[layer].node, nodes[layer].path) for layer in layers])
    return layers


def _plain(value):
    """A schedule as JSON takes it: a number, null, or [start, end]."""
    return list(value) if isinstance(value, (list, tuple)) else value
