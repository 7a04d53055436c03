"""Timing helpers shared by the benches: wall time with the other processes' CPU use, best-of-n, the
machine's matmul peak, FLOPs of a function, and the composed `invert` config run in process."""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import open_dict
from torch.utils.flop_counter import FlopCounterMode

from representation_probe.cli import schemas  # noqa: F401 - registers the structured configs
from representation_probe.config.presets import CONF


def compose_invert(overrides: list[str], out_dir: str):
    """What `python -m representation_probe invert <overrides>` composes: (task config, full config)."""
    with initialize_config_dir(str(CONF), version_base="1.3", job_name="bench"):
        cfg = compose("invert", [*overrides, f"hydra.run.dir={out_dir}"], return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = out_dir  # Hydra's run_job sets this; compose() does not
        task_cfg = cfg.copy()
        del task_cfg["hydra"]  # as Hydra does before calling the task
    return task_cfg, cfg


def busy_seconds() -> float | None:
    """CPU-seconds all processes have used (Linux), to see whether something else ran during a timing."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return None
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # minus idle and iowait


def timed(fn):
    """(fn(), wall seconds, cores used by other processes meanwhile: ~0 on a quiet machine)."""
    busy, own, start = busy_seconds(), sum(os.times()[:2]), time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - start
    others = None if busy is None else (busy_seconds() - busy - (sum(os.times()[:2]) - own)) / seconds
    return out, seconds, others


def best_time(fn, repeats: int) -> float:
    """Best of `repeats` after a warm-up: for the parts of a run, where contention only ever adds time."""
    fn()  # warm-up: allocator, oneDNN primitive caches
    return min(timed(fn)[1] for _ in range(repeats))


def flops(fn) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops()


def cpu_matmul_peaks(dtype: torch.dtype = torch.float32, n: int = 2048) -> dict[str, float]:
    """GEMM rate (GFLOP/s) of the machine's two libraries in `dtype`: MKL (torch.mm) and oneDNN (a 1x1
    convolution, channels_last: a pure GEMM). Which is faster depends on the CPU: MKL runs its AVX-512
    kernels on Intel only, so on AMD Zen 5 oneDNN's float32 GEMM is twice as fast; the peak is the faster."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    x = torch.randn(8, n, 32, 32, dtype=dtype).contiguous(memory_format=torch.channels_last)  # (8192x2048)@(2048x512)
    conv = torch.nn.Conv2d(n, n // 4, 1, bias=False, dtype=dtype).to(memory_format=torch.channels_last)
    conv.requires_grad_(False)
    conv_flop = 2 * x.numel() * (n // 4)
    return {f"torch.mm {n}x{n} (MKL)": 2 * n**3 / best_time(lambda: torch.mm(a, b), 20) / 1e9,
            f"1x1 convolution 8192x{n}x{n // 4} (oneDNN)": conv_flop / best_time(lambda: conv(x), 20) / 1e9}
