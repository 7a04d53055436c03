"""A network's torch.fx graph as torchvision's feature extraction traces it (with the family's leaf modules), plus
what that trace does not keep: what each module returns.

torchvision names every node by the module it runs in (`layer1.0.relu_1`) and returns a module's output as
"the last node inside it", which is wrong for a module that returns a container: a block returning
`(h, gate)` would read as its gate. `trace` records, for every module the trace goes through, the nodes its
forward returned, so that a module's layer is the element outputs.py documents, as a node of the graph.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import fx, nn
from torchvision.models import feature_extraction
from torchvision.models.feature_extraction import NodePathTracer

# torchvision's own defaults (its ops as leaves), which its create_feature_extractor adds to ours: the same
# tracer settings here keep the node names the same as the extractors'.
from torchvision.models.feature_extraction import _set_default_tracer_kwargs as _with_defaults

from representation_probe.models.outputs import rebuild


class Node(str):
    """A graph node's name where a module's output holds that node's value."""


class _OutputTracer(NodePathTracer):
    """NodePathTracer that also keeps each traced-through module's returned structure (its last call's)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.returned: dict[str, object] = {}

    def call_module(self, m: nn.Module, forward, args, kwargs):
        out = super().call_module(m, forward, args, kwargs)
        name = self.path_of_module(m)
        if name and not self.is_leaf_module(m, name):
            self.returned[name] = out
        return out


def trace(net: nn.Module, tracer_kwargs: dict | None) -> tuple[dict[str, str], dict[str, object]]:
    """(node name -> its op, in execution order; module -> what it returned, with Node names for its values)
    of the network in eval mode, as create_feature_extractor names the nodes."""
    tracer = _OutputTracer(**_with_defaults(dict(tracer_kwargs or {})))
    modes = [(module, module.training) for module in net.modules()]
    try:
        tracer.trace(net.eval())
    finally:  # a network being trained stays in its modes (Lightning keeps the modes it finds)
        for module, training in modes:
            module.training = training
    ops = {name: node.op for node, name in tracer.node_to_qualname.items()}
    names = dict(tracer.node_to_qualname)
    return ops, {module: _as_nodes(out, names) for module, out in tracer.returned.items()}


def _as_nodes(value, names: Mapping[fx.Node, str]):
    if isinstance(value, fx.Proxy):
        return Node(names[value.node]) if value.node in names else None
    return rebuild(value, lambda element: _as_nodes(element, names))


def with_values(structure, values: Mapping[str, object]):
    """A module's returned structure with each Node replaced by that node's value."""
    if isinstance(structure, Node):
        return values.get(structure)
    return rebuild(structure, lambda element: with_values(element, values))


def extractor(net: nn.Module, return_nodes: dict[str, str], tracer_kwargs: dict | None) -> fx.GraphModule:
    """torchvision's feature extractor: node -> output key, as one graph truncated after the deepest node."""
    return feature_extraction.create_feature_extractor(net, return_nodes=return_nodes,
                                                       tracer_kwargs=dict(tracer_kwargs or {}))


@torch.no_grad()
def node_values(net: nn.Module, nodes: list[str], images: torch.Tensor, tracer_kwargs: dict | None) -> dict:
    """Every node's value for `images`, from one forward of the whole graph."""
    graph = extractor(net, {node: node for node in nodes}, tracer_kwargs)
    return graph(images)
