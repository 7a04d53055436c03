"""The machine a run uses: will it fit (below), which device a trainer computes on, and torch's CUDA check at its
plain cost where no NVIDIA driver is installed.

Will it fit? The memory a forward and backward pass of `images` images takes, estimated before any work,
so a typo in an image size (224000 for 224) is one line with the estimate instead of hours of swapping or
an out-of-memory kill.

The estimate measures the outputs of every module of one small forward pass (forward hooks, no gradients)
and scales them by the pixels: exact for convolutional networks, whose activations grow with the image
area; a model that takes only its own size is measured at that size when it is small. Gradients need about
as much again as the activations they come from.
"""

from __future__ import annotations

import ctypes
import os

import torch
from torch import nn

from representation_probe.errors import ConfigError

PROBE_SIZE = 32  # pixels a side of the measuring pass
MEASURE_UP_TO = 256  # a model that takes only its own size is measured at it up to this size


def device_of(accelerator) -> str:
    """The device whose memory a trainer's `accelerator` setting uses: a GPU's, else the machine's."""
    return "cuda" if str(accelerator) in ("gpu", "cuda") else "cpu"


def available_bytes(device: torch.device | str = "cpu") -> int:
    """Free memory where the work runs: the GPU's, else the machine's available RAM (MemAvailable)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as meminfo:
            fields = dict(line.split(":", 1) for line in meminfo)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def activation_bytes(net: nn.Module, size: tuple[int, int], channels: int = 3) -> int | None:
    """Bytes of every module's output for one image of (height, width) pixels; None if unmeasurable."""
    height, width = size
    scale = min(1.0, PROBE_SIZE / min(height, width))
    small = (max(1, round(height * scale)), max(1, round(width * scale)))
    total = [0]

    def count(module, inputs, output):
        for tensor in output if isinstance(output, (tuple, list)) else (output,):
            if isinstance(tensor, torch.Tensor):
                total[0] += tensor.numel() * tensor.element_size()

    parameter = next(net.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    hooks = [m.register_forward_hook(count) for m in net.modules() if not list(m.children())]
    was_training = net.training
    net.eval()  # BatchNorm takes one image
    try:
        for measured in (small, size) if small != size and max(size) <= MEASURE_UP_TO else (small,):
            total[0] = 0
            try:
                with torch.no_grad():
                    net(torch.zeros(1, channels, *measured, device=device))
            except Exception:  # noqa: BLE001 - a model that takes only its own size: that one, if small
                continue
            return int(total[0] * (height * width) / (measured[0] * measured[1]))
        return None
    finally:
        net.train(was_training)
        for hook in hooks:
            hook.remove()


def check_fits(net: nn.Module, size: int | tuple[int, int], channels: int, images: int, what: str,
               device="cpu") -> None:
    """A ConfigError with the estimate if `images` images of `size` (a side or (height, width)) cannot be
    inverted or trained through `net` in the memory there is (`what` names the settings to change)."""
    height, width = (size, size) if isinstance(size, int) else size
    per_image = activation_bytes(net, (height, width), channels)
    if per_image is None:
        return
    needed = 2 * per_image * images + 4 * channels * height * width * images  # activations, gradients, input
    free = available_bytes(device)
    if needed > free:
        raise ConfigError(f"{what}: {images} image(s) of {height} x {width} px need about "
                          f"{needed / 2**30:.1f} GiB through this model (activations and their gradients, "
                          f"measured at {min(height, width, PROBE_SIZE)} px and scaled), and {free / 2**30:.1f} GiB "
                          "are available; use a smaller size or fewer images")


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
