"""`rp.atlas`: every study of every probe point of one model, per weights, side by side on the relative-depth
axis; each study saved as a run directory of its own, and found again instead of run twice."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from representation_probe.api.data import Dataset, as_datamodule, data_name
from representation_probe.api.decode import decode
from representation_probe.api.invert import PROBE_POINTS, invert
from representation_probe.api.probe import probe
from representation_probe.api.results import Result, open as open_run
from representation_probe.api.runtime import public
from representation_probe.api.similarity import similarity
from representation_probe.atlas.rows import cells, layer_rows, study_dir
from representation_probe.config.checks import seed_list
from representation_probe.errors import ConfigError
from representation_probe.models.load import load, model_config
from representation_probe.reporting import atlas as figures, write_report
from representation_probe.reporting.labels import weights_label
from representation_probe.runs.rundir import Run, RunDir, find_runs, write_atomic, write_csv

log = logging.getLogger(__name__)
STUDIES = ("invert", "decode", "probe", "similarity")
DEFAULT_STUDIES = dict(invert=dict(steps=200), decode=dict(epochs=8, colour_images=0, inversion=None),
                       probe={}, similarity=dict(metrics=["cka"]))


@dataclass(repr=False)  # Result's short repr
class Atlas(Result):
    """A row per probe point, weights and seed: relative depth, inversion PSNR and m_g/m_s, decoder PSNR and
    SSIM, probe accuracy, CKA to the pixels and to the layer before; `studies[(study, label, seed)]` their
    results; atlas.csv each cell's mean and sd over the seeds."""

    command = "atlas"
    metrics = ("inversion_psnr", "inversion_m_g_over_m_s", "inversion_m_i", "decoder_psnr", "decoder_ssim",
               "colour_kept", "probe_accuracy", "cka_vs_pixels", "cka_step")
    conditions = ("label",)
    by_depth = ("inversion_m_g_over_m_s", "decoder_psnr", "probe_accuracy", "cka_vs_pixels")

    cell = ("model", "label", "layer", "relative_depth")  # a model trained per seed has other weights per seed
    studies: dict[tuple[str, str, int], Result] = field(default_factory=dict, repr=False)

    def _write(self, run_dir: RunDir) -> None:
        write_csv(run_dir.table("atlas"), cells(self.rows))
        write_atomic(run_dir.figure("atlas"), figures.by_depth(cells(self.rows), self.rows[0]["model"]))

    @classmethod
    def from_run(cls, run: Run) -> Atlas:
        """The rows, and each study's result read back from its run directory."""
        result = cls(rows=run.summaries, history_rows=run.metrics, config=run.config)
        for row in result.rows:
            for study, path in (row.get("runs") or {}).items():
                key = (study, row["label"], row.get("seed"))
                if path and key not in result.studies and study_dir(run.path, path).is_dir():
                    result.studies[key] = open_run(study_dir(run.path, path))
        return result

    def save(self, directory, config=None) -> Path:
        """The atlas's files and report.html (its studies are saved where `atlas(directory=...)` ran them)."""
        path = super().save(directory, config)
        write_report([path], path)
        return path


@public
def atlas(model, *, weights=("none",), labels=None, data="patches", images=("chelsea", "astronaut"), seed=0,
          image_size: int | None = None, name: str | None = None, studies: Mapping | None = None,
          directory: str | Path | None = None, reuse=()) -> Atlas:
    """Invert, decode, probe and compare (CKA) every probe point of `model` with each `weights` entry.

    Args:
        model: a preset or '<source>/<name>' spec, or a model config mapping (weights vary, so not a module).
        weights: each none, imagenet, a checkpoint file, or a mapping seed -> checkpoint (a model trained once
            per seed); labels: their names in the rows (default: from weights).
        data: the dataset for decoders, probes and similarity (a preset name or rp.dataset(...)).
        images: inverted, and scored by the decoders (never trained on).
        seed: one seed or several (a list): every study runs once per seed (an untrained model is drawn from it too);
            rows per (weights, layer, seed), `spread()` and atlas.csv their mean and sd per cell.
        studies: study -> its keyword arguments (rp.invert, rp.decode, rp.probe, rp.similarity; `data`: settings
            of the dataset for that study); a study mapped to None is left out. Default: DEFAULT_STUDIES.
        directory: where each study's run directory goes (<study>/<label>[/seed<s>]); finished ones found there
            or under `reuse` with the same request are read back instead of run again. None: nothing written.
    """
    studies = dict(DEFAULT_STUDIES if studies is None else studies)
    unknown = sorted(set(studies) - set(STUDIES))
    if unknown:
        raise ConfigError(f"unknown atlas study {', '.join(unknown)}; studies: {', '.join(STUDIES)}")
    studies = {study: dict(kwargs or {}) for study, kwargs in studies.items() if kwargs is not None}
    if not studies:
        raise ConfigError("the atlas has no study with probe points to show: keep at least one of "
                          f"{', '.join(STUDIES)}")
    seeds = seed_list(seed)
    weights = [_per_seed(w, seeds) for w in weights]
    name = name or (model if isinstance(model, str) else dict(model).get("name", "model"))
    labels = list(labels) if labels is not None else [f"{name} {weights_label(w[seeds[0]])}" for w in weights]
    size = image_size or as_datamodule(data).hparams.get("image_size")
    runner = _Runner(directory, reuse)
    result = Atlas(rows=[], config=dict(model=_plain(model), image_size=size, seed=seeds, data=_plain(data),
                                        weights=[w if len(set(w.values())) > 1 else w[seeds[0]] for w in weights],
                                        labels=labels, images=list(images), studies=studies))
    for seed in seeds:  # the argument is read: each seed of it in turn
        spec = dict(model=_plain(model), image_size=size, seed=seed, data=_plain(data))
        where = f"/seed{seed}" if len(seeds) > 1 else ""
        chosen = [w[seed] for w in weights]
        shared = None
        if "similarity" in studies:
            kwargs = dict(studies["similarity"])
            part = _data(data, kwargs.pop("data", None))
            request = dict(spec, weights=chosen, kwargs=studies["similarity"])
            shared = runner.get("similarity", f"similarity{where}", request, lambda: similarity(
                [load(_config(model, w, size, seed), name=name) for w in chosen], part, **kwargs))
        for w, label in zip(chosen, labels):
            done = _studies(runner, model, w, size, seed, images, data, studies, spec, f"{_slug(label)}{where}")
            if shared is not None:
                done["similarity"] = shared
            result.studies |= {(study, label, seed): found for study, (found, _) in done.items()}
            paths = {study: path for study, (_, path) in done.items()}
            rows = {study: found.rows for study, (found, _) in done.items()}
            result.rows += [dict(row, model=name, seed=seed) for row in layer_rows(rows, paths, w, label)]
    if directory is not None:
        result.save(directory)
    return result


