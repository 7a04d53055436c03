"""`layers`: every layer name of a model with its output shape; the probe points first."""

from __future__ import annotations

from omegaconf import DictConfig

from representation_probe.cli.shell import arguments
from representation_probe.models import layer_shapes
from representation_probe.models.load import load


def run(cfg: DictConfig) -> None:
    backbone = load(arguments(cfg.model))
    shapes = layer_shapes(backbone)
    points = backbone.probe_points
    width = max(map(len, shapes))
    aliases = " (paper aliases first)" if backbone.aliases else ""
    print(f"# {backbone.name} ({backbone.family.name} family) at {backbone.image_size} px")
    print(f"# probe points with their relative depth, then every other layer{aliases}")
    for name, shape in shapes.items():
        depth = f"  depth {points[name]:.3g}" if name in points else ""
        print(f"{name:<{width}}  {shape}{depth}")
