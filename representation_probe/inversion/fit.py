"""Fit an InversionModule from config: every (layer, image, seed) as one batch on a real Trainer."""

from __future__ import annotations

import time

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from representation_probe.inversion.module import InversionModule, Sample
from representation_probe.models import Backbone, LayerEmbedder


def fit_inversion(inversion: DictConfig, trainer: DictConfig, backbone: Backbone, layers: list[str],
                  targets: dict[str, torch.Tensor], seeds: list[int], loggers: list = (), callbacks: list = ()
                  ) -> tuple[InversionModule, list[dict], float]:
    """The fitted module, one result row per sample (with the family's details and the layer's
    relative depth) and the seconds trainer.fit took. `callbacks` join the trainer's (the benches' clocks)."""
    samples = [Sample(layer, name, int(seed)) for layer in layers for name in targets for seed in seeds]
    build_module = instantiate(inversion, _partial_=True)  # call-time objects stay untouched
    module = build_module(embedder=LayerEmbedder(backbone, [s.layer for s in samples]),
                          targets=torch.stack([targets[s.image] for s in samples]), samples=samples)
    fit = instantiate(trainer, max_epochs=1, logger=list(loggers) or False, enable_checkpointing=False,
                      enable_model_summary=False, num_sanity_val_steps=0, callbacks=list(callbacks))
    start = time.perf_counter()
    fit.fit(module)
    seconds = time.perf_counter() - start
    results = [backbone.details | dict(relative_depth=backbone.probe_points.get(r["layer"])) | r
               for r in module.results()]
    return module, results, seconds
