"""`atlas`: every study of every probe point of one model, per weights, side by side."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from representation_probe.atlas.rows import layer_rows
from representation_probe.atlas.studies import Studies, Study
from representation_probe.commands import config_choice
from representation_probe.errors import ConfigError
from representation_probe.reporting import atlas as figures
from representation_probe.reporting import write_report
from representation_probe.reporting.labels import weights_label
from representation_probe.rundir import RunDir, write_atomic, write_csv
from representation_probe.validation import as_list, positive_int

log = logging.getLogger(__name__)
STUDIES = ("invert", "decode", "probe", "similarity")
TRAIN = "train:"


def run(cfg: DictConfig) -> None:
    run_dir = RunDir.current()
    model_name, dataset_name, size = config_choice("model"), config_choice("dataset"), cfg.dataset.image_size
    positive_int("dataset.image_size", size)
    studies = {name: list(overrides) for name, overrides in (cfg.studies or {}).items() if overrides is not None}
    unknown = sorted(set(studies) - set(STUDIES))
    if unknown:
        raise ConfigError(f"unknown atlas study {', '.join(unknown)}; studies: {', '.join(STUDIES)}")
    weights = [str(w) for w in as_list(cfg.weights)]
    missing = [w for w in weights if w.startswith(TRAIN) and w.removeprefix(TRAIN) not in (cfg.training or {})]
    if missing:
        raise ConfigError(f"weights {', '.join(missing)} name no training recipe; recipes: "
                          f"{', '.join(cfg.training or {}) or 'none'} (atlas.yaml `training`)")
    runner = Studies([run_dir.path, *(Path(str(root)) for root in as_list(cfg.reuse))])
    data = [f"dataset={dataset_name}", f"dataset.image_size={size}", *cfg.common, *cfg.data]
    model = [f"model={model_name}", f"seed={cfg.seed}"]
    checkpoints = {w: _checkpoint(w, cfg, [*model, f"dataset.image_size={size}", *cfg.common, *cfg.data], runner,
                                  run_dir) for w in weights}
    labels = {w: f"{model_name} {w.removeprefix(TRAIN) + '-trained' if w.startswith(TRAIN) else weights_label(w)}"
              for w in weights}
    images = f"[{','.join(as_list(cfg.images))}]"
    rows = []
    similarity = None
    if "similarity" in studies:
        names = f"[{','.join([model_name] * len(weights))}]"
        listed = f"[{','.join(repr(checkpoints[w]) for w in weights)}]"
        similarity = runner.get(Study("similarity", (f"models={names}", f"weights={listed}", *data,
                                                     *studies["similarity"]), run_dir.path / "similarity"))
    for w in weights:
        own = {"invert": [f"model.image_size={size}", *cfg.common, "layer=probe_points", f"image={images}"],
               "decode": [*data, f"eval_images={images}"], "probe": data}
        runs = {study: runner.get(Study(study, (*model, f"model.weights={checkpoints[w]}", *own[study],
                                                *studies[study]), run_dir.path / study / _slug(labels[w])))
                for study in own if study in studies}
        if similarity is not None:
            runs["similarity"] = similarity
        rows += [dict(row, model=model_name) for row in layer_rows(runs, checkpoints[w], labels[w])]
    if not rows:
        raise ConfigError("the atlas has no study with probe points to show: keep at least one of "
                          f"{', '.join(STUDIES)} in `studies`")
    run_dir.write_config(cfg)
    run_dir.write_summary(rows)
    write_csv(run_dir.table("atlas"), [{k: v for k, v in row.items() if k != "runs"} for row in rows])
    write_atomic(run_dir.figure("atlas"), figures.by_depth(rows, model_name))
    log.info("wrote %s", write_report([run_dir.path], run_dir.path))


def _checkpoint(weights: str, cfg: DictConfig, model: list[str], runner: Studies, run_dir: RunDir) -> str:
    """The weights as model.weights takes them; a train:<recipe> entry trains (or finds) its model."""
    if not weights.startswith(TRAIN):
        return weights
    recipe = weights.removeprefix(TRAIN)
    overrides = (*model, *OmegaConf.to_container(cfg.training[recipe]))
    trained = runner.get(Study("train", overrides, run_dir.path / "train" / recipe))
    return str(trained.last_checkpoint)


def _slug(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in label)