def _studies(runner, model, weights: str, size: int, seed: int, images, data, studies: dict, spec: dict,
             where: str) -> dict:
    """Inversion, decoders and probes of one weights and seed: study -> (result, its run directory)."""
    config = _config(model, weights, size, seed)
    calls = dict(invert=lambda kw: invert(load(config), list(images), PROBE_POINTS, seed=seed, **kw),
                 decode=lambda kw: decode(config, _data(data, kw.pop("data", None)), eval_images=list(images),
                                          seed=seed, **kw),
                 probe=lambda kw: probe(config, _data(data, kw.pop("data", None)), seed=seed, **kw))
    return {study: runner.get(study, f"{study}/{where}", dict(spec, weights=weights, images=list(images),
                                                            kwargs=studies[study]),
                              lambda call=call, kw=studies[study]: call(dict(kw)))
            for study, call in calls.items() if study in studies}


def _per_seed(weights, seeds: list[int]) -> dict[int, str]:
    """A weights entry as seed -> weights: the same for every seed, or a model trained per seed."""
    if isinstance(weights, Mapping):
        missing = [seed for seed in seeds if seed not in weights]
        if missing:
            raise ConfigError(f"the weights {dict(weights)} name no checkpoint for seed {missing[0]}; give one per "
                              f"seed of {seeds}")
        return {seed: str(weights[seed]) for seed in seeds}
    return {seed: str(weights) for seed in seeds}


class _Runner:
    """A study's finished run with the same request (its config.yaml) under the roots, or a new run, saved
    under `directory` when one is given."""

    def __init__(self, directory, reuse):
        self.directory = Path(directory) if directory is not None else None
        roots = [root for root in (self.directory, *map(Path, reuse)) if root is not None and root.is_dir()]
        self.finished = [run for run in find_runs(roots) if run.status == "done"] if roots else []

    def get(self, study: str, where: str, request: dict, run) -> tuple[Result, str | None]:
        request = yaml.safe_load(yaml.safe_dump(dict(request, study=study)))  # as config.yaml holds it
        for found in self.finished:
            if found.command == study and found.config == request:
                log.info("reusing %s for %s", found.path, where)
                inside = self.directory is not None and found.path.resolve().is_relative_to(self.directory.resolve())
                path = found.path.resolve().relative_to(self.directory.resolve()) if inside else found.path.resolve()
                return open_run(found.path), str(path)
        log.info("running: %s", where)
        result = run()
        if self.directory is None:
            return result, None
        result.save(self.directory / where, config=request)
        return result, where  # relative to the atlas's directory: the atlas stays readable where it is moved


def _config(model, weights: str, size: int, seed: int) -> dict:
    """The model config (create_model's arguments) of `model` with these weights and image size, an untrained
    one drawn from `seed`."""
    if isinstance(model, str):
        model = model_config(model)
    if not isinstance(model, Mapping):
        raise ConfigError("the atlas varies the weights: give the model as a spec ('resnet18', 'timm/...') or a "
                          "model config, not a loaded module")
    return dict(model, weights=weights, image_size=size, init_seed=seed)


def _data(data, settings: Mapping | None):
    """The atlas's dataset with a study's own settings on top."""
    if not settings:
        return data
    if isinstance(data, Dataset):
        return Dataset(data.name, {**data.options, **settings})
    if isinstance(data, str):
        return Dataset(data, dict(settings))
    raise ConfigError("a study's own data settings need the data as a preset name or rp.dataset(...)")


def _plain(value):
    if isinstance(value, Dataset):
        return dict(name=value.name, **value.options)
    return value if isinstance(value, (str, dict)) else data_name(value)


def _slug(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in label)
