"""Frozen forward maps of a backbone: one truncated graph per layer (inversion, where each sample has its
own layer), or one forward returning several layers of the same images (decoders, probes, similarity),
and those layers' outputs for a whole dataset computed once (`cache_features`)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import fx, nn
from torch.fx.experimental.optimization import fuse
from torch.utils.data import DataLoader, Dataset, TensorDataset

from representation_probe.errors import ConfigError
from representation_probe.models import graph
from representation_probe.models.backbone import Backbone
from representation_probe.models.hooks import HookExtractor
from representation_probe.models.layers import resolve_layers, small_index
from representation_probe.models.normalization import Normalize
from representation_probe.models.outputs import pick

POOLS = ("mean", "flatten", "cls")


class LayerEmbedder(nn.Module):
    """O_l of the paper: normalisation then the network truncated after layer l.

    One truncated FX graph per distinct layer, so a batch mixing layers costs the sum of the
    truncated forwards rather than a full-depth forward for every sample. The network is traced and its
    BatchNorm folded once, for all layers; each layer's graph is cut from that one and shares its
    modules (ten FX traces, two per layer, and five foldings were most of a five-layer ResNet50 run's
    set-up under cProfile; now two traces and one folding, bench/RESULTS.md).
    """

    def __init__(self, backbone: Backbone, layers: list[str], size: tuple[int, int] | None = None):
        super().__init__()
        self.backbone, self.size = backbone, tuple(size or backbone.input_size)
        self.layers = resolve_layers(backbone, layers, self.size)
        if backbone.traceable:
            union = _truncated(backbone, {layer.node: layer.node for layer in self.layers.values()})
            _first_layer_in_float32(union)
            self.extractors = nn.ModuleDict({_key(name): _cut(union, layer.node)
                                             for name, layer in self.layers.items()})
        else:  # one hooked forward per layer, stopped after it
            self.extractors = nn.ModuleDict({_key(name): _hooked(backbone, {layer.node: "out"}, self.size)
                                             for name, layer in self.layers.items()})
        self.paths = {name: layer.path for name, layer in self.layers.items()}
        self.normalize = Normalize(backbone.normalize)
        self.channels_last = _has_convolutions(backbone)
        self.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> LayerEmbedder:
        return super().train(False)  # frozen: BatchNorm must keep its running statistics

    def forward(self, images: torch.Tensor, layer: str) -> torch.Tensor:
        images = self.normalize(images)
        extractor = self.extractors[_key(layer)].forward  # no hooks on our own graphs: skip Module.__call__
        if self.channels_last:  # NHWC, oneDNN's native layout: a few % faster per CPU inversion step than NCHW
            images = images.contiguous(memory_format=torch.channels_last)  # (bench/RESULTS.md)
        out = extractor(images)["out"]
        path = self.paths[layer]
        out = pick(out, path) if path else out  # an element of a container output (outputs.py)
        # channels_last's output goes back to the default layout, so callers see the same tensor
        return out.contiguous() if self.channels_last else out


class Float32(nn.Module):
    """`module` run in float32 even under autocast (trainer.precision=bf16-mixed).

    For the layer that reads the optimised image: autocast would round the image to bf16 (8 bits of
    mantissa, steps of 1/256 near 1.0), coarser than an inversion's late updates, so a_g could not get
    closer to the target than that rounding (bench/RESULTS.md: conv1 m_i 0.11 against 0.01 in float32).
    """

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_autocast_enabled(x.device.type):
            return self.module(x)
        with torch.autocast(x.device.type, enabled=False):
            return self.module(x.float())


def _first_layer_in_float32(graph: fx.GraphModule) -> None:
    """Wrap the first module with weights (the stem convolution, a ViT's patch projection, an MLP's fc1) in
    Float32, in place; every graph cut from this one shares the wrapper."""
    for node in graph.graph.nodes:
        if node.op == "call_module" and next(graph.get_submodule(node.target).parameters(), None) is not None:
            parent, _, name = node.target.rpartition(".")
            owner = graph.get_submodule(parent)
            setattr(owner, name, Float32(getattr(owner, name)))
            return


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


def _cut(union: fx.GraphModule, output: str) -> fx.GraphModule:
    """The part of a multi-output graph that computes `output`, returned as {'out': value}: the nodes
    it does not need are dropped, the modules are shared with `union`, not copied."""
    graph = fx.Graph(owning_module=union)  # dead-code elimination asks the module whether a call is pure
    outputs = graph.graph_copy(union.graph, {})
    graph.output({"out": outputs[output]})
    graph.eliminate_dead_code()
    return fx.GraphModule(union, graph)


def _key(layer: str) -> str:
    return layer.replace(".", "/")  # ModuleDict keys cannot hold dots


class FeatureExtractor(nn.Module):
    """Normalisation, then one forward of the network truncated after the deepest requested layer that
    returns every requested layer: {layer: output}. Never one forward per layer."""

    def __init__(self, backbone: Backbone, layers: list[str], size: tuple[int, int] | None = None):
        super().__init__()
        self.backbone, self.size = backbone, tuple(size or backbone.input_size)
        self.nodes = resolve_layers(backbone, layers, self.size)  # layer -> Layer (two names may share a node)
        self.extractor = _truncated(backbone, {layer.node: _key(layer.node) for layer in self.nodes.values()},
                                    self.size)
        self.normalize = Normalize(backbone.normalize)
        self.channels_last = _has_convolutions(backbone)
        self.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> FeatureExtractor:
        return super().train(False)  # frozen: BatchNorm keeps its running statistics, dropout stays off

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        images = self.normalize(images)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with self.backbone.frozen():  # a user's module, whenever this runs (a kept decoder's reconstructions)
            outputs = self.extractor(images)
        return {name: pick(outputs[_key(layer.node)], layer.path).contiguous() for name, layer in self.nodes.items()}


def pool(features: torch.Tensor, how: str = "mean", prefix_tokens: int = 0) -> torch.Tensor:
    """(B, ...) features -> (B, D) vectors: spatial maps (B, C, H, W) averaged over positions (`mean`)
    or flattened; token sequences (B, N, D) averaged over the patch tokens after the `prefix_tokens`
    class/register tokens (`mean`), the first token (`cls`), or flattened; vectors as they are."""
    if how not in POOLS:
        raise ConfigError(f"unknown pool '{how}'; allowed: {', '.join(POOLS)}")
    if features.ndim == 2 or how == "flatten":
        return features.flatten(1)
    if features.ndim == 4:
        if how == "cls":
            raise ConfigError("pool=cls takes the class token of a token sequence; this layer is a spatial map")
        return features.mean(dim=(2, 3))
    if features.ndim == 3:
        if how == "cls":
            if prefix_tokens < 1:
                raise ConfigError("pool=cls needs a class token; this model has none: use pool=mean")
            return features[:, 0]
        return features[:, prefix_tokens:].mean(dim=1)
    raise ConfigError(f"cannot pool a layer output of shape {tuple(features.shape)}")


@torch.no_grad()
def cache_features(embed: Callable[[torch.Tensor], list[torch.Tensor]], dataset: Dataset, batch_size: int,
                   workers: int = 0, device: torch.device | str = "cpu", dtype: torch.dtype | None = None,
                   keep_images: bool = False) -> TensorDataset:
    """What a frozen `embed` (images -> one tensor per layer) gives for every item of `dataset`, computed
    once in dataset order and kept on the CPU: (images if `keep_images`, layer 1, ..., labels), the
    outputs stored as `dtype` (None: as computed; an output beyond its range raises OverflowError).

    What an epoch then reads instead of running the backbone: the same images in the same order give the
    same features (the backbone is frozen and in eval mode), so training matches the uncached path, up to
    the rounding to `dtype`. The storage is allocated after the first batch: no second copy to concatenate.
    """
    stored: list[torch.Tensor] = []
    labels, start = [], 0
    for images, targets in DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers):
        outputs = list(embed(images.to(device)))
        if dtype is not None and dtype.is_floating_point:
            largest = max(float(x.abs().max()) for x in outputs)
            if largest > torch.finfo(dtype).max:
                raise OverflowError(f"a layer output reaches {largest:.4g}, beyond {dtype}'s range")
        batch = [images, *outputs] if keep_images else outputs
        if not stored:
            kinds = [images.dtype] * keep_images + [dtype] * len(outputs)
            stored = [torch.empty((len(dataset), *x.shape[1:]), dtype=kind or x.dtype) for x, kind in zip(batch, kinds)]
        for store, x in zip(stored, batch):
            store[start : start + len(x)] = x  # cast and copied to the CPU
        labels.append(torch.as_tensor(targets))
        start += len(images)
    return TensorDataset(*stored, torch.cat(labels))


def _has_convolutions(backbone: Backbone) -> bool:
    """channels_last pays off for convolutions only (an MLP's input stays as it is)."""
    return any(isinstance(m, nn.Conv2d) for m in backbone.net.modules())


def _truncated(backbone: Backbone, return_nodes: dict[str, str], size: tuple[int, int] | None = None) -> nn.Module:
    """The backbone's FX graph cut after the deepest of `return_nodes`, BatchNorm folded; for a network
    FX cannot trace, its forward with hooks on those modules, stopped after the last of them."""
    if not backbone.traceable:
        return _hooked(backbone, return_nodes, size)
    extractor = graph.extractor(backbone.net, return_nodes, backbone.family.tracer_kwargs())
    return _fold_batchnorm(extractor, backbone.net)


def _hooked(backbone: Backbone, return_nodes: dict[str, str], size: tuple[int, int] | None) -> HookExtractor:
    return HookExtractor(backbone.net, return_nodes, small_index(backbone, size).calls)
