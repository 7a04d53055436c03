"""The task Hydra runs for every command: `main(cfg)` dispatches to `commands/<command>.py`'s `run(cfg)`, holds the
run directory's lock, records provenance, turns bad input into one line (and failure.json), ends a run a signal
stops on the record, and closes the loggers whatever happens."""

from __future__ import annotations

import importlib
import logging
import sys
import warnings
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from representation_probe.api import runtime
from representation_probe.api.runtime import LIGHTNING_LOGGERS
from representation_probe.cli import schemas  # registers the structured configs
from representation_probe.cli.shell import config_choice
from representation_probe.cli.user_errors import first_line, unknown_key, user_error
from representation_probe.config import presets
from representation_probe.errors import ConfigError, InputWarning, ResultWarning
from representation_probe.runs import interrupts, lock as run_lock
from representation_probe.runs.provenance import provenance
from representation_probe.runs.resources import device_of
from representation_probe.runs.rundir import RunDir, find_runs, write_json
from representation_probe.tracking import loggers as tracking

log = logging.getLogger(__name__)


def main(cfg: DictConfig) -> float | None:
    """Dispatch on the entry config's name; bad input becomes one line, loggers always close.

    A failed job leaves failure.json (its error line) in its run directory for the report; in a
    multirun the exception goes on to Hydra, which marks the job failed while the others run on,
    and carries the sweep directory for the summary `__main__` prints at the end.
    """
    hydra_cfg = HydraConfig.get()
    command = hydra_cfg.job.config_name
    _one_console()
    runtime.VERBOSE = True  # Lightning's lines belong in the run's log
    run_dir = RunDir(hydra_cfg.runtime.output_dir) if hydra_cfg.output_subdir is not None else None  # else prints only
    locked = run_dir is not None and _lock(run_dir, command, hydra_cfg)
    try:
        if run_dir:
            run_dir.clear_failure()
            typed = [*hydra_cfg.overrides.task, *(o for o in hydra_cfg.overrides.hydra if o.startswith("hydra.run."))]
            write_json(run_dir.provenance_file, provenance(command, typed))
        missing = sorted(OmegaConf.missing_keys(cfg))
        if missing:
            raise ConfigError(f"{missing[0]} is required: pass {missing[0]}=<value>")
        _check_accelerator(cfg)
        _check_added_keys(cfg, list(hydra_cfg.overrides.task), command)
        with interrupts.signals_end_the_run():
            return importlib.import_module(f"representation_probe.commands.{command}").run(cfg)
    except interrupts.Interrupted as err:  # the whole process stops, a sweep too
        resume = run_dir.last_checkpoint if run_dir and run_dir.last_checkpoint.is_file() else None
        record = interrupts.record(err, command, str(resume) if resume else None)
        if run_dir:
            run_dir.write_interrupted(record)
        print(f"error: interrupted by {err} at step {record['step']}; "
              + (f"the same command resumes from {resume}" if resume else "the same command runs it again"),
              file=sys.stderr)
        tracking.finish(exit_code=err.exit_code)
        sys.exit(err.exit_code)
    except Exception as err:
        tracking.finish(exit_code=1)
        line = user_error(err)
        if line is None:  # a bug: its traceback goes into <run dir>/<command>.log as well
            _log_to_files("%s failed", command, exc_info=True)
        shown = line or first_line(err)
        if run_dir:
            run_dir.write_failure(command, shown, list(hydra_cfg.overrides.task))
        _log_to_files("error: %s", shown)
        if hydra_cfg.mode == RunMode.MULTIRUN:  # the sweep goes on; __main__ lists the failed jobs at the end
            print(f"error: {shown}", file=sys.stderr)
            err.sweep_dir = str(hydra_cfg.sweep.dir)
            raise
        if line is None:
            raise
        print(f"error: {line}", file=sys.stderr)
        sys.exit(2)
    finally:
        tracking.finish()
        if locked:
            run_lock.release(run_dir.path)


def _lock(run_dir: RunDir, command: str, hydra_cfg) -> bool:
    """The run directory for this command alone (runs/lock.py): another's is refused before anything of this
    run goes into it."""
    try:
        return run_lock.acquire(run_dir.path, command)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        if hydra_cfg.mode == RunMode.MULTIRUN:
            err.sweep_dir = str(hydra_cfg.sweep.dir)
            raise
        sys.exit(2)


def _one_console() -> None:
    """Each line once, without third-party advice: Lightning's loggers print through Hydra's handlers (the
    console and <run dir>/<command>.log) instead of their own as well; its tips and hints are dropped."""
    for name in LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers = [h for h in logger.handlers if type(h) is not logging.StreamHandler]
        logger.propagate = True
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_no_tips)  # once: a set of filters
    warnings.filterwarnings("ignore", message=r".*(`srun` command is available|LeafSpec|treespec).*")
    if warnings.showwarning is not _log_ours:
        _log_ours.plain = warnings.showwarning
        warnings.showwarning = _log_ours


def _log_ours(message, category, filename, lineno, file=None, line=None) -> None:
    """The library's doubts and input changes (errors.py) as log lines (console and <run dir>/<command>.log), not
    as Python's `file:line: Category: message` with a line of our source; any other warning as Python shows it."""
    if issubclass(category, (ResultWarning, InputWarning)):
        log.warning("%s: %s", category.__name__, message)
    else:
        _log_ours.plain(message, category, filename, lineno, file, line)


def _check_accelerator(cfg: DictConfig) -> None:
    """A GPU trainer on a machine without one is one line, before any work (not Lightning's traceback)."""
    accelerator = cfg.get("trainer", {}).get("accelerator", "cpu")
    if device_of(accelerator) == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"trainer={config_choice('trainer')} asks for a GPU (accelerator={accelerator}), and "
                              "this machine has none that torch can use; pass trainer=cpu (or trainer=ddp_cpu)")


def _no_tips(record: logging.LogRecord) -> bool:
    return "Tip:" not in str(record.msg)








def _check_added_keys(cfg: DictConfig, overrides: list[str], command: str) -> None:
    """`+key=value` adds a key: only where a node is open to more (a timm model's keywords, the trainer's,
    a group); a key its schema does not have would reach a constructor or be ignored."""
    groups = {path.name for path in presets.CONF.iterdir() if path.is_dir()}
    for override in overrides:
        if not override.startswith("+"):
            continue
        key = override.lstrip("+").split("=", 1)[0].split("@")[0]
        parent, _, leaf = key.rpartition(".")
        if parent == "model" or (not parent and key in groups):
            continue  # a family checks its own options; +experiment=... appends a group
        if not parent and not override.startswith("++"):  # a single + succeeds only for a key not there
            raise ConfigError(unknown_key(key, command))
        known = schemas.known_keys(parent)
        if known is not None and leaf not in known:
            raise ConfigError(unknown_key(key, command))






def _log_to_files(message: str, *args, exc_info: bool = False) -> None:
    """A record for the run's log file (<run dir>/<command>.log) only: the console has the error on stderr."""
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, message, args,
                            sys.exc_info() if exc_info else None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def failed_jobs(sweep_dir: Path, since: float) -> tuple[list[tuple[str, str]], int]:
    """(job directory, error line) of each job under `sweep_dir` that failed after `since` (a timestamp),
    and how many jobs ran since then."""
    runs = [run for run in (find_runs([sweep_dir]) if sweep_dir.is_dir() else [])
            if (run.path / ".hydra").is_dir() and (run.path / ".hydra").stat().st_mtime >= since]
    failed = [(str(run.path), run.failure) for run in runs if run.failure]
    return failed, len(runs)
