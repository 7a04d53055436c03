"""The paper's fully connected family (section 4): flatten, then Linear layers with an optional activation."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import nn

from representation_probe.errors import ConfigError

ACTIVATIONS = {"none": None, "relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}


def mlp_widths(widths: Sequence[int] | None, width: int | None, depth: int | None, input_size: int) -> list[int]:
    """The hidden widths: `widths` as given, else `width` (default: the input size) repeated `depth` times.

    Args:
        widths: output size of each Linear layer, first to last, or None.
        width: one width for every layer (None: the input size, i.e. square layers); only without widths.
        depth: number of Linear layers (None: 3, the paper's three-layer MLP); only without widths.
        input_size: number of input values, 3 * image_size**2.
    """
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
            _require_positive_int("every entry of model.widths", value, widths)
        return [int(value) for value in widths]
    depth = 3 if depth is None else depth
    width = input_size if width is None else width
    _require_positive_int("model.depth", depth)
    _require_positive_int("model.width", width)
    return [int(width)] * int(depth)


def _require_positive_int(what: str, value, whole=None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        shown = f" ({_show(whole)})" if whole is not None else ""
        raise ConfigError(f"{what} must be a positive integer, got {value!r}{shown}")


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


def last_layer(net: nn.Sequential) -> str:
    """Name of the module whose output is the MLP's output: the default embedding to invert."""
    return list(net._modules)[-1]
