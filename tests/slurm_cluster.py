"""A one-node SLURM cluster for the tests: munged, slurmctld and slurmd of Debian's packages, started in a
temporary directory with their own key, sockets and ports, and stopped again.

`make test` installs the packages (the Makefile's `slurm` target); without them, or when the daemons
cannot start, `LocalCluster.start` raises `Unavailable` with the reason, which the fixture turns into a skip.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "srun", "squeue", "sinfo", "scontrol", "scancel")
PARTITION = "debug"
CPUS = 2


class Unavailable(RuntimeError):
    """SLURM cannot run here; the message says why."""


class LocalCluster:
    """One node named after this host with 2 CPUs, partition `debug`; clients find it through SLURM_CONF."""

    def __init__(self, root: Path):
        self.root = root
        self.node = socket.gethostname().split(".")[0]
        self.conf = root / "slurm.conf"
        self.munge_socket = root / "munge" / "munge.socket"
        self.processes: list[subprocess.Popen] = []

    @classmethod
    def start(cls, root: Path, timeout: float = 60) -> LocalCluster:
        missing = [name for name in DAEMONS + CLIENTS if _which(name) is None]
        if missing:
            raise Unavailable(f"SLURM is not installed ({', '.join(missing)} missing; `make test` installs "
                              "Debian's slurmctld, slurmd, slurm-client and munge)")
        if os.geteuid() != 0:
            raise Unavailable("the local SLURM cluster needs root (slurmd starts jobs as their user)")
        cluster = cls(root)
        try:
            cluster._start(timeout)
        except BaseException:
            cluster.stop()
            raise
        return cluster

    @property
    def env(self) -> dict[str, str]:
        """What a client (sbatch, squeue, submitit) needs to find this cluster."""
        return {"SLURM_CONF": str(self.conf)}

    def _start(self, timeout: float) -> None:
        for name in ("munge", "state", "spool", "log"):
            (self.root / name).mkdir(mode=0o700, parents=True, exist_ok=True)
        key = self.root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        self._spawn("munged", "--foreground", "--force", f"--key-file={key}", f"--socket={self.munge_socket}",
                    f"--pid-file={self.root / 'munge' / 'munged.pid'}", f"--seed-file={self.root / 'munge' / 'seed'}",
                    f"--log-file={self.root / 'log' / 'munged.log'}")
        self._wait(lambda: self.munge_socket.exists(), timeout, "munged")
        self.conf.write_text(self._slurm_conf())
        self._spawn("slurmctld", "-D", "-c", "-f", str(self.conf))
        self._spawn("slurmd", "-D", "-N", self.node, "-f", str(self.conf))
        self._wait(self._idle, timeout, "slurmd (the node never became idle)")

    def _slurm_conf(self) -> str:
        ctld_port, slurmd_port = _free_port(), _free_port()
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20 - 1024  # MiB, some for the OS
        return "\n".join([
            "ClusterName=representation-probe-test",
            f"SlurmctldHost={self.node}(127.0.0.1)",
            "SlurmUser=root",
            f"SlurmctldPort={ctld_port}",
            f"SlurmdPort={slurmd_port}",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={self.munge_socket}",
            f"StateSaveLocation={self.root / 'state'}",
            f"SlurmdSpoolDir={self.root / 'spool'}",
            f"SlurmctldPidFile={self.root / 'slurmctld.pid'}",
            f"SlurmdPidFile={self.root / 'slurmd.pid'}",
            f"SlurmctldLogFile={self.root / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={self.root / 'log' / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "MpiDefault=none",
            "ReturnToService=2",
            "KillWait=5",  # a requeued or cancelled job gets SIGKILL 5 s after SIGTERM
            f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs={CPUS} RealMemory={memory} State=UNKNOWN",
            f"PartitionName={PARTITION} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP",
            "",
        ])

    def _spawn(self, name: str, *args: str) -> None:
        with (self.root / "log" / f"{name}.out").open("w") as log:
            self.processes.append(subprocess.Popen([_which(name), *args], stdout=log, stderr=subprocess.STDOUT,
                                                   env={**os.environ, **self.env}, start_new_session=True))

    def _wait(self, ready, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            dead = [p for p in self.processes if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                raise Unavailable(f"{what} did not start; logs in {self.root / 'log'}:\n{self.logs()}")
            time.sleep(0.2)

    def _idle(self) -> bool:
        done = self.run("sinfo", "--noheader", "--Node", "--format=%T")
        return done.returncode == 0 and done.stdout.strip() == "idle"

    def run(self, *command: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """A SLURM client command (squeue, scontrol, ...) against this cluster, in `env` (default: ours)."""
        return subprocess.run(command, capture_output=True, text=True, env={**(env or os.environ), **self.env},
                              timeout=60)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted((self.root / "log").glob("*")))

    def stop(self) -> None:
        """Cancel the jobs still on this cluster, then stop its daemons, last started first."""
        if self.conf.exists() and self.processes:
            self.run("scancel", "--user", str(os.getuid()))
            deadline = time.monotonic() + 15
            while self.run("squeue", "--noheader").stdout.strip() and time.monotonic() < deadline:
                time.sleep(0.5)
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.processes.clear()


def _which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
