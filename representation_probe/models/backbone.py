"""One factory for every backbone, and the Backbone record the studies receive."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from representation_probe.errors import ConfigError
from representation_probe.models.family import Family, get_family
from representation_probe.models.normalization import check_normalize
from representation_probe.models.weights import head_classes, is_named, load_state, read_weights
from representation_probe.validation import positive_int


@dataclass(eq=False)
class Backbone:
    """A network plus what a probe needs to know about it; the family answers the rest."""

    name: str
    family: Family
    net: nn.Module
    image_size: int
    normalize: str  # 'none' (raw [0, 1] pixels, as in the paper) or 'imagenet'

    @property
    def aliases(self) -> dict[str, str]:
        return self.family.aliases(self.net)

    @property
    def probe_points(self) -> dict[str, float]:
        """Probe point -> relative depth: after stage i of n, (i + 1) / n (0 is the input itself)."""
        names = self.family.probe_points(self.net)
        return {name: (i + 1) / len(names) for i, name in enumerate(names)}

    @property
    def default_layer(self) -> str | None:
        return self.family.default_layer(self.net)

    @property
    def prefix_tokens(self) -> int:
        return self.family.prefix_tokens(self.net)

    @property
    def details(self) -> dict:
        return self.family.details(self.net)


def create_model(
    family: str,
    name: str,
    weights: str = "none",
    normalize: str = "none",
    image_size: int = 224,
    init_seed: int = 0,
    num_classes: int | None = None,
    trainable: bool = False,
    **options,
) -> Backbone:
    """Build a backbone, frozen for probing unless `trainable`.

    Args:
        family: a registered family: resnet, vit, timm, mlp (models/families/).
        name: the model within its family (resnet50, vit_b_16, any timm name, a label for an MLP).
        weights: 'none' (random init from init_seed), 'imagenet' or a version such as IMAGENET1K_V1, or a
            path to a state_dict or to a Lightning checkpoint of ours.
        normalize: input normalisation applied inside the forward map: 'none' or 'imagenet'.
        image_size: side of the square input in pixels.
        init_seed: seed of the random initialisation, so untrained models are reproducible.
        num_classes: size of the classifier head; None takes it from the weights file, else the family's.
        trainable: leave the weights trainable (training) instead of frozen (probing).
        options: the family's own (an MLP's widths, a timm model's depth, ...).
    """
    kind = get_family(family)
    check_normalize(normalize)
    positive_int("model.image_size", image_size)
    _check_options(kind, options)
    weights = str(weights)
    state = None if is_named(weights) else read_weights(weights)
    if num_classes is None:
        num_classes = head_classes(state)
    torch.manual_seed(init_seed)
    net = kind.build(name, "none" if state is not None else weights, num_classes, image_size, **options)
    if state is not None:
        load_state(net, state, weights, name)
    return Backbone(name, kind, net if trainable else freeze(net), image_size, normalize)


def _check_options(kind: Family, options: dict) -> None:
    unknown = [key for key in options if key not in kind.options()]
    if unknown and not kind.takes_any_option():
        allowed = ", ".join(f"model.{key}" for key in kind.options()) or "none"
        raise ConfigError(f"model.{unknown[0]} is not an option of the {kind.name} family (its options: {allowed})")


def freeze(net: nn.Module) -> nn.Module:
    """eval(), no weight gradients, and no in-place ops that would overwrite read activations."""
    for module in net.modules():
        if getattr(module, "inplace", False):
            module.inplace = False
    return net.eval().requires_grad_(False)
