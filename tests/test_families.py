"""A model family is one registered class: a new one works with every command and no other change."""

import json

import torch
from torch import nn

from representation_probe.models import Family, register


class Stages(nn.Module):
    """Two conv stages and a head: the smallest network with probe points of its own."""

    def __init__(self, width: int, num_classes: int):
        super().__init__()
        self.stages = nn.Sequential(
            nn.Sequential(nn.Conv2d(3, width, 3, stride=2, padding=1), nn.ReLU()),
            nn.Sequential(nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU()))
        self.head = nn.Linear(2 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(x).mean(dim=(2, 3)))


@register
class TinyStages(Family):
    name = "tiny_stages"

    def build(self, name, weights, num_classes, image_size, *, width: int = 4):
        return Stages(width, num_classes or 10)

    def probe_points(self, net):
        return [f"stages.{i}" for i in range(len(net.stages))]


def test_a_registered_family_is_inverted_and_listed(run_task, run_main):
    model = ["model.family=tiny_stages", "model.name=tiny", "model.image_size=16"]
    listing = run_main("layers", model)
    assert listing.code == 0, listing.err
    assert [line.split()[0] for line in listing.out.splitlines()[2:4]] == ["stages.0", "stages.1"]

    _, run_dir = run_task("invert", [*model, "inversion.steps=30", "logger=csv"])  # layer: the default
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["layer"], summary["relative_depth"]) == ("stages.1", 1.0)
    assert summary["m_g_over_m_s"] < 1


def test_a_family_option_is_a_model_key_and_others_are_refused(run_main):
    model = ["model.family=tiny_stages", "model.name=tiny", "model.image_size=16"]
    assert run_main("layers", [*model, "+model.width=2"]).out.splitlines()[2].split(maxsplit=1)[1].startswith(
        "(1, 2, 8, 8)")  # stages.0 has `width` channels
    refused = run_main("invert", [*model, "+model.depth=3", "logger=csv"])
    assert refused.code == 2
    assert "model.depth is not an option of the tiny_stages family (its options: model.width)" in refused.err
