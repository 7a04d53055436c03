"""Layer names: probe points, paper aliases and every tensor-valued FX graph node, with their shapes."""

from __future__ import annotations

import difflib

import torch

from representation_probe.errors import ConfigError
from representation_probe.models.backbone import Backbone


def resolve_layers(backbone: Backbone, layers: list[str]) -> dict[str, str]:
    """Each requested name -> its graph node (a paper alias or probe point, or any tensor-valued node);
    an unknown name fails with the probe points and the closest valid names."""
    aliases = backbone.aliases
    known = {name: aliases.get(name, name) for name in [*backbone.probe_points, *aliases]}
    unknown = [layer for layer in dict.fromkeys(layers) if layer not in known]
    if unknown:  # anything else must be a tensor-valued node: one forward tells
        valid = layer_shapes(backbone)
        for layer in unknown:
            if layer not in valid:
                raise ConfigError(_unknown_layer(backbone, layer, list(valid)))
    return {layer: known.get(layer, layer) for layer in dict.fromkeys(layers)}


def _unknown_layer(backbone: Backbone, layer: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(layer, valid, n=3, cutoff=0.6)
    points = ", ".join(backbone.probe_points) or "none"
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    return (f"unknown layer '{layer}' for {backbone.name}; {hint}probe points: {points} "
            f"(`layers model=...` lists all {len(valid)} layers)")


def layer_shapes(backbone: Backbone) -> dict[str, tuple]:
    """Every valid layer -> its output shape for one image of the model's size: the probe points first,
    then the other aliases, then every FX node and container module whose output is a tensor."""
    create, names = backbone.family.graph_functions()
    nodes = names(backbone.net)[1][1:]  # [0] is the input placeholder
    extractor = create(backbone.net, return_nodes={node: node for node in nodes})
    size = backbone.image_size
    with torch.no_grad():
        outputs = extractor(torch.zeros(1, 3, size, size))
    containers = [name for name, mod in backbone.net.named_modules() if name and any(mod.children())]
    aliases = backbone.aliases

    def output(name: str):  # a container module's output is its last node
        node = aliases.get(name, name)
        return outputs[node] if node in outputs else outputs[[n for n in nodes if n.startswith(node + ".")][-1]]

    names_in_order = dict.fromkeys([*backbone.probe_points, *aliases, *nodes, *containers])
    return {name: tuple(value.shape) for name in names_in_order
            if isinstance(value := output(name), torch.Tensor)}
