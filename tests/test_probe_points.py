"""Probe points and relative depth mean the same in every family (models/points.py): a network's stages in
forward order, never its classifier; the same architecture from torchvision and from timm gets points of the
same shapes at the same depths, and a module of one's own is walked by the same rule."""

from __future__ import annotations

import pytest
import torch
import torchvision
import transformers
from torch import nn

import representation_probe as rp
from representation_probe.models import layer_shapes

SIZE = 64


def points(model) -> list[tuple[tuple, float]]:
    """(shape, relative depth) of each probe point."""
    shapes = layer_shapes(model)
    return [(shapes[point], depth) for point, depth in model.probe_points.items()]


@pytest.mark.parametrize("name", ["convnext_tiny", "efficientnet_b0", "resnet18"])
def test_torchvision_and_timm_give_one_architecture_the_same_stages(name):
    ours = rp.load(torchvision.models.get_model(name), image_size=SIZE)
    theirs = rp.load(f"timm/{name}", image_size=SIZE)  # timm's feature_info: one output per stride
    assert points(ours) == points(theirs)
    assert [depth for _, depth in points(ours)] == [(i + 1) / len(ours.probe_points) for i in range(len(points(ours)))]


@pytest.mark.parametrize("name", ["convnext_tiny", "efficientnet_b0"])
def test_no_classifier_downsampling_layer_or_head_convolution_is_a_stage(name):
    net = torchvision.models.get_model(name)
    model = rp.load(net, image_size=SIZE)
    chosen = list(model.probe_points)
    assert "classifier" not in chosen and all(name.startswith("features.") for name in chosen)
    last = len(net.features) - 1
    blocks = [i for i, part in enumerate(net.features) if isinstance(part[0], nn.Module) and any(
        next(child.children(), None) is not None for child in part.children())]
    assert all(int(point.split(".")[1]) in blocks for point in chosen)  # stages of blocks, not lone layers
    assert name != "efficientnet_b0" or f"features.{last}" not in chosen  # its 1x1 head convolution
    sides = [shape[-1] for shape, _ in points(model)]
    assert sides == sorted(sides, reverse=True) and len(set(sides)) == len(sides)  # one per resolution


def test_hugging_face_stages_and_blocks():
    convnext = transformers.AutoModel.from_config(transformers.ConvNextConfig(
        hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1], image_size=SIZE))
    assert list(rp.load(convnext).probe_points) == [f"encoder.stages.{i}" for i in range(4)]
    vit = transformers.AutoModel.from_config(transformers.ViTConfig(
        image_size=32, patch_size=8, hidden_size=24, num_hidden_layers=3, num_attention_heads=2, intermediate_size=48))
    assert list(rp.load(vit).probe_points) == ["layers.0", "layers.1", "layers.2"]  # isotropic: every block


class Own(nn.Module):
    """Top-level parts, defined out of forward order, with a classifier."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(16, 5)
        self.conv2, self.conv1 = nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.Conv2d(3, 8, 3, padding=1)
        self.norm = nn.BatchNorm2d(16)

    def forward(self, x):
        x = self.norm(self.conv2(torch.relu(self.conv1(x)))).relu()
        return self.head(x.mean(dim=(2, 3)))


class Blocks(nn.Module):
    """A stem, a ModuleList of blocks at two resolutions, a classifier."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.blocks = nn.ModuleList([nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU()),
                                     nn.Sequential(nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU()),
                                     nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())])
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return self.fc(x.mean(dim=(2, 3)))


def test_a_module_of_ones_own_is_walked_by_the_same_rule():
    assert list(rp.load(Own(), image_size=32).probe_points) == ["conv1", "norm"]  # the last at each resolution
    assert list(rp.load(Blocks(), image_size=32).probe_points) == ["blocks.0", "blocks.2"]
    assert list(rp.load(Own(), image_size=32, probe_points=["conv2", "head"]).probe_points) == ["conv2", "head"]
