"""SLURM sweeps through submitit that report a job SLURM cannot start instead of waiting on it forever."""

from __future__ import annotations

import logging
import os
import subprocess
import time
from pathlib import Path
from typing import Any, Sequence

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher import submitit_launcher
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from omegaconf import OmegaConf, open_dict

from representation_probe.errors import ConfigError

log = logging.getLogger(__name__)

# Pending reasons that no amount of waiting resolves: the request exceeds what the partition or its nodes
# allow, or names what does not exist (squeue's REASON column; `man squeue`, JOB REASON CODES).
NEVER = {"PartitionConfig", "PartitionNodeLimit", "PartitionTimeLimit", "ReqNodeNotAvail", "BadConstraints",
         "DependencyNeverSatisfied", "InvalidAccount", "InvalidQOS", "QOSMaxCpuPerJobLimit",
         "QOSMaxGRESPerJob", "QOSMaxMemoryPerJob", "QOSMaxNodePerJobLimit", "QOSMaxWallDurationPerJobLimit"}
ENDED = {"BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED",
         "TIMEOUT", "GONE"}  # GONE: no longer listed by squeue (MinJobAge after it ended, or cancelled unstarted)
RESULT_GRACE_S = 15  # a finished job's result file may show up late on a network filesystem
MAX_QUERY_INTERVAL_S = 30  # squeue is asked after 1, 2, 4, ... s, then every 30 s


def gpus_per_node(accelerator: str, devices: Any) -> int | None:
    """GPUs to request per node: `trainer.devices` for a GPU trainer, none for a CPU one (sbatch refuses a
    GPU request on a cluster without GPUs)."""
    return int(devices) if str(accelerator) in ("gpu", "cuda") else None


OmegaConf.register_new_resolver("gpus_per_node", gpus_per_node, replace=True)


class SlurmLauncher(submitit_launcher.SlurmLauncher):
    """Submits the sweep's jobs as one array, like the plugin, then waits on them itself: squeue tells which
    jobs SLURM will never start (their reason is reported and the sweep's jobs cancelled) and which ended
    without a result (submitit would ask sacct, which clusters without accounting lack, and wait forever)."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        """The plugin's launch (hydra-submitit-launcher 1.2.0) up to the submission, then our wait."""
        import submitit

        params = dict(self.params)
        executor = submitit.AutoExecutor(cluster="slurm", folder=params.pop("submitit_folder"),
                                         slurm_max_num_timeout=params.pop("max_num_timeout"))
        shared = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{key if key in shared else f"slurm_{key}": value
                                      for key, value in params.items()})
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))
        log.info(f"Submitit 'slurm' sweep output dir : {sweep_dir}")
        numbers = range(initial_job_idx, initial_job_idx + len(job_overrides))
        for number, overrides in zip(numbers, job_overrides):
            log.info(f"\t#{number} : {' '.join(filter_overrides(overrides))}")
        try:
            jobs = executor.map_array(self, [list(o) for o in job_overrides], ["hydra.sweep.dir"] * len(numbers),
                                      list(numbers), [f"job_id_for_{n}" for n in numbers],
                                      [Singleton.get_state()] * len(numbers))
        except submitit.core.utils.FailedJobError as err:
            raise ConfigError(f"sbatch refused the jobs: {_last_error(str(err))}") from None
        ended = wait(jobs)
        return [self._lost(job, number, overrides, ended[job.job_id]) if job.job_id in ended else job.results()[0]
                for job, number, overrides in zip(jobs, numbers, job_overrides)]

    def _lost(self, job, number: int, overrides: Sequence[str], state: str) -> JobReturn:
        """A job that ended without a result (cancelled, out of memory, node failure): failure.json in its
        directory, as a failing job writes it, and Hydra's record of a failed job."""
        from representation_probe.runs.rundir import RunDir  # torch: not at Hydra's plugin scan

        line = f"SLURM job {job.job_id} ended without a result ({state}); its log: {job.paths.stderr}"
        config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        with open_dict(config):
            config.hydra.job.num = number
        run_dir = RunDir(Path(config.hydra.sweep.dir) / str(config.hydra.sweep.subdir))
        run_dir.write_failure(config.hydra.job.config_name, line, list(overrides))
        return JobReturn(overrides=list(overrides), status=JobStatus.FAILED, _return_value=RuntimeError(line))


def wait(jobs: list, grace_s: float = RESULT_GRACE_S) -> dict[str, str]:
    """Wait until every job has its result file or has ended (and `grace_s` passed without the file);
    returns the state of those that ended without one. Raises ConfigError with SLURM's reason, after
    cancelling them all, if a job can never start."""
    waiting = {job.job_id: job for job in jobs}
    ended: dict[str, str] = {}
    interval, next_query, ended_at = 1.0, 0.0, {}
    while waiting:
        for job_id, job in list(waiting.items()):
            if job.paths.result_pickle.exists():
                del waiting[job_id]
                ended_at.pop(job_id, None)
        if waiting and time.monotonic() >= next_query:
            for job_id, (state, reason, request) in queue_states(waiting).items():
                if state == "PENDING" and reason.split(",")[0] in NEVER:  # ReqNodeNotAvail, UnavailableNodes:..
                    for job in jobs:
                        job.cancel(check=False)
                    raise ConfigError(f"SLURM cannot start job {job_id} ({request}): pending with reason {reason}; "
                                      "the sweep's jobs are cancelled. Ask for less (hydra.launcher.cpus_per_task, "
                                      "mem_gb, timeout_min) or another hydra.launcher.partition")
                if state not in ENDED:
                    ended_at.pop(job_id, None)
                elif time.monotonic() - ended_at.setdefault(job_id, time.monotonic()) >= grace_s:
                    ended[job_id] = state
                    del waiting[job_id], ended_at[job_id]
            next_query = min([time.monotonic() + interval, *(t + grace_s for t in ended_at.values())])
            interval = min(2 * interval, MAX_QUERY_INTERVAL_S)
        time.sleep(1.0 if waiting else 0)
    return ended


def queue_states(jobs: dict) -> dict[str, tuple[str, str, str]]:
    """{job id: (state, reason, what it asked for)} from squeue; a job it no longer lists has ended (GONE).
    Empty when squeue fails (a busy or restarting controller): ask again later."""
    ids = sorted({job_id.split("_")[0] for job_id in jobs})
    done = subprocess.run(["squeue", "--noheader", "--array", "--states=all", f"--jobs={','.join(ids)}",
                           "--format=%i|%T|%r|%P|%D|%C|%m|%l"], capture_output=True, text=True)
    if "Invalid job id" in done.stderr:  # long gone (MinJobAge after they ended)
        return {job_id: ("GONE", "", "") for job_id in jobs}
    if done.returncode != 0:
        log.debug(f"squeue failed: {done.stderr.strip()}")
        return {}
    known = {}
    for line in done.stdout.splitlines():
        job_id, state, reason, partition, nodes, cpus, memory, time_limit = line.split("|")
        known[job_id] = (state, reason, f"partition {partition}, {nodes} node(s), {cpus} CPUs, "
                                        f"memory {memory if memory != '0' else 'default'}, time limit {time_limit}")
    return {job_id: known.get(job_id, ("GONE", "", "")) for job_id in jobs}


def _last_error(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or ["(no message)"])[-1]
