"""The experiment loggers of a command, and what it tells W&B (README, *W&B*).

Key design: a metric key holds only what varies inside one run; what is fixed for the run (model, layer,
weights, relative depth, seed) is config, so W&B groups, filters and plots across runs by it and every job of
a sweep over layers logs the same keys. One run per job, finished before the next; a multirun is one W&B
group and keeps all its runs in one `wandb/` directory (the sweep directory's), so offline tools see it whole.
"""

from __future__ import annotations

import logging
import math
import netrc
import os
import socket
import statistics
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlparse

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from representation_probe.errors import ConfigError
from representation_probe.sample_keys import as_text, sample_key, varying_ids

log = logging.getLogger(__name__)
IDS = ("model", "weights", "layer", "relative_depth", "image", "seed")  # a row's ids, as config
MODES = ("online", "offline", "disabled")
MAX_ROWS = 10_000  # W&B's limit on a logged table (and so on a line_series chart)
# The history keys each command steps; their summaries keep the best and the last value.
STEPPED = ("invert/loss", "invert/m_g", "invert/m_i", "invert/m_g_over_m_s", "train/loss", "val/loss", "val/acc")


def build_loggers(cfg: DictConfig, command: str, tags: Sequence[str] = ()) -> list:
    """The loggers of `cfg.logger` (W&B offline by default; none with logger=csv), the config logged once."""
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    loggers = []
    for conf in cfg.logger.values():
        if conf.get("_target_") == f"{__name__}.wandb_logger":
            conf = OmegaConf.merge(conf, dict(
                job_type=conf.job_type or command, tags=[*conf.tags, *tags],
                group=conf.group or (str(hydra_cfg.sweep.dir) if multirun else None),
                name=conf.name or _run_name(hydra_cfg, multirun),
                save_dir=conf.save_dir or (hydra_cfg.sweep.dir if multirun else hydra_cfg.runtime.output_dir)))
        loggers.append(instantiate(conf))
    config = dict(command=command, cfg=OmegaConf.to_container(cfg, resolve=True))
    for logger in loggers:
        logger.log_hyperparams(config)
    return loggers


def _run_name(hydra_cfg, multirun: bool) -> str:
    """A job of a multirun by what the sweep chose for it (`layer=conv2`): the keys of the sweeper's params
    (Optuna's) and the overrides the command line did not give as they are (the basic sweeper's
    multirun.yaml keeps those); a single run by its directory's name."""
    if not multirun:
        return Path(hydra_cfg.runtime.output_dir).name
    given = Path(hydra_cfg.sweep.dir) / "multirun.yaml"
    given = set(OmegaConf.load(given).hydra.overrides.task) if given.is_file() else None
    params = set(hydra_cfg.sweeper.get("params") or {})
    chosen = [override for override in hydra_cfg.overrides.task
              if override.split("=")[0].lstrip("+~") in params or (given is not None and override not in given)]
    return (",".join(chosen) or f"job {hydra_cfg.job.num}")[:128]


def wandb_logger(project: str, mode: str, save_dir: str, job_type: str, name: str, group: str | None = None,
                 entity: str | None = None, tags: Sequence[str] = (), unavailable: str = "offline"):
    """A Lightning WandbLogger around a W&B run started here: a new run (an earlier job's or a notebook's is
    finished first), silent on the console (`finish` says where it went), its step axis Lightning's. Online
    without an API key or a reachable server it logs offline with a warning, or refuses (`unavailable`)."""
    import wandb
    from lightning.fabric.utilities.rank_zero import rank_zero_only
    from lightning.pytorch.loggers import WandbLogger

    if rank_zero_only.rank != 0:  # other DDP ranks: Lightning never starts a run for them
        return WandbLogger(project=project, mode=mode)
    if mode not in MODES or unavailable not in ("offline", "error"):
        raise ConfigError(f"logger.wandb.mode={mode}, logger.wandb.unavailable={unavailable}: modes are "
                          f"{', '.join(MODES)}; unavailable is offline or error")
    if mode == "online" and (problem := online_problem()):
        if unavailable != "offline":
            raise ConfigError(f"W&B online: {problem}; set WANDB_API_KEY (or run `wandb login`) and check the "
                              "network, or pass logger.wandb.mode=offline")
        log.warning("W&B online: %s; logging offline instead (wandb sync uploads it later; "
                    "logger.wandb.unavailable=error refuses instead)", problem)
        mode = "offline"
    if wandb.run is not None:
        wandb.finish()
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    run = wandb.init(project=project, entity=entity, mode=mode, dir=str(save_dir), job_type=job_type, name=name,
                     group=group, tags=list(tags), settings=wandb.Settings(silent=True))
    run.define_metric("trainer/global_step")
    run.define_metric("*", step_metric="trainer/global_step", step_sync=True)
    for key in STEPPED:
        run.define_metric(key, step_metric="trainer/global_step", summary="min,last")
    return WandbLogger(experiment=run)


def online_problem(timeout: float = 3.0) -> str | None:
    """Why W&B cannot log online from here (no API key, its server unreachable), or None; W&B's own
    variables say where: WANDB_API_KEY, WANDB_BASE_URL, NETRC (else ~/.netrc)."""
    url = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai")
    host, port = url.hostname or "", url.port or (443 if url.scheme == "https" else 80)
    if not os.environ.get("WANDB_API_KEY") and not _netrc_key(host):
        return f"no API key for {host} (WANDB_API_KEY or `wandb login`)"
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as err:
        return f"{host}:{port} cannot be reached ({err.strerror or err})"
    return None


def _netrc_key(host: str) -> str | None:
    try:
        entry = netrc.netrc(os.environ.get("NETRC")).authenticators(host)
    except (OSError, netrc.NetrcParseError):
        return None
    return entry[2] if entry else None


