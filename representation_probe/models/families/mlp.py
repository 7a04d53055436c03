"""The paper's fully connected family (section 4): flatten, then Linear layers with an optional activation."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence

from torch import nn

from representation_probe.config.checks import positive_int
from representation_probe.errors import ConfigError
from representation_probe.models.family import Family, register

ACTIVATIONS = {"none": None, "relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}


@register
class MLP(Family):
    """Probe points: the Linear layers fc1, fc2, ...; the default layer is the last module's output."""

    name = "mlp"

    def build(self, name: str, weights: str, num_classes: int | None, image_size: int, *,
              widths: Sequence[int] | None = None, width: int | None = None, depth: int | None = None,
              activation: str = "none") -> nn.Sequential:
        """Args beyond the family's: `widths` (output size of each Linear layer), or `width` x `depth`
        (defaults: the input size, square layers; 3 layers); `activation` after every layer."""
        if num_classes is not None:
            raise ConfigError("model=mlp has no classifier head: it is the paper's untrained probe of section 4 "
                              "(train a ResNet or timm model instead)")
        if weights != "none":
            raise ConfigError(f"model=mlp has no ImageNet weights ({weights}); use model.weights=none or a "
                              "state_dict path")
        return build_mlp(image_size, mlp_widths(widths, width, depth, 3 * image_size**2), activation)

    def probe_points(self, net: nn.Sequential) -> list[str]:
        return [name for name, module in net.named_children() if isinstance(module, nn.Linear)]

    def fixed_size(self, net: nn.Sequential) -> tuple[int, int]:
        side = math.isqrt(next(m for m in net.children() if isinstance(m, nn.Linear)).in_features // 3)
        return (side, side)  # fc1 reads the flattened 3 x side x side image

    def channels(self, net: nn.Sequential) -> int:
        return 3

    def default_layer(self, net: nn.Sequential) -> str:
        return list(net._modules)[-1]  # the MLP's output, after the last activation if any

    def details(self, net: nn.Sequential) -> dict:
        linears = [m for m in net.children() if isinstance(m, nn.Linear)]
        activations = [name for name, cls in ACTIVATIONS.items() if cls and any(isinstance(m, cls) for m in net)]
        return dict(widths=[m.out_features for m in linears], activation=(activations or ["none"])[0],
                    input_size=linears[0].in_features)


def mlp_widths(widths: Sequence[int] | None, width: int | None, depth: int | None, input_size: int) -> list[int]:
    """The hidden widths: `widths` as given, else `width` (default: the input size) repeated `depth` times."""
    if widths is not None:
        if width is not None or depth is not None:
            raise ConfigError(f"give model.widths (now {_show(widths)}) or model.width/model.depth "
                              f"(now {_null(width)}/{_null(depth)}), not both: set the other to null")
        if isinstance(widths, (str, bytes)) or not hasattr(widths, "__iter__"):
            raise ConfigError(f"model.widths must be a list of positive integers like [1000], got {widths!r}")
        widths = list(widths)
        if not widths:
            raise ConfigError("model.widths must hold at least one width, e.g. model.widths=[1000]")
        for value in widths:
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"every entry of model.widths must be a positive integer, got {value!r} "
                                  f"({_show(widths)})")
        return widths
    return [positive_int("model.width", input_size if width is None else width)] * positive_int(
        "model.depth", 3 if depth is None else depth)


def _null(value) -> str:
    return "null" if value is None else repr(value)


def _show(widths) -> str:
    return "[" + ",".join(map(str, widths)) + "]" if hasattr(widths, "__iter__") else repr(widths)


def build_mlp(image_size: int, widths: list[int], activation: str = "none") -> nn.Sequential:
    """flatten -> fc1 [-> act1] -> fc2 [-> act2] ...; every Linear has a bias and PyTorch's default init.

    The activation follows every layer, the last included, so the default embedding (the last module)
    is what the ReLU-width argument counts; `layer=fcN` reads the last pre-activation instead.
    Initialisation is nn.Linear's own (Kaiming-uniform weights, a=sqrt(5)), seeded by the caller.
    """
    if activation not in ACTIVATIONS:
        raise ConfigError(f"unknown model.activation '{activation}'; allowed: {', '.join(ACTIVATIONS)}")
    modules: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
    fan_in = 3 * image_size * image_size
    for i, width in enumerate(widths, start=1):
        modules[f"fc{i}"] = nn.Linear(fan_in, width)
        if ACTIVATIONS[activation] is not None:
            modules[f"{activation}{i}"] = ACTIVATIONS[activation]()
        fan_in = width
    return nn.Sequential(modules)
