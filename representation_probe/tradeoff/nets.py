"""Rathjens & Wiskott's encoder / decoder / classifier families (wiskott-lab/classification-reconstruction-
encoder), with every size derived from the input so that 8x8 digits work as well as 28x28 MNIST.

Fully connected: the original's hidden widths for 784 inputs (616; 716, 684, 616) are scaled by
inputs / 784, so MNIST gets exactly the original nets. Convolutional: max-pools round up (ceil_mode), and
the decoder's stride-2 transposed convolutions are told the encoder's sizes, so 28 -> 14 -> 7 -> 4 (the
original's 16x4x4 latent; it pads its second pool instead, 14 -> 8) and back, 8 -> 4 -> 2 -> 1 and
32 -> 16 -> 8 -> 4 all invert exactly. Every block is conv -> dropout -> BN -> pool -> ReLU (the
original's large classifier head pools before its BN).
"""

from __future__ import annotations

import math
from functools import partial

import torch
from torch import nn

from representation_probe.config.checks import positive_int
from representation_probe.errors import ConfigError

MNIST_INPUTS = 784
MAX_FC_WEIGHTS = 200_000_000  # 800 MB of float32
FC_HIDDEN = {"small": (), "medium": (616,), "large": (716, 684, 616)}  # encoder widths for 784 inputs
FC_HEAD = {"small": (), "medium": (12,), "large": (64,)}  # classifier hidden widths