def finish(exit_code: int = 0) -> None:
    """End the W&B run of this process, if any (a non-zero code marks it failed), with one line saying where."""
    import sys

    if "wandb" not in sys.modules:
        return
    import wandb

    run = wandb.run
    if run is None:
        return
    where = run.url if not run.offline else f"{run.settings.sync_dir} (upload: wandb sync {run.settings.sync_dir})"
    wandb.finish(exit_code=exit_code)
    log.info("W&B run %s: %s", run.name, where)


# ---- what a study's result tells W&B -----------------------------------------------------------------------
def log_result(loggers, result) -> None:
    """A study's final rows to each W&B run: `final/*` summary values, the ids as config, one table of
    the rows (with the image of each row where the study has one), and its charts."""
    log_rows(loggers, result.command, result.rows, metrics=result.metrics, conditions=result.conditions,
             by_depth=result.by_depth, images=result.row_images(), curves=result.curves())


def log_rows(loggers, command: str, rows: list[dict], metrics: Sequence[str], conditions: Sequence[str] = (),
             by_depth: Sequence[str] = (), images: list | None = None, curves: dict | None = None) -> None:
    """See log_result; `curves` as Result.curves returns them."""
    runs = [logger.experiment for logger in loggers if type(logger).__name__ == "WandbLogger"]
    runs = [run for run in runs if hasattr(run, "summary")]  # not another DDP rank's stand-in
    if not runs or not rows:
        return
    import wandb

    ids = [key for key in (*IDS, *conditions) if any(key in row for row in rows)]
    varying = varying_ids(rows, [key for key in ids if key != "relative_depth"])  # depth follows the layer
    config = {key: _one_or_all([row.get(key) for row in rows]) for key in ids  # `layer: conv1,conv2` if several
              if not (key == "relative_depth" and "layer" in varying)}
    metrics = [m for m in metrics if any(_number(row.get(m)) is not None for row in rows)]
    summary = {}
    for metric in metrics:
        values = [v for v in (_number(row.get(metric)) for row in rows) if v is not None]
        summary[f"final/{metric}"] = sum(values) / len(values)  # a run of one row: its value
        if varying:
            summary |= {f"final/{sample_key(row, varying)}/{metric}": _number(row.get(metric)) for row in rows}
    if "seed" in varying:
        summary |= _over_seeds(rows, [key for key in varying if key != "seed"], metrics)
    warnings = [w for row in rows for w in row.get("warnings") or []]
    summary |= {"final/warnings": len(warnings), "warnings": "; ".join(warnings)} if warnings else {}
    columns = [*varying, *(["relative_depth"] if "relative_depth" in ids else []), *metrics]
    table = wandb.Table(columns=[*columns, *(["image"] if images else [])])
    for i, row in enumerate(rows[:MAX_ROWS]):
        image = [None if images[i] is None else wandb.Image(_hwc(images[i]))] if images else []
        table.add_data(*[_cell(row.get(key)) for key in columns], *image)
    # A chart is drawn from its config entry and the table it names; under `_charts/` the table's file
    # record stays out of the metric grids (W&B's and LEET's draw every numeric history key, `_` ones aside).
    charts = {}
    if {"m_g", "m_i"} <= set(metrics):  # the paper's Figs. 4-5: pixel against embedding distance
        charts["m_i_vs_m_g"] = wandb.plot.scatter(table, "m_g", "m_i", title="m_i against m_g")
    if "layer" in varying and "relative_depth" in columns:
        for metric in (m for m in by_depth if m in metrics):
            charts[f"{metric}_by_depth"] = wandb.plot.scatter(table, "relative_depth", metric,
                                                              title=f"{metric} against relative depth")
    for kind, lines in (curves or {}).items():  # one chart per kind, a line per sample
        lines = dict(list(lines.items())[:MAX_ROWS // max(1, max(map(len, lines.values()), default=1))])
        xs = [[step for step, _ in points] for points in lines.values()]
        ys = [[value for _, value in points] for points in lines.values()]
        charts[f"curves/{kind}"] = wandb.plot.line_series(xs, ys, keys=list(lines), title=kind, xname="step")
    for run in runs:
        run.config.update(config, allow_val_change=True)
        run.summary.update(summary | {f"{command}/results": table})
        if charts:
            run.log({f"_charts/{command}/{key}": chart for key, chart in charts.items()})


def _over_seeds(rows: list[dict], cells: list[str], metrics: Sequence[str]) -> dict:
    """Each cell's mean over the seeds, under the key a run of one seed gives its value (`final/conv3/psnr`),
    and its sd (`final/conv3/psnr_sd`, n - 1)."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(sample_key(row, cells), []).append(row)
    summary = {}
    for cell, group in groups.items():
        for metric in metrics:
            values = [v for v in (_number(row.get(metric)) for row in group) if v is not None]
            key = "/".join(["final", *([cell] if cell else []), metric])
            summary |= {key: statistics.mean(values)} if values else {}
            summary |= {f"{key}_sd": statistics.stdev(values)} if len(values) > 1 else {}
    return summary


def _one_or_all(values: list):
    """One value when all rows share it, else them all as text (`conv1,conv2`): W&B config takes scalars."""
    distinct = list(dict.fromkeys(as_text(v) for v in values))
    return values[0] if len(distinct) == 1 else ",".join(distinct)


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _cell(value):
    return value if value is None or isinstance(value, (int, float, str, bool)) else str(value)


def _hwc(image):
    """A (3, H, W) tensor in [0, 1] as W&B's images take it; a path as it is."""
    if isinstance(image, (str, Path)):
        return str(image)
    return (image.detach().cpu().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
