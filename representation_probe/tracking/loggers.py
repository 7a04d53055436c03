"""The experiment loggers of a command (README, *W&B*).

Key design: a metric key holds only what varies inside one run; what is fixed for the run (model, layer,
weights, relative depth, seed) is config, so W&B groups, filters and plots across runs by it and every job of
a sweep over layers logs the same keys. One run per job, finished before the next; a multirun is one W&B
group and keeps all its runs in one `wandb/` directory (the sweep directory's), so offline tools see it whole.
"""

from __future__ import annotations

import logging
import netrc
import os
import socket
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlparse

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from representation_probe.errors import ConfigError

log = logging.getLogger(__name__)
MODES = ("online", "offline", "disabled")
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