class TradeoffNet(nn.Module):
    """E, D and C around one latent z = E(x); `latent` is the size knob (FC: len(z); CNN: channels of z)."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, classifier: nn.Module, latent: int,
                 latent_size: int):
        """`latent_size`: the values in z per sample."""
        super().__init__()
        self.encoder, self.decoder, self.classifier = encoder, decoder, classifier
        self.latent, self.latent_size = latent, latent_size


def _layers(widths: list[int], last: nn.Module | None) -> list[nn.Module]:
    """Linear layers through `widths` with ReLU between them and `last` (or nothing) after the last."""
    layers: list[nn.Module] = []
    for fan_in, fan_out in zip(widths, widths[1:]):
        layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
    layers[-1:] = [last] if last is not None else []
    return layers


def fc_net(size: str, input_shape: tuple[int, ...], num_classes: int, latent: int = 4,
           z_activation: str = "none") -> TradeoffNet:
    """input -> hidden -> z, ReLU after every hidden layer; z itself linear (`none`, the default) or, as the
    original, through a ReLU too (`relu`), whose units die at small latents: on digits at d = 2 and 4, 5 of 12
    w = 1 runs lost units and their accuracy spread was 0.29-0.30 (sd over seeds) against 0.02 with z linear
    (experiments/tradeoff_digits). The mirrored decoder ends in tanh; the classifier head is d -> 10,
    d -> 12 -> 10 or d -> 64 -> 10 (small/medium/large)."""
    if z_activation not in ("relu", "none"):
        raise ConfigError(f"net.z_activation must be relu (the original's) or none, got {z_activation!r}")
    inputs = math.prod(input_shape)
    hidden = [max(1, round(width * inputs / MNIST_INPUTS)) for width in FC_HIDDEN[size]]
    widths = [inputs, *hidden, latent]
    weights = 2 * sum(a * b for a, b in zip(widths, widths[1:]))  # encoder and decoder
    if weights > MAX_FC_WEIGHTS:  # e.g. 224 px noise: the hidden widths grow with the input
        shape = "x".join(map(str, input_shape))
        raise ConfigError(f"tradeoff_fc_{size} on {shape} inputs would have {weights:,} weights (limit "
                          f"{MAX_FC_WEIGHTS:,}); use a smaller dataset.image_size or a CNN")
    encoder = nn.Sequential(nn.Flatten(), *_layers(widths, nn.ReLU() if z_activation == "relu" else None))
    decoder = nn.Sequential(*_layers(widths[::-1], nn.Tanh()), nn.Unflatten(1, input_shape))
    classifier = nn.Sequential(*_layers([latent, *FC_HEAD[size], num_classes], None))
    return TradeoffNet(encoder, decoder, classifier, latent, latent)


def conv_block(fan_in: int, fan_out: int, kernel: int, pool: bool, dropout: float) -> nn.Sequential:
    """conv -> dropout -> BN -> [max-pool 2, rounding up] -> ReLU, as the original's encoders."""
    pooling = [nn.MaxPool2d(2, ceil_mode=True)] if pool else []
    return nn.Sequential(nn.Conv2d(fan_in, fan_out, kernel, padding=kernel // 2), nn.Dropout2d(dropout),
                         nn.BatchNorm2d(fan_out), *pooling, nn.ReLU())


class ConvDecoder(nn.Module):
    """3x3 transposed convolutions (ReLU between, tanh last) that land on the given spatial sizes."""

    def __init__(self, channels: list[int], strides: list[int], sizes: list[int]):
        super().__init__()
        self.layers = nn.ModuleList(nn.ConvTranspose2d(a, b, 3, stride=s, padding=1)
                                    for a, b, s in zip(channels, channels[1:], strides))
        self.sizes = sizes

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        for i, (layer, size) in enumerate(zip(self.layers, self.sizes)):
            z = layer(z, output_size=[size, size])
            z = torch.tanh(z) if i == len(self.layers) - 1 else torch.relu(z)
        return z


def _pooled(size: int, times: int) -> list[int]:
    """The spatial sizes through `times` ceil-mode 2x pools: [size, ceil(size/2), ...]."""
    sizes = [size]
    for _ in range(times):
        sizes.append(math.ceil(sizes[-1] / 2))
    return sizes


def _square(input_shape: tuple[int, ...]) -> tuple[int, int]:
    if len(input_shape) != 3 or input_shape[1] != input_shape[2]:
        raise ConfigError(f"the convolutional trade-off nets take square images (C, H, H), got {input_shape}")
    return input_shape[0], input_shape[1]


def cnn_small(input_shape: tuple[int, ...], num_classes: int, latent: int = 16, dropout: float = 0.0) -> TradeoffNet:
    """3 x (conv3 16 + BN + pool + ReLU), the last with `latent` channels (z = 16x4x4 on 28x28);
    linear classifier on the flattened z; three stride-2 transposed convolutions back."""
    channels, side = _square(input_shape)
    sizes = _pooled(side, 3)
    encoder = nn.Sequential(conv_block(channels, 16, 3, True, dropout), conv_block(16, 16, 3, True, dropout),
                            conv_block(16, latent, 3, True, dropout))
    decoder = ConvDecoder([latent, 16, 16, channels], [2, 2, 2], sizes[-2::-1])
    classifier = nn.Sequential(nn.Flatten(), nn.Linear(latent * sizes[-1] ** 2, num_classes))
    return TradeoffNet(encoder, decoder, classifier, latent, latent * sizes[-1] ** 2)


def cnn_large(input_shape: tuple[int, ...], num_classes: int, latent: int = 128, dropout: float = 0.2) -> TradeoffNet:
    """The original's CIFAR-10 net: conv 7/7/5/5/3 (64, 64, 128, 128, `latent` channels; the last three
    pooled; z = 128x4x4 on 32x32); a conv head (3x3 256, 1x1 256 + pool, linear); five transposed
    convolutions back (three stride 2, two stride 1)."""
    channels, side = _square(input_shape)
    sizes = _pooled(side, 3)
    encoder = nn.Sequential(conv_block(channels, 64, 7, False, dropout), conv_block(64, 64, 7, False, dropout),
                            conv_block(64, 128, 5, True, dropout), conv_block(128, 128, 5, True, dropout),
                            conv_block(128, latent, 3, True, dropout))
    decoder = ConvDecoder([latent, 128, 128, 64, 64, channels], [2, 2, 2, 1, 1], [*sizes[-2::-1], side, side])
    head_side = math.ceil(sizes[-1] / 2)
    classifier = nn.Sequential(conv_block(latent, 256, 3, False, dropout), conv_block(256, 256, 1, True, dropout),
                               nn.Flatten(), nn.Linear(256 * head_side**2, num_classes))
    return TradeoffNet(encoder, decoder, classifier, latent, latent * sizes[-1] ** 2)


ARCHITECTURES = {
    "tradeoff_fc_small": partial(fc_net, "small"),
    "tradeoff_fc_medium": partial(fc_net, "medium"),
    "tradeoff_fc_large": partial(fc_net, "large"),
    "tradeoff_cnn_small": cnn_small,
    "tradeoff_cnn_large": cnn_large,
}
OPTIONS = {"tradeoff_cnn_small": ("dropout",), "tradeoff_cnn_large": ("dropout",),
           **{f"tradeoff_fc_{size}": ("z_activation",) for size in FC_HIDDEN}}


def build_net(name: str, input_shape: tuple[int, ...], num_classes: int, latent: int | None = None,
              **options) -> TradeoffNet:
    """The architecture `name` (conf/net/<name>.yaml) for inputs of `input_shape` (C, H, W).

    Args:
        name: one of ARCHITECTURES.
        input_shape: (C, H, W) of the data.
        num_classes: the classifier's outputs.
        latent: FC: the width of z; CNN: its channels. None: the original's (4; 16; 128).
        options: the architecture's own (the CNNs' dropout); None: its default.
    """
    if name not in ARCHITECTURES:
        raise ConfigError(f"unknown trade-off net '{name}'; allowed: {', '.join(ARCHITECTURES)}")
    options = {key: value for key, value in options.items() if value is not None}
    unknown = [key for key in options if key not in OPTIONS.get(name, ())]
    if unknown:
        allowed = ", ".join(f"net.{key}" for key in OPTIONS.get(name, ())) or "none"
        raise ConfigError(f"net.{unknown[0]} is not an option of {name} (its options: {allowed})")
    if latent is not None:
        options["latent"] = positive_int("tradeoff.latent", latent)
    return ARCHITECTURES[name](tuple(input_shape), num_classes, **options)
