"""Probe points of networks no family names them for (torchvision's other classifiers, Hugging Face models, a
module of one's own), by the rule the named families follow, so that relative depth means the same everywhere:

    the outputs of the network's stages, in forward order, never its classifier: of its main sequence of blocks,
    those whose output is a map or a token sequence, and where the resolution changes along the sequence, the
    last at each resolution (a stage of blocks rather than a lone layer: a downsampling layer or a head
    convolution is never one). Relative depth is (i + 1) / n.

ResNets keep the paper's conv1..conv5 (the stem and four stages, one per resolution), ViTs every block
(isotropic: one resolution), timm models their feature_info (one output per stride), MLPs their Linear layers.
"""

from __future__ import annotations

import itertools

from torch import nn

from representation_probe.models import outputs

MEASURE = 64  # the shorter side of the forward that tells the stages' resolutions apart


def stages(candidates: list[str], returned: dict[str, object], net: nn.Module, batch: int) -> list[str]:
    """The probe points among `candidates` (the main sequence), from what each returned in one forward of
    `batch` images (`returned`: module -> its output's skeleton, in the order the calls ended)."""
    order = {name: i for i, name in enumerate(returned)}
    shapes = {}
    for name in candidates:
        value = returned.get(name)
        path = outputs.default_path(value, batch) if value is not None else None
        if path is not None:
            shapes[name] = tuple(outputs.pick(value, path).shape[1:])
    kept = sorted(shapes, key=order.get)  # forward order: definition order may differ
    maps = [name for name in kept if len(shapes[name]) in (2, 3)]  # (N, D) tokens or (C, H, W) maps
    kept = maps or kept  # vectors only (an MLP): every one
    groups = [list(group) for _, group in itertools.groupby(kept, key=lambda name: _resolution(shapes[name]))]
    if len(groups) == 1:
        return kept  # isotropic: every block
    return [([name for name in group if _holds_blocks(net.get_submodule(name))] or group)[-1] for group in groups]


def _resolution(shape: tuple) -> tuple:
    """What changes between stages: a map's spatial size, a token sequence's length."""
    return shape[1:] if len(shape) == 3 else shape[:1]


def _holds_blocks(module: nn.Module) -> bool:
    """A stage holds blocks (a part that has parts of its own); a lone layer or a conv-norm-activation does not."""
    return any(next(child.children(), None) is not None for child in module.children())
