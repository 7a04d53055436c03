"""What each sample of an inversion batch inverts, and the scale its loss is divided by for the optimiser."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Sample:
    """One inversion in a batch: which layer, which target image, which seed."""

    layer: str
    image: str
    seed: int


def target_scales(targets: dict[str, torch.Tensor], groups: dict[str, torch.Tensor], count: int, loss: str,
                  scaled: bool) -> tuple[torch.Tensor, list[tuple[float, float]]]:
    """Per sample: the norm of its target embedding its loss is divided by (L1, or squared L2 for loss l2; 1
    where not `scaled`, or where the target is all 0), and the target's (standard deviation, largest absolute
    value), for the doubt checks. `targets`: layer -> its samples' target embeddings; `groups`: layer -> their
    indices in the batch."""
    scale = torch.ones(count, device=next(iter(targets.values())).device)
    spread = [(0.0, 0.0)] * count
    for layer, idx in groups.items():
        target = targets[layer].flatten(1).float()
        norm = target.abs().sum(1) if loss == "l1" else target.pow(2).sum(1)
        scale[idx] = torch.where(torch.isfinite(norm) & (norm > 0), norm, torch.ones_like(norm))
        for i, std, largest in zip(idx.tolist(), target.std(1).tolist(), target.abs().amax(1).tolist()):
            spread[i] = (std, largest)
    return (scale if scaled else torch.ones_like(scale)), spread
