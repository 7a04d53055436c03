"""One factory for every registered family, and the Backbone record every study receives."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property

import torch
from torch import nn

from representation_probe.config.checks import positive_int
from representation_probe.errors import ConfigError
from representation_probe.models import graph, points
from representation_probe.models.family import Family, get_family
from representation_probe.models.hooks import trace_calls
from representation_probe.models.normalization import Normalization, check_normalize
from representation_probe.models.weights import head_classes, is_named, load_state, read_weights


@dataclass(eq=False)
class Backbone:
    """A frozen network plus what a probe needs to know about it; the family answers the rest.

    What `rp.load` returns. Layers are FX graph nodes where torch.fx traces the network, else its
    dotted `named_modules` names (read with forward hooks that never outlive a forward).

    Its size: `image_size` is one the user pinned (every call brings its images to it), else the network's own
    if it takes no other (a ViT's position embeddings), else None: each call follows its data, and named
    images or files come at `natural_size` (the preset's, the Hugging Face config's, else 224).
    """

    name: str
    family: Family
    net: nn.Module
    image_size: int | tuple[int, int] | None  # pinned: (height, width), or a side; None: follows the data
    normalize: Normalization  # 'none' (raw [0, 1] pixels, as in the paper), 'imagenet' or (mean, std)
    weights: str = "none"  # as given: none, imagenet, a version, a file, or pretrained (Hugging Face)
    points: list[str] | None = None  # probe points the user named; None: the family's
    borrowed: bool = False  # `net` is the user's own module: frozen only while a study uses it
    natural_size: tuple[int, int] = (224, 224)  # for named images and files when nothing else decides
    _frozen: int = field(default=0, repr=False)  # depth of nested `frozen()` blocks

    def __repr__(self) -> str:
        size = "x".join(map(str, self.pinned_size)) + " px" if self.pinned_size else "follows the data"
        return (f"Model({self.name}, {self.family.name} family, weights {self.weights}, {size}, normalize "
                f"{self.normalize if isinstance(self.normalize, str) else 'custom'})")

    @contextlib.contextmanager
    def frozen(self) -> Iterator[nn.Module]:
        """The network frozen for the block (eval, no weight gradients, no in-place ops). A user's own module
        gets back exactly the modes, flags and requires_grad it had, also when the block fails; one built
        here is frozen for good."""
        if not self.borrowed or self._frozen:
            self._frozen += 1
            try:
                yield self.net
            finally:
                self._frozen -= 1
            return
        modules = [(m, m.training, m.inplace if hasattr(m, "inplace") else None) for m in self.net.modules()]
        grads = [(p, p.requires_grad) for p in self.net.parameters()]
        freeze(self.net)
        self._frozen += 1
        try:
            yield self.net
        finally:
            self._frozen -= 1
            for module, training, inplace in modules:
                module.training = training
                if inplace is not None:
                    module.inplace = inplace
            for parameter, wanted in grads:
                parameter.requires_grad_(wanted)

    @property
    def aliases(self) -> dict[str, str]:
        return self.family.aliases(self.net)

    @property
    def probe_points(self) -> dict[str, float]:
        """Probe point -> relative depth: after stage i of n, (i + 1) / n (0 is the input itself)."""
        names = self.points if self.points is not None else self._family_points()
        return {name: (i + 1) / len(names) for i, name in enumerate(names)}

    def _family_points(self) -> list[str]:
        """The family's probe points; for a family that only knows the main sequence of blocks, the stages
        among them (points.py), told apart by one forward of a blank batch."""
        if "_found_points" not in self.__dict__:
            names = self.family.probe_points(self.net)
            if self.family.finds_stages and names:
                height, width = self.input_size
                scale = points.MEASURE / min(height, width)
                images = torch.zeros(2, self.channels, round(height * scale), round(width * scale))
                try:
                    returned, _ = self.run_hooked(images)
                except ConfigError:  # a network that takes its own size only
                    returned, _ = self.run_hooked(torch.zeros(2, self.channels, height, width))
                names = points.stages(names, returned, self.net, batch=2)
            self.__dict__["_found_points"] = names
        return self.__dict__["_found_points"]

    def depth_of(self, layer: str) -> float | None:
        """The relative depth of a probe point, named by its own name or by the node it reads (a torchvision
        ResNet's layer2 is the paper's conv3); None for other layers."""
        points = self.probe_points
        if layer in points:
            return points[layer]
        aliases = self.aliases
        return next((depth for point, depth in points.items() if aliases.get(point) == layer and layer not in aliases),
                    None)

    @property
    def default_layer(self) -> str | None:
        if self.points is not None:
            return self.points[-1] if self.points else None
        return self.family.default_layer(self.net)

    @property
    def details(self) -> dict:
        return self.family.details(self.net)

    @property
    def pinned_size(self) -> tuple[int, int] | None:
        """(height, width) every call's images are brought to: the user's, else one the network takes alone."""
        if self.image_size is not None:
            return as_pair(self.image_size)
        return self.family.fixed_size(self.net)

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) of the images its layers are listed at when no data says otherwise."""
        return self.pinned_size or self.natural_size

    @cached_property
    def channels(self) -> int:
        """Colour channels the network reads: as its family knows, else its first convolution's (the first
        the graph runs, where torch.fx traces it), else 3."""
        known = self.family.channels(self.net)
        if known is not None:
            return known
        convolutions = {name: m for name, m in self.net.named_modules() if isinstance(m, nn.Conv2d)}
        order = [name for name, op in self.fx_trace[0].items() if op == "call_module"] if self.traceable else []
        for called in [*order, *convolutions]:  # a leaf the graph calls may hold the convolution (conv-norm-act)
            inside = [name for name in convolutions if name == called or name.startswith(called + ".")]
            if inside:
                return convolutions[inside[0]].in_channels
        return 3

    @cached_property
    def fx_trace(self) -> tuple[dict[str, str], dict[str, object]] | None:
        """The network's graph as graph.trace gives it (node -> op, module -> what it returned), or None where
        torch.fx cannot trace it (its layers are then read with forward hooks)."""
        if self.family.tracer == "hooks":
            return None
        try:
            with self.frozen():
                return graph.trace(self.net, self.family.tracer_kwargs())
        except Exception:  # any error of the tracer: control flow on values, unsupported ops, ...
            if self.family.tracer == "fx":
                raise
            return None

    @property
    def traceable(self) -> bool:
        return self.fx_trace is not None

    def run_hooked(self, images: torch.Tensor) -> tuple[dict[str, object], dict[str, int]]:
        """(module -> the skeleton of its output, module -> calls per forward) of one forward of `images`."""
        try:
            with self.frozen():
                return trace_calls(self.net, images)
        except ConfigError:
            raise
        except Exception as err:
            shape = (1, *images.shape[1:])
            raise ConfigError(f"{self.name} fails on a {shape} image ({type(err).__name__}: "
                              f"{str(err).splitlines()[0] if str(err) else ''}); is image_size right?") from None


def as_pair(size) -> tuple[int, int]:
    """A side or (height, width) as (height, width), each a positive integer."""
    pair = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
    if len(pair) != 2:
        raise ConfigError(f"model.image_size is a side or [height, width], got {size!r}")
    return tuple(positive_int("model.image_size", side) for side in pair)


def create_model(
    family: str,
    name: str,
    weights: str = "none",
    normalize: Normalization = "none",
    image_size: int | tuple[int, int] = 224,
    init_seed: int = 0,
    num_classes: int | None = None,
    trainable: bool = False,
    **options,
) -> Backbone:
    """Build a backbone of a registered family, frozen for probing unless `trainable`.

    Args:
        family: a registered family: resnet, vit, timm, mlp, torchvision, hf (models/families/).
        name: the model within its family (resnet50, vit_b_16, any timm name, a label for an MLP).
        weights: 'none' (random init from init_seed), 'imagenet' or a version such as IMAGENET1K_V1, or a
            path to a state_dict or to a Lightning checkpoint of ours.
        normalize: input normalisation inside the forward map: 'none', 'imagenet' or (mean, std).
        image_size: side of the square input in pixels: pinned (rp.load unpins a size the user did not give).
        init_seed: seed of the random initialisation, so untrained models are reproducible.
        num_classes: size of the classifier head; None takes it from the weights file, else the family's.
        trainable: leave the weights trainable (training) instead of frozen (probing).
        options: the family's own (an MLP's widths, a timm model's depth, ...).
    """
    kind = get_family(family)
    normalize = check_normalize(normalize)
    as_pair(image_size)  # a positive side or (height, width)
    _check_options(kind, options)
    weights = str(weights)
    state = None if is_named(weights) else read_weights(weights)
    if num_classes is None:
        num_classes = head_classes(state)
    torch.manual_seed(init_seed)
    net = kind.build(name, "none" if state is not None else weights, num_classes, image_size, **options)
    if state is not None:
        load_state(net, state, weights, name)
    return Backbone(name, kind, net if trainable else freeze(net), image_size, normalize, weights,
                    natural_size=as_pair(image_size))


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
