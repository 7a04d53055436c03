"""Layer names: probe points, paper aliases and every tensor-valued FX graph node (or, for networks FX cannot
trace, every named module), with their shapes; and layers chosen by index, relative depth or module."""

from __future__ import annotations

import difflib
import math

import torch
from torch import nn

from representation_probe.errors import ConfigError
from representation_probe.models.backbone import Backbone


def select_layers(backbone: Backbone, layers) -> list[str]:
    """Layer names for what a user names: a name or alias (str), a probe point by index (int, negative
    from the end), the probe point nearest a relative depth (float in (0, 1]), or a module of the network;
    one of these or a list of them. Names are checked later, when a forward map is built."""
    chosen = layers if isinstance(layers, (list, tuple)) else [layers]
    return [_name(backbone, layer) for layer in chosen]


def _name(backbone: Backbone, layer) -> str:
    points = list(backbone.probe_points.items())
    if isinstance(layer, str):
        return layer
    if isinstance(layer, nn.Module):
        found = next((name for name, module in backbone.net.named_modules() if module is layer and name), None)
        if found is not None:
            return found
        raise ConfigError(f"the module {type(layer).__name__} given as a layer is not part of {backbone.name}")
    if isinstance(layer, bool) or not isinstance(layer, (int, float)):
        raise ConfigError(f"a layer is a name, a probe-point index, a relative depth or a module; got {layer!r}")
    if not points:
        raise ConfigError(f"{backbone.name} has no probe points to choose {layer!r} from: name the layer")
    if isinstance(layer, int):
        if not -len(points) <= layer < len(points):
            raise ConfigError(f"probe point {layer} does not exist: {backbone.name} has {len(points)} "
                              f"({', '.join(name for name, _ in points)})")
        return points[layer][0]
    if not 0 < layer <= 1:
        raise ConfigError(f"a relative depth is in (0, 1] (1: the last probe point), got {layer}")
    return min(points, key=lambda point: abs(point[1] - layer))[0]


def resolve_layers(backbone: Backbone, layers: list[str]) -> dict[str, str]:
    """Each requested name -> its graph node or module (a paper alias or probe point, or any tensor-valued
    node); an unknown name fails with the probe points and the closest valid names."""
    aliases = backbone.aliases
    known = {name: aliases.get(name, name) for name in [*backbone.probe_points, *aliases]}
    unknown = [layer for layer in dict.fromkeys(layers) if layer not in known]
    if not layers:
        raise ConfigError(f"no layer given for {backbone.name}: name one or more ({_points(backbone)})")
    if unknown:  # anything else must be a tensor-valued node: one forward tells
        valid = layer_shapes(backbone)
        for layer in unknown:
            if layer not in valid:
                raise ConfigError(_unknown_layer(backbone, layer, list(valid)))
    return {layer: known.get(layer, layer) for layer in dict.fromkeys(layers)}


def _points(backbone: Backbone) -> str:
    return f"probe points: {', '.join(backbone.probe_points) or 'none'}"


def _unknown_layer(backbone: Backbone, layer: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(layer, valid, n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    return (f"unknown layer '{layer}' for {backbone.name}; {hint}{_points(backbone)} "
            f"(`layers model=...` or rp.layers(model) lists all {len(valid)} layers)")


def layer_shapes(backbone: Backbone) -> dict[str, tuple]:
    """Every valid layer -> its output shape for one image of the model's size: the probe points first,
    then the other aliases, then every FX node and container module whose output is a tensor (or, for a
    network FX cannot trace, every module whose output holds one, in the order their calls end)."""
    if "_shapes" not in backbone.__dict__:  # one forward per backbone
        with backbone.frozen():
            backbone.__dict__["_shapes"] = _fx_shapes(backbone) if backbone.traceable else _hook_shapes(backbone)
    return backbone.__dict__["_shapes"]


def _hook_shapes(backbone: Backbone) -> dict[str, tuple]:
    shapes, _ = backbone.hook_record
    aliases = backbone.aliases
    names = dict.fromkeys([*backbone.probe_points, *aliases, *shapes])
    return {name: shapes[aliases.get(name, name)] for name in names if aliases.get(name, name) in shapes}


def _fx_shapes(backbone: Backbone) -> dict[str, tuple]:
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
        inside = [n for n in nodes if n.startswith(node + ".")]
        return outputs[node] if node in outputs else outputs[inside[-1]] if inside else None

    names_in_order = dict.fromkeys([*backbone.probe_points, *aliases, *nodes, *containers])
    return {name: tuple(value.shape) for name in names_in_order
            if isinstance(value := output(name), torch.Tensor)}


def layer_table(backbone: Backbone):
    """A DataFrame, one row per layer (graph node or module), probe points first: layer, alias (its
    paper name, if any), shape, relative_depth (probe points) and probe_point."""
    import pandas as pd

    shapes, aliases, points = layer_shapes(backbone), backbone.aliases, backbone.probe_points
    alias_of = {node: alias for alias, node in aliases.items()}
    rows = []
    for node in dict.fromkeys(aliases.get(name, name) for name in shapes):  # probe points first
        alias = alias_of.get(node)
        point = alias if alias in points else node if node in points and node not in aliases else None
        rows.append(dict(layer=node, alias=alias, shape=shapes.get(node) or shapes[alias],
                         relative_depth=points.get(point), probe_point=point is not None))
    return pd.DataFrame(rows, columns=["layer", "alias", "shape", "relative_depth", "probe_point"])


def prefix_tokens(backbone: Backbone) -> int:
    """Class/register tokens before the patch tokens of a token-sequence layer; a family that does not
    know reads it off the first probe point: N tokens of which the largest square number are patches."""
    known = backbone.family.prefix_tokens(backbone.net)
    if known is not None:
        return known
    if "_prefix" not in backbone.__dict__:
        shapes = layer_shapes(backbone)
        shape = next((shapes[p] for p in backbone.probe_points if p in shapes), ())
        extra = shape[1] - math.isqrt(shape[1]) ** 2 if len(shape) == 3 else 0
        backbone.__dict__["_prefix"] = extra if len(shape) == 3 and extra < shape[1] // 2 else 0
    return backbone.__dict__["_prefix"]
