"""Inverse networks: a layer's output, seen as a grid of feature vectors, back to the image or to the
previous stage's output (inverse-tvm's batch-normalised convolutional decoder, sized for a CPU)."""

from __future__ import annotations

import math

import torch
from torch import nn

from representation_probe.errors import ConfigError

SUPPORTED = ("spatial maps (B, C, h, w)", "token sequences (B, prefix + g*g, D) of a square patch grid",
             "vectors (B, D)")


def to_grid(features: torch.Tensor, prefix_tokens: int = 0) -> torch.Tensor:
    """Any supported layer output as (B, C, h, w): maps as they are, token sequences without their class
    or register tokens on the patch grid, vectors as 1 x 1 maps."""
    if features.ndim == 4:
        return features
    if features.ndim == 3:
        tokens = features[:, prefix_tokens:]
        side = math.isqrt(tokens.shape[1])
        if side * side == tokens.shape[1]:
            return tokens.transpose(1, 2).reshape(len(tokens), -1, side, side)
    if features.ndim == 2:
        return features[:, :, None, None]
    raise ConfigError(f"no decoder for a layer output of shape {tuple(features.shape)} (after {prefix_tokens} "
                      f"prefix tokens); decoders take {'; '.join(SUPPORTED)}")


class Decoder(nn.Sequential):
    """(B, in_channels, h, w) -> (B, out_channels, H, W); sizes are (height, width).

    A 1x1 convolution to `width` channels, `depth` 3x3 convolutions at the input's resolution, then
    stride-2 transposed convolutions halving the width (not below `min_width`) while both sides fit the
    output, each with BatchNorm and ReLU; a resize where the sizes are not a power of two apart; a 3x3
    convolution to `out_channels`; a sigmoid for images in [0, 1], nothing for embeddings.
    """

    def __init__(self, in_channels: int, in_size: tuple[int, int], out_channels: int, out_size: tuple[int, int],
                 width: int = 64, min_width: int = 16, depth: int = 1, image: bool = True):
        if in_size[0] > out_size[0] or in_size[1] > out_size[1]:
            raise ConfigError(f"a decoder upsamples; it cannot map a {in_size[0]}x{in_size[1]} grid to "
                              f"{out_size[0]}x{out_size[1]}")
        layers: list[nn.Module] = [*_block(nn.Conv2d(in_channels, width, 1), width)]
        for _ in range(depth):
            layers += _block(nn.Conv2d(width, width, 3, padding=1), width)
        channels, (height, width_) = width, in_size
        while height * 2 <= out_size[0] and width_ * 2 <= out_size[1]:
            narrower = max(min_width, channels // 2)
            layers += _block(nn.ConvTranspose2d(channels, narrower, 3, stride=2, padding=1, output_padding=1),
                             narrower)
            channels, height, width_ = narrower, height * 2, width_ * 2
        if (height, width_) != tuple(out_size):
            layers.append(nn.Upsample(size=tuple(out_size), mode="bilinear", align_corners=False))
        layers.append(nn.Conv2d(channels, out_channels, 3, padding=1))
        if image:
            layers.append(nn.Sigmoid())
        super().__init__(*layers)


def _block(conv: nn.Module, channels: int) -> list[nn.Module]:
    return [conv, nn.BatchNorm2d(channels), nn.ReLU()]
