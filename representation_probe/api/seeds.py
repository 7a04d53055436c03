"""A study repeated over seeds: one run per seed (under <directory>/seed<s> when there are several), their rows
merged into one result, whose `spread()` gives each measurement's mean and sd over the seeds per cell."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import yaml

from representation_probe.api.results import Result, open as open_run
from representation_probe.config.checks import seed_list
from representation_probe.runs.rundir import read_run

log = logging.getLogger(__name__)


def repeat(seeds, run_one: Callable[[int, Path | None, tuple], Result], directory: str | Path | None = None,
           request: Callable[[int], dict] | None = None, loggers=()) -> Result:
    """`run_one(seed, directory, loggers)` once per seed. One seed: its result, run in `directory`. Several: each
    run in <directory>/seed<s> and saved there (with `request(seed)` as its recorded config, else the result's
    own), where a re-run with the same request finds it finished instead of running it again; then merged.
    Only the first seed's run gets the loggers: a W&B run's steps cannot go back to 0 for the next seed."""
    seeds = seed_list(seeds)
    if len(seeds) == 1:
        return run_one(seeds[0], Path(directory) if directory is not None else None, tuple(loggers))
    results = {}
    for seed in seeds:
        child = Path(directory) / f"seed{seed}" if directory is not None else None
        config = request(seed) if request is not None else None
        result = _finished(child, config)
        if result is None:
            result = run_one(seed, child, tuple(loggers) if seed == seeds[0] else ())
            if child is not None and result.rows:  # rows: DDP rank 0, which writes
                result.save(child, config=config)
        results[seed] = result
    return merge(results)


def merge(results: dict[int, Result]) -> Result:
    """One result of the runs of several seeds: every run's rows, the curves with a `seed` column, the runs
    themselves (with their tensors) in `by_seed`."""
    first = next(iter(results.values()))
    merged = type(first)(rows=[row for result in results.values() for row in result.rows],
                         history_rows=[dict(row, seed=seed) for seed, result in results.items()
                                       for row in result.history_rows],
                         config=dict(first.config, seed=list(results)))
    merged.by_seed = dict(results)
    return merged


def _finished(child: Path | None, config: dict | None) -> Result | None:
    """The finished run in `child` if it was made by the same request."""
    if child is None or config is None or not (child / "summary.json").is_file():
        return None
    run = read_run(child)
    if run.status != "done" or run.config != yaml.safe_load(yaml.safe_dump(config)):
        return None
    log.info("reusing the finished run %s", child)
    return open_run(child)


def spread_text(result: Result, metric: str, where=None) -> str:
    """`conv1 0.752 ± 0.012, conv2 ...`: a measurement's mean ± sd over the seeds per layer (of the rows `where`
    selects in the spread frame), for the log."""
    frame = result.spread()
    frame = frame[frame["metric"] == metric]
    if where is not None:
        frame = frame[where(frame)]
    return ", ".join(f"{row.layer} {row.mean:.4g} ± {row.sd:.2g}" for row in frame.itertuples())
