"""Model families: one registered class each, and all the rest of the code may ask of a model.

A family says how to build a network of a given name (and load its named weights), its paper
aliases, its ordered probe points and its default layer. Nothing outside a family asks "is this a
ResNet?". Adding a family is one module in `models/families/` plus one YAML in `conf/model/`.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import pkgutil
from typing import ClassVar

from torch import nn

from representation_probe.errors import ConfigError

FAMILIES: dict[str, Family] = {}


class Family:
    """Subclasses set `name` and implement `build`; `@register` makes them available as `model.family`."""

    name: ClassVar[str]
    tracer: ClassVar[str] = "fx"  # how layers are read: fx (torch.fx graphs), hooks, or auto (fx if it traces)
    finds_stages: ClassVar[bool] = False  # probe_points gives the main sequence of blocks; points.py picks the stages

    def build(self, name: str, weights: str, num_classes: int | None, image_size: int) -> nn.Module:
        """The network `name` with named `weights` ('none' or an ImageNet version; files are loaded by
        the factory afterwards), a head of `num_classes` (None: the family's default), for square
        inputs of `image_size` pixels. The family's own options (model.<option>) are keyword-only
        arguments after `*`, or **options to take any."""
        raise NotImplementedError

    def aliases(self, net: nn.Module) -> dict[str, str]:
        """Paper names -> graph nodes; they win over graph nodes of the same name."""
        return {}

    def probe_points(self, net: nn.Module) -> list[str]:
        """The coarse layers a study walks, input to output, named as a user types them."""
        return []

    def default_layer(self, net: nn.Module) -> str | None:
        """What `invert` reads without `layer=`: the last probe point unless the family says otherwise."""
        points = self.probe_points(net)
        return points[-1] if points else None

    def prefix_tokens(self, net: nn.Module) -> int | None:
        """Class/register tokens before the patch tokens in a token-sequence layer (0: none; None: read
        off the layer shapes)."""
        return 0

    def expected_normalize(self, net: nn.Module):
        """The normalisation the architecture's input pipeline applies ('imagenet', (mean, std)), whatever its
        weights, or None if unknown (`normalize="auto"`)."""
        return None

    def details(self, net: nn.Module) -> dict:
        """Architecture facts worth a column in summary.json (an MLP's widths)."""
        return {}

    def fixed_size(self, net: nn.Module) -> tuple[int, int] | None:
        """(height, width) if the network takes images of that size only (None: any size)."""
        return None

    def channels(self, net: nn.Module) -> int | None:
        """Colour channels the network reads, where the family knows (None: its first convolution's)."""
        return None

    def tracer_kwargs(self) -> dict | None:
        """What torchvision's FX tracer needs to know of the family (its leaf modules, functions not to trace)."""
        return None

    def options(self) -> list[str]:
        """The family's own keyword arguments of `build` (model.<option> in the config)."""
        params = inspect.signature(self.build).parameters.values()
        return [p.name for p in params if p.kind == p.KEYWORD_ONLY]

    def takes_any_option(self) -> bool:
        return any(p.kind == p.VAR_KEYWORD for p in inspect.signature(self.build).parameters.values())


def register(cls: type[Family]) -> type[Family]:
    """Class decorator: one instance of `cls` becomes the family `cls.name`."""
    FAMILIES[cls.name] = cls()
    return cls


@functools.cache
def _import_families() -> None:
    """The families register themselves when their modules are imported: import every one, once."""
    from representation_probe.models import families

    for module in pkgutil.iter_modules(families.__path__):
        importlib.import_module(f"{families.__name__}.{module.name}")


def get_family(name: str) -> Family:
    _import_families()
    if name not in FAMILIES:
        raise ConfigError(f"unknown model family '{name}'; allowed: {', '.join(sorted(FAMILIES))}")
    return FAMILIES[name]
