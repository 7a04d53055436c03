"""Kills a process at many instants while it writes checkpoints, $TMPDIR on tmpfs and the checkpoint on
another filesystem (the cluster layout), with Lightning's stock TorchCheckpointIO and with ours.

    PYTHONPATH=. OMP_NUM_THREADS=1 python bench/checkpoint_kills.py [kills]

Prints, per writer, after how many kills last.ckpt did not load and how much was left in $TMPDIR.
Not a timing: counts of failures (issue 10, case 1). Needs /dev/shm on another filesystem than /tmp.
"""

import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from representation_probe.training.checkpoints import DurableCheckpointIO
from tests.test_resume import save_forever


def main(kills: int) -> None:
    torch.set_num_threads(1)
    for io in (TorchCheckpointIO(), DurableCheckpointIO()):
        run, tmpdir = Path(tempfile.mkdtemp(dir="/tmp")), Path(tempfile.mkdtemp(dir="/dev/shm"))
        path = run / "checkpoints" / "last.ckpt"
        DurableCheckpointIO().save_checkpoint({"state_dict": {}, "global_step": 0}, path)
        torn, left, example = 0, 0, ""
        for delay in np.linspace(0.02, 1.0, kills):
            child = multiprocessing.get_context("fork").Process(target=save_forever, args=(io, path, tmpdir))
            child.start()
            time.sleep(delay)
            os.kill(child.pid, signal.SIGKILL)
            child.join()
            try:
                torch.load(path, weights_only=False)
            except Exception as err:
                torn, example = torn + 1, f"{type(err).__name__}: {str(err)[:60]}"
                DurableCheckpointIO().save_checkpoint({"state_dict": {}, "global_step": 0}, path)
            for orphan in tmpdir.iterdir():
                left += orphan.stat().st_size
                orphan.unlink()
        print(f"{type(io).__name__}: {kills} kills, last.ckpt unreadable after {torn} {example}; "
              f"{left / 1e6:.0f} MB left in $TMPDIR")
        shutil.rmtree(run)
        shutil.rmtree(tmpdir)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 24)
