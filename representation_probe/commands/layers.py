"""`layers`: every layer name of a model with its output shape; the probe points first."""

from __future__ import annotations

from omegaconf import DictConfig

from representation_probe.cli.shell import arguments
from representation_probe.models.layers import layer_index
from representation_probe.models.load import load


def run(cfg: DictConfig) -> None:
    backbone = load(arguments(cfg.model))
    layers = layer_index(backbone).layers
    points = backbone.probe_points
    width = max(map(len, layers))
    aliases = " (paper aliases first)" if backbone.aliases else ""
    height, width = backbone.input_size
    print(f"# {backbone.name} ({backbone.family.name} family) at {height}x{width} px")
    print(f"# probe points with their relative depth, then every other layer{aliases}; where a module returns a "
          "container, the element its layer reads (<layer>:<element> picks another)")
    for name, layer in layers.items():
        depth = f"  depth {points[name]:.3g}" if name in points else ""
        reads = f"  {layer.output}" if layer.output != "tensor" else ""
        print(f"{name:<{width}}  {layer.shape}{depth}{reads}")
