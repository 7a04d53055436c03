"""First-layer kernels as an image grid (paper Figure S5)."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.utils import make_grid

from representation_probe.errors import ConfigError
from representation_probe.reporting.figures import png, subplots


def first_conv(net: nn.Module) -> nn.Conv2d:
    conv = next((m for m in net.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None:
        raise ConfigError(f"{type(net).__name__} has no convolution whose kernels could be shown")
    return conv


def kernel_grid(net: nn.Module) -> torch.Tensor:
    """(3, H, W) grid of the first convolution's RGB kernels, each min-max scaled to [0, 1]."""
    weight = first_conv(net).weight.detach().float().cpu()[:, :3]
    low = weight.amin(dim=(1, 2, 3), keepdim=True)
    high = weight.amax(dim=(1, 2, 3), keepdim=True)
    scaled = (weight - low) / (high - low).clamp_min(1e-12)
    return make_grid(scaled, nrow=int(len(scaled) ** 0.5 + 0.999), padding=1, pad_value=1.0)


def kernel_panels(panels: dict[str, nn.Module]) -> bytes:
    """One titled grid per network, side by side (untrained vs natural- vs noise-trained), as PNG bytes."""
    fig, axes = subplots(1, len(panels), figsize=(3.2 * len(panels), 3.4), squeeze=False)
    for ax, (title, net) in zip(axes[0], panels.items()):
        ax.imshow(kernel_grid(net).permute(1, 2, 0).numpy(), interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    return png(fig)
