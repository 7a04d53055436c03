"""Cached embeddings for decoder training (`decode.cache`): the grids of every decoded layer for every
training and validation image, computed once by the frozen backbone and kept in memory, so that training
reads (images, grids) and epochs after the first skip the backbone.

Valid when a training image is the same in every epoch (no random augmentation: the datamodule says so)
and the cache fits the memory bound: a quarter of the machine's memory for all of its processes together
(each DDP process holds the whole cache), or `decode.cache_limit_gb`.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import torch
from torch.utils.data import Dataset, TensorDataset

from representation_probe.decoders.module import DecoderModule
from representation_probe.errors import ConfigError
from representation_probe.models import cache_features

log = logging.getLogger(__name__)
SETTINGS = ("auto", True, False)
DTYPES = {"float16": torch.float16, "float32": torch.float32}
MEMORY_SHARE = 4  # the default bound: 1 / MEMORY_SHARE of the machine's memory
GB = 2**30


def storage(name: str) -> torch.dtype:
    """The torch dtype of decode.cache_dtype."""
    if name not in DTYPES:
        raise ConfigError(f"unknown decode.cache_dtype '{name}'; allowed: {', '.join(DTYPES)}")
    return DTYPES[name]


def use_cache(setting, datamodule, module: DecoderModule, images: int, processes: int, dtype: torch.dtype,
              limit_gb: float | None) -> bool:
    """Whether to train on cached embeddings of `images` images: never for decode.cache=false; for true,
    when valid, else one line (exit 2); for auto, when valid, else a log line saying why not."""
    if setting not in SETTINGS:
        raise ConfigError(f"decode.cache must be auto, true or false, got {setting!r}")
    if setting is False:
        return False
    why = _why_not(datamodule, module, images, processes, dtype, limit_gb)
    if why is None:
        return True
    if setting is True:
        raise ConfigError(f"decode.cache=true: the embeddings cannot be cached: {why}; set decode.cache=false")
    log.warning("decode.cache=auto: the backbone runs in every step, since %s", why)
    return False


def _why_not(datamodule, module: DecoderModule, images: int, processes: int, dtype: torch.dtype,
             limit_gb: float | None) -> str | None:
    if datamodule.augmented:
        return (f"{type(datamodule).__name__} augments its training images at random (a new view every epoch), "
                "so embeddings computed once are not what uncached training sees")
    need = bytes_per_image(module, dtype) * images * processes
    limit = limit_gb * GB if limit_gb is not None else memory() / MEMORY_SHARE
    if need > limit:
        bound = "decode.cache_limit_gb" if limit_gb is not None else \
            f"a quarter of this machine's {memory() / GB:.1f} GB"
        smaller = ", or half as much with decode.cache_dtype=float16" if dtype == torch.float32 else ""
        return (f"{images} images with their embeddings ({bytes_per_image(module, dtype) / 2**10:.0f} KB each in "
                f"{str(dtype).removeprefix('torch.')}, held by each of {processes} process(es)) need {need / GB:.2f} "
                f"GB{smaller}, more than the bound of {limit / GB:.2f} GB ({bound})")
    return None


def bytes_per_image(module: DecoderModule, dtype: torch.dtype) -> int:
    """One cached item: every layer's grid in `dtype`, the image in float32, an int64 label."""
    pixels = module.features.backbone.channels * math.prod(module.features.size)
    return sum(math.prod(shape) for shape in module.shapes.values()) * dtype.itemsize + pixels * 4 + 8


def memory() -> int:
    """Bytes of memory of this machine, or of this container if its cgroup (v2) sets a lower limit."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
    except OSError:
        return total
    return min(total, int(limit)) if limit.isdigit() else total


def embed(module: DecoderModule, dataset: Dataset, batch_size: int, workers: int, device: torch.device,
          dtype: torch.dtype) -> TensorDataset:
    """(image, grid of each layer, label) of every item of `dataset`, in its order (a batch DecoderModule
    reads without running the backbone)."""
    module.features.to(device)
    try:
        return cache_features(lambda images: list(module.grids(images).values()), dataset, batch_size, workers,
                              device, dtype, keep_images=True)
    except OverflowError as err:
        raise ConfigError(f"decode.cache: {err}; set decode.cache_dtype=float32 (or decode.cache=false)") from None
