"""One module per command: `commands/<command>.py` holds `run(cfg)` for the entry config `conf/<command>.yaml`,
returning the number a sweeper optimises (or None). `main` is the task Hydra runs for every command."""

from __future__ import annotations

import importlib
import sys

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from representation_probe.errors import ConfigError
from representation_probe.rundir import RunDir


def main(cfg: DictConfig) -> float | None:
    """Dispatch on the entry config's name; bad input becomes one line, loggers always close.

    A failed job leaves failure.json (its error line) in its run directory for the report; in a
    multirun the exception goes on to Hydra, which marks the job failed while the others run on.
    """
    hydra_cfg = HydraConfig.get()
    command = hydra_cfg.job.config_name
    run_dir = RunDir(hydra_cfg.runtime.output_dir) if hydra_cfg.output_subdir is not None else None  # else prints only
    try:
        if run_dir:
            run_dir.clear_failure()
        return importlib.import_module(f"{__name__}.{command}").run(cfg)
    except Exception as err:
        user_error = config_error(err)
        line = str(user_error) if user_error else f"{type(err).__name__}: {err}".splitlines()[0]
        if run_dir:
            run_dir.write_failure(command, line, list(hydra_cfg.overrides.task))
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


def config_error(err: BaseException | None) -> ConfigError | None:
    """The ConfigError behind an exception, also when hydra's instantiate wrapped it."""
    while err is not None and not isinstance(err, ConfigError):
        err = err.__cause__
    return err


def config_choice(group: str) -> str | None:
    """The option chosen for a config group in the running job (`dataset=digits` -> 'digits')."""
    return HydraConfig.get().runtime.choices.get(group)
