"""Layer names: probe points, paper aliases, every graph node or module whose output holds a tensor of values per
image, each with the element of its output that is the layer (outputs.py), its shape and what it reads; and
layers chosen by index, relative depth or module.

Where torch.fx traces the network, a layer is a graph node (a module's layer: the node its forward returned,
as graph.py records it); else a module, read with forward hooks. One forward of a blank batch at the size the
layers are measured at tells the shapes and which names are layers; it is made once per backbone and size.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass

import torch
from torch import nn

from representation_probe.errors import ConfigError
from representation_probe.models import graph, outputs
from representation_probe.models.backbone import Backbone
from representation_probe.models.hooks import skeleton

BATCH = 2  # images of the measuring forward: a tensor whose first dimension is not this is not per image
SMALL = 32  # the shorter side names are resolved at: which names are layers does not depend on the size
NOT_LAYERS = ("placeholder", "output", "get_attr")  # graph nodes that are the input, the result, a parameter


@dataclass(frozen=True)
class Layer:
    """Where a layer's tensor is: the graph node (or module) whose value holds it, and the element of that
    value (`path`, empty when the value is the tensor); one image's output shape; what the name reads."""

    node: str
    path: outputs.Path
    shape: tuple
    output: str


def select_layers(backbone: Backbone, layers) -> list[str]:
    """Layer names for what a user names: a name or alias (str, `<layer>:<element>` for an element of a
    container output), a probe point by index (int, negative from the end), the probe point nearest a relative
    depth (float in (0, 1]), or a module of the network; one of these or a list of them. Names are checked
    when they are resolved."""
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


class LayerIndex:
    """Every layer of a backbone at one input size: name -> Layer for the names a listing shows (in order:
    the probe points, the aliases, the graph nodes or modules, then the modules a graph goes through), and
    `resolve` for any name, an element of a container output (`blocks.0:1`) included."""

    def __init__(self, backbone: Backbone, size: tuple[int, int]):
        self.backbone, self.size = backbone, size
        images = torch.zeros(BATCH, backbone.channels, *size)
        if backbone.traceable:
            ops, self.returned = backbone.fx_trace
            self.calls = {}
            nodes = [name for name, op in ops.items() if op not in NOT_LAYERS]
            try:
                values = graph.node_values(backbone.net, nodes, images, backbone.family.tracer_kwargs())
            except Exception as err:  # the network's own error for this input: the user's to fix
                raise ConfigError(f"{backbone.name} fails on a {(1, *images.shape[1:])} image ({type(err).__name__}: "
                                  f"{str(err).splitlines()[0] if str(err) else ''}); is image_size right?") from None
            self.values = {node: skeleton(values[node]) for node in nodes}
            self.modules = {module: graph.with_values(returned, self.values)
                            for module, returned in self.returned.items()}
            own = [*nodes, *(name for name, _ in backbone.net.named_modules() if name in self.returned)]
        else:
            (self.values, self.calls), self.returned = backbone.run_hooked(images), {}
            self.modules = self.values
            own = list(self.values)
        aliases = backbone.aliases
        self.layers: dict[str, Layer] = {}
        for name in dict.fromkeys([*backbone.probe_points, *aliases, *own]):
            try:
                self.layers[name] = self.resolve(name)
            except ConfigError:
                pass  # a name whose output holds no tensor per image is not a layer

    def resolve(self, name: str) -> Layer:
        """The Layer a name reads (`<layer>:<element>`: an element of a container output); a ConfigError naming
        the closest for an unknown name, and saying what it is for a name that is no layer."""
        if name in self.layers:
            return self.layers[name]
        base, path = outputs.split(name)
        target = self.backbone.aliases.get(base, base)
        value = self.modules.get(target, self.values.get(target, _UNKNOWN))
        if value is _UNKNOWN:
            raise ConfigError(_unknown_layer(self.backbone, name, list(self.layers)))
        if not path and not isinstance(value, torch.Tensor):
            path = outputs.default_path(value, BATCH)
            if path is None:
                raise ConfigError(f"layer '{name}' of {self.backbone.name} returns a {outputs.kind(value)} that holds "
                                  "no tensor of floating-point values per image (`rp.layers(model)` lists the layers)")
        chosen = outputs.pick(value, path, f"layer '{base}'")
        if not outputs.is_layer(chosen, BATCH):
            raise ConfigError(f"layer '{name}' of {self.backbone.name} is {_what(chosen)}, not floating-point values "
                              "per image; `rp.layers(model)` lists the layers")
        node, rest = self._node(target, path)
        return Layer(node, rest, (1, *chosen.shape[1:]), outputs.describe(value, path))

    def _node(self, target: str, path: outputs.Path) -> tuple[str, outputs.Path]:
        """The graph node whose value holds the element `path` of `target`'s output, and the rest of the path
        inside that value: a module the graph went through returned values of its nodes."""
        if target not in self.returned:
            return target, path
        structure = self.returned[target]
        for i, step in enumerate(path):
            if isinstance(structure, graph.Node):
                return structure, path[i:]
            structure = outputs.pick(structure, (step,))
        if not isinstance(structure, graph.Node):
            raise ConfigError(f"layer '{outputs.joined(target, path)}' is a constant of {self.backbone.name}'s "
                              "graph, not a value the images make")
        return structure, ()


