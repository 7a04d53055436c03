"""torch.cuda.is_available() at its plain cost where no NVIDIA driver is installed."""

from __future__ import annotations

import ctypes
import os

NVML_CHECK = "PYTORCH_NVML_BASED_CUDA_CHECK"


def plain_cuda_check() -> None:
    """Undo Lightning's NVML-based CUDA check on machines without NVIDIA's driver.

    Importing Lightning sets PYTORCH_NVML_BASED_CUDA_CHECK=1, so that its checks do not initialise CUDA
    before a fork. Without the driver, torch then retries loading NVML at every torch.cuda.is_available(),
    which Adam calls at every step: ~45 us a call (timeit, 2026-11-25), a tenth of a small MLP's step.
    Without the driver there is no CUDA to initialise, so the plain check is as fork-safe. Call it after
    importing Lightning.
    """
    if os.environ.get(NVML_CHECK) != "1":
        return
    try:
        ctypes.CDLL("libnvidia-ml.so.1")  # the library torch's NVML check loads
    except OSError:
        os.environ[NVML_CHECK] = "0"
