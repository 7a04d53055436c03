"""Doubt is loud (metrics/doubts.py): every doubt about a result goes through Python's `warnings` with the
project's own classes, attributed to the caller's line, and sits in `.to_frame()`, `.warnings` and the rows; an
inversion that cannot move is said, and where the scale of a layer was the reason, inversion now moves."""

from __future__ import annotations

import warnings

import pytest
import torch
import torchvision
from torch import nn

import representation_probe as rp

SIZE = 32


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)  # its weights: the same in every worker
    return rp.load(torchvision.models.resnet18(), image_size=SIZE)


def test_a_probe_at_chance_is_a_degenerate_warning_in_the_frame_and_filterable(resnet):
    gen = torch.Generator().manual_seed(0)
    images, labels = torch.rand(40, 3, SIZE, SIZE, generator=gen), torch.randint(0, 4, (40,), generator=gen)
    with pytest.warns(rp.DegenerateWarning, match=r"probe resnet18 conv5 seed 0: test accuracy .* at chance") as said:
        probing = rp.probe(resnet, (images, labels), [-1], epochs=2, batch_size=8)
    ours = [w for w in said if issubclass(w.category, rp.DegenerateWarning)]
    assert ours[0].filename == __file__  # the caller's line, not the library's
    assert issubclass(rp.DegenerateWarning, rp.ResultWarning) and issubclass(rp.ResultWarning, UserWarning)
    frame = probing.to_frame()
    assert frame["warnings"].str.contains("at chance").all()
    assert list(probing.warnings.columns[-1:]) == ["warning"] and len(probing.warnings) == 1
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", category=rp.ResultWarning)  # the class silences them all
        again = rp.probe(resnet, (images, labels), [-1], epochs=1, batch_size=8)
    assert again.rows[0]["warnings"] and not [w for w in seen if issubclass(w.category, rp.ResultWarning)]


def test_a_constant_target_embedding_is_said():
    dead = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    nn.init.zeros_(dead[0].weight), nn.init.constant_(dead[0].bias, -1.0)  # every unit at 0
    with pytest.warns(rp.InversionWarning, match="target embedding at 1 is constant"):
        inversion = rp.invert(dead, torch.rand(3, SIZE, SIZE), layers="1", steps=3)
    assert any("constant" in w for w in inversion.rows[0]["warnings"])


@pytest.fixture(scope="module")
def effnet():
    torch.manual_seed(0)
    return rp.load(torchvision.models.efficientnet_b0(), image_size=SIZE)  # untrained: activations ~1e-14 deep


def test_an_inversion_that_cannot_move_says_so(effnet):
    with pytest.warns(rp.InversionWarning) as said:
        inversion = rp.invert(effnet, "chelsea", layers="features.7", steps=10, optimizer="sgd", lr=0.05)
    messages = " ".join(str(w.message) for w in said)
    assert "first step moved no pixel" in messages and "m_g did not move" in messages and "a_g did not move" in messages
    assert len(inversion.rows[0]["warnings"]) == 3


def test_adam_inverts_a_layer_whose_activations_are_tiny(effnet):
    with warnings.catch_warnings():
        warnings.simplefilter("error", rp.InversionWarning)  # no doubt left
        inversion = rp.invert(effnet, "chelsea", layers=["features.4", "features.7"], steps=30)
    history = inversion.history
    for row in inversion.rows:
        start = history[history.layer == row["layer"]].m_g.iloc[0]
        assert start < 1e-5 and row["m_g"] < start / 5 and row["m_g_over_m_s"] < 1, row
