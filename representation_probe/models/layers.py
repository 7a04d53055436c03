"""Layer naming and feature extraction: the paper's conv1..conv5 plus any FX graph node."""

from __future__ import annotations


import torch
from torch import nn
from torch.fx.experimental.optimization import fuse
from torchvision.models import feature_extraction as tv_fx

from representation_probe.errors import ConfigError
from representation_probe.models.registry import NORMALIZATIONS, Backbone

# He et al. (2016) naming used by the paper. These aliases win over FX nodes of the same name:
# in torchvision the node 'conv1' is the bare 7x7 convolution, which is reachable as 'conv1_raw'.
RESNET_ALIASES = {
    "conv1_raw": "conv1",
    "conv1": "relu",
    "conv1_pool": "maxpool",
    "conv2": "layer1",
    "conv3": "layer2",
    "conv4": "layer3",
    "conv5": "layer4",
}


def _fx(family: str):
    """timm ships its own FX wrappers that know its untraceable leaf modules."""
    if family == "timm":
        from timm.models import create_feature_extractor, get_graph_node_names
        return create_feature_extractor, get_graph_node_names
    return tv_fx.create_feature_extractor, tv_fx.get_graph_node_names


class LayerEmbedder(nn.Module):
    """O_l of the paper: normalisation then the network truncated after layer l.

    One truncated FX graph per distinct layer, so a batch mixing layers costs the sum of the
    truncated forwards rather than a full-depth forward for every sample.
    """

    def __init__(self, backbone: Backbone, layers: list[str]):
        super().__init__()
        self.backbone = backbone
        create, _ = _fx(backbone.family)
        nodes = {layer: resolve_layer(backbone, layer) for layer in dict.fromkeys(layers)}
        self.extractors = nn.ModuleDict(
            {_key(layer): _fold_batchnorm(create(backbone.net, return_nodes={node: "out"}), backbone.net)
             for layer, node in nodes.items()}
        )
        stats = NORMALIZATIONS[backbone.normalize]
        mean, std = stats if stats else ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))
        self.normalize = stats is not None  # 'none' (the paper's raw pixels) skips two ops per step
        self.channels_last = any(isinstance(m, nn.Conv2d) for m in backbone.net.modules())  # not for MLPs
        self.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> LayerEmbedder:
        return super().train(False)  # frozen: BatchNorm must keep its running statistics

    def forward(self, images: torch.Tensor, layer: str) -> torch.Tensor:
        if self.normalize:
            images = (images - self.mean) / self.std
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


def aliases(backbone: Backbone) -> dict[str, str]:
    return RESNET_ALIASES if backbone.family == "resnet" else {}


def graph_nodes(backbone: Backbone) -> list[str]:
    """FX node names in evaluation mode, plus names of container modules (their last node)."""
    _, names = _fx(backbone.family)
    nodes = names(backbone.net)[1]
    containers = [name for name, mod in backbone.net.named_modules() if name and any(mod.children())]
    return list(dict.fromkeys(nodes[1:] + containers))  # nodes[0] is the input placeholder


def valid_layers(backbone: Backbone) -> list[str]:
    return list(aliases(backbone)) + [n for n in graph_nodes(backbone) if n not in aliases(backbone)]


def resolve_layer(backbone: Backbone, layer: str) -> str:
    """Paper alias or graph node -> graph node; an unknown name fails with the valid ones."""
    if layer in aliases(backbone):
        return aliases(backbone)[layer]
    if layer in graph_nodes(backbone):
        return layer
    raise ConfigError(f"unknown layer '{layer}' for {backbone.name}; valid layers: "
                      f"{', '.join(valid_layers(backbone))}")


def layer_shapes(backbone: Backbone) -> dict[str, tuple]:
    """Output shape of every valid layer for one image of the model's size."""
    create, names = _fx(backbone.family)
    nodes = names(backbone.net)[1][1:]
    extractor = create(backbone.net, return_nodes={node: node for node in nodes})
    size = backbone.image_size
    with torch.no_grad():
        outputs = extractor(torch.zeros(1, 3, size, size))

    def last_node(name: str) -> str:  # a container module's output is its last node
        return name if name in outputs else [n for n in nodes if n.startswith(name + ".")][-1]

    return {name: _shape(outputs[last_node(aliases(backbone).get(name, name))])
            for name in valid_layers(backbone)}


def _shape(value) -> tuple:
    return tuple(value.shape) if isinstance(value, torch.Tensor) else (type(value).__name__,)
