"""`report`: report.html from run directories (a run, a multirun, or several)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from representation_probe.config.checks import as_list
from representation_probe.errors import ConfigError
from representation_probe.reporting import write_report


def run(cfg: DictConfig) -> None:
    roots = [Path(path) for path in as_list(cfg.runs)]
    missing = [str(root) for root in roots if not root.is_dir()]
    if missing:
        raise ConfigError(f"not a run directory: {', '.join(missing)} (report takes run or multirun directories)")
    out = Path(cfg.out) if cfg.out else roots[0]
    print(f"wrote {write_report(roots, out)}")
