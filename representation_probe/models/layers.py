"""Layer names and feature extraction: probe points, paper aliases and every tensor-valued FX graph node."""

from __future__ import annotations

import difflib

import torch
from torch import nn
from torch.fx.experimental.optimization import fuse

from representation_probe.errors import ConfigError
from representation_probe.models.backbone import Backbone
from representation_probe.models.normalization import Normalize


class LayerEmbedder(nn.Module):
    """O_l of the paper: normalisation then the network truncated after layer l.

    One truncated FX graph per distinct layer, so a batch mixing layers costs the sum of the
    truncated forwards rather than a full-depth forward for every sample.
    """

    def __init__(self, backbone: Backbone, layers: list[str]):
        super().__init__()
        self.backbone = backbone
        create, _ = backbone.family.graph_functions()
        nodes = resolve_layers(backbone, layers)
        self.extractors = nn.ModuleDict(
            {_key(layer): _fold_batchnorm(create(backbone.net, return_nodes={node: "out"}), backbone.net)
             for layer, node in nodes.items()}
        )
        self.normalize = Normalize(backbone.normalize)
        self.channels_last = any(isinstance(m, nn.Conv2d) for m in backbone.net.modules())  # not for MLPs
        self.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> LayerEmbedder:
        return super().train(False)  # frozen: BatchNorm must keep its running statistics

    def forward(self, images: torch.Tensor, layer: str) -> torch.Tensor:
        images = self.normalize(images)
        if not self.channels_last:
            return self.extractors[_key(layer)](images)["out"]
        # channels_last (NHWC), oneDNN's native layout: a few % faster per CPU inversion step than NCHW
        # (bench/RESULTS.md). The output goes back to the default layout, so callers see the same tensor.
        out = self.extractors[_key(layer)](images.contiguous(memory_format=torch.channels_last))["out"]
        return out.contiguous() if isinstance(out, torch.Tensor) else out


def _fold_batchnorm(extractor: nn.Module, net: nn.Module) -> nn.Module:
    """Fold each frozen BatchNorm into the convolution before it: one op instead of two, forward and
    backward (~12% less time per ResNet50 inversion step on CPU, bench/RESULTS.md).

    fuse() skips a convolution whose output has another user, so every requested node keeps its value
    ('conv1_raw' stays the bare convolution); only exact nn.Conv2d -> nn.BatchNorm2d pairs are folded.
    The folded convolutions are new modules, so their weights can be stored channels_last once here
    instead of being converted at every call; the backbone's own modules are left as they were.
    """
    folded = fuse(extractor.eval(), inplace=True, no_trace=True)
    shared = {id(p) for p in net.parameters()}
    for conv in folded.modules():
        if isinstance(conv, nn.Conv2d) and id(conv.weight) not in shared:
            conv.weight.data = conv.weight.data.contiguous(memory_format=torch.channels_last)
    return folded


def _key(layer: str) -> str:
    return layer.replace(".", "/")  # ModuleDict keys cannot hold dots


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