_UNKNOWN = object()


def _what(value) -> str:
    if not isinstance(value, torch.Tensor):
        return f"a {outputs.kind(value)}"
    if value.ndim < 2 or value.shape[0] != BATCH:
        return f"a tensor of shape {tuple(value.shape)} for {BATCH} images (its first dimension is not theirs)"
    return f"a tensor of {value.dtype}"


def layer_index(backbone: Backbone, size: tuple[int, int] | None = None) -> LayerIndex:
    """The backbone's layers at `size` (None: its own input size), measured once per size."""
    size = tuple(size or backbone.input_size)
    indexes = backbone.__dict__.setdefault("_layer_indexes", {})
    if size not in indexes:
        with backbone.frozen():
            indexes[size] = LayerIndex(backbone, size)
    return indexes[size]


def resolve_layers(backbone: Backbone, layers: list[str], size: tuple[int, int] | None = None) -> dict[str, Layer]:
    """Each requested name -> its Layer (its shape: at a small size); an unknown name fails with the probe points
    and the closest names."""
    if not layers:
        raise ConfigError(f"no layer given for {backbone.name}: name one or more ({_points(backbone)})")
    index = small_index(backbone, size)
    return {layer: index.resolve(layer) for layer in dict.fromkeys(layers)}


def small_index(backbone: Backbone, size: tuple[int, int] | None = None) -> LayerIndex:
    """The layers measured at a small size of the same aspect (a 22400 px request is not run to name its
    layers); at `size` itself for a network that takes no other."""
    height, width = size or backbone.input_size
    scale = min(1.0, SMALL / min(height, width))
    small = (max(1, round(height * scale)), max(1, round(width * scale)))
    if small == (height, width):
        return layer_index(backbone, small)
    try:
        return layer_index(backbone, small)
    except ConfigError:
        return layer_index(backbone, (height, width))


def _points(backbone: Backbone) -> str:
    return f"probe points: {', '.join(backbone.probe_points) or 'none'}"


def _unknown_layer(backbone: Backbone, layer: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(layer, valid, n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    return (f"unknown layer '{layer}' for {backbone.name}; {hint}{_points(backbone)} "
            f"(`layers model=...` or rp.layers(model) lists all {len(valid)} layers)")


def layer_shapes(backbone: Backbone) -> dict[str, tuple]:
    """Every layer a listing shows -> one image's output shape at the backbone's input size: the probe points
    first, then the other aliases, then every graph node and module whose output holds a tensor per image."""
    return {name: layer.shape for name, layer in layer_index(backbone).layers.items()}


def layer_table(backbone: Backbone):
    """A DataFrame, one row per layer (graph node or module), probe points first: layer, alias (its paper
    name, if any), output (what the layer reads of the output: `tensor`, `[0] of tuple(2)`), shape (one
    image's), relative_depth (probe points) and probe_point."""
    import pandas as pd

    layers, aliases, points = layer_index(backbone).layers, backbone.aliases, backbone.probe_points
    alias_of = {node: alias for alias, node in aliases.items()}
    rows = []
    for node in dict.fromkeys(aliases.get(name, name) for name in layers):  # probe points first
        alias = alias_of.get(node)
        point = alias if alias in points else node if node in points and node not in aliases else None
        layer = layers.get(node) or layers[alias]
        rows.append(dict(layer=node, alias=alias, output=layer.output, shape=layer.shape,
                         relative_depth=points.get(point), probe_point=point is not None))
    return pd.DataFrame(rows, columns=["layer", "alias", "output", "shape", "relative_depth", "probe_point"])


def prefix_tokens(backbone: Backbone) -> int:
    """Class/register tokens before the patch tokens of a token-sequence layer; a family that does not
    know reads it off the first probe point: N tokens of which the largest square number are patches."""
    known = backbone.family.prefix_tokens(backbone.net)
    if known is not None:
        return known
    layers = small_index(backbone).layers
    shape = next((layers[p].shape for p in backbone.probe_points if p in layers), ())
    extra = shape[1] - math.isqrt(shape[1]) ** 2 if len(shape) == 3 else 0
    return extra if len(shape) == 3 and extra < shape[1] // 2 else 0
