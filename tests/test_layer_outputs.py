"""A layer's output is one tensor, and the user knows which (models/outputs.py): a module that returns a container
is read at its documented element, `<layer>:<element>` chooses another, the same in graphs torch.fx traces and
in modules read with hooks; scalars, parameters and module lists are never layers."""

from __future__ import annotations

import pytest
import torch
import torchvision
import transformers
from torch import nn

import representation_probe as rp

SIZE = 16


class Gated(nn.Module):
    """A block returning its features and a one-channel gate, as gated and attention blocks do."""

    gates = True  # the network multiplies its features by the second element

    def __init__(self, channels: int):
        super().__init__()
        self.conv, self.gate = nn.Conv2d(channels, channels, 3, padding=1), nn.Conv2d(channels, 1, 1)

    def forward(self, h):
        h = torch.relu(self.conv(h))
        return h, torch.sigmoid(self.gate(h))


class WithScalar(Gated):
    """A block returning its features and a statistic of them."""

    gates = False

    def forward(self, h):
        h = torch.relu(self.conv(h))
        return h, h.mean()


class Net(nn.Module):
    def __init__(self, block: type[nn.Module], branch: bool = False):
        super().__init__()
        self.stem, self.blocks, self.branch = nn.Conv2d(3, 8, 3, padding=1), nn.ModuleList([block(8), block(8)]), branch

    def forward(self, x):
        h = self.stem(x)
        if self.branch and h.mean() > 1e9:  # control flow on a value: torch.fx cannot trace it, hooks read it
            h = -h
        for block in self.blocks:
            h, extra = block(h)
            h = h * extra if block.gates else h
        return h


def by_hand(net: Net, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each block's (features, extra) for x."""
    out, h = [], net.stem(x)
    for block in net.blocks:
        h, extra = block(h)
        out.append((h, extra))
        h = h * extra if block.gates else h
    return out


@pytest.mark.parametrize("branch", [False, True], ids=["fx", "hooks"])
def test_a_block_returning_a_tuple_is_its_first_tensor_and_its_gate_is_chosen_by_index(branch):
    net = Net(Gated, branch).eval()
    model = rp.load(net, image_size=SIZE)
    assert model.traceable is not branch
    table = rp.layers(model).set_index("layer")
    assert table.loc["blocks.0", "output"] == "[0] of tuple(2)" and table.loc["blocks.0", "shape"] == (1, 8, SIZE, SIZE)
    assert "blocks" not in table.index  # a ModuleList is never called: not a layer
    x = torch.rand(2, 3, SIZE, SIZE)
    features = rp.extract(model, x, ["blocks.0", "blocks.0:1", "blocks.1", "blocks.1:-1"])
    with torch.no_grad():
        (h0, gate0), (h1, gate1) = by_hand(net, x)
    for name, expected in [("blocks.0", h0), ("blocks.0:1", gate0), ("blocks.1", h1), ("blocks.1:-1", gate1)]:
        torch.testing.assert_close(features[name], expected)
    inversion = rp.invert(model, x[:1], layers="blocks.1", steps=3)
    assert inversion.rows[0]["layer"] == "blocks.1" and inversion.history["m_g"].iloc[-1] > 0
    with pytest.raises(rp.ConfigError, match=r"layer 'blocks.0' has no element 2: its output is tuple\(2\) with "
                                             "elements 0, 1"):
        rp.extract(model, x, ["blocks.0:2"])


@pytest.mark.parametrize("branch", [False, True], ids=["fx", "hooks"])
def test_a_scalar_beside_the_features_is_never_a_layer(branch):
    net = Net(WithScalar, branch).eval()
    model = rp.load(net, image_size=SIZE)
    table = rp.layers(model)
    assert set(table.layer) >= {"blocks.0", "blocks.1"} and all(len(shape) == 4 for shape in table["shape"])
    x = torch.rand(1, 3, SIZE, SIZE)
    inversion = rp.invert(model, x, layers="blocks.1", steps=3)
    assert inversion.rows[0]["m_g"] > 0
    with pytest.raises(rp.ConfigError, match=r"layer 'blocks.0:1' of Net is a tensor of shape \(\) for 2 images"):
        rp.extract(model, x, ["blocks.0:1"])


def test_parameters_are_not_layers_and_every_listed_layer_is_an_images_floats():
    model = rp.load(torchvision.models.convnext_tiny(), image_size=32)
    table = rp.layers(model)
    assert not any("layer_scale" in layer for layer in table.layer)  # ConvNeXt's per-channel scale parameter
    assert "features.1.0.block" in set(table.layer)  # a Sequential is called: it is a layer
    features = rp.extract(model, torch.rand(2, 3, 32, 32), list(table.layer[::25]))
    assert all(value.is_floating_point() and value.shape[0] == 2 for value in features.features.values())


def test_a_hugging_face_model_output_is_its_last_hidden_state_or_the_field_named():
    config = transformers.ConvNextConfig(hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1], image_size=32)
    net = transformers.AutoModel.from_config(config).eval()
    model = rp.load(net)
    row = rp.layers(model).set_index("layer").loc["encoder"]
    assert row["output"] == "last_hidden_state of BaseModelOutputWithNoAttention"
    x = torch.rand(2, 3, 32, 32)
    features = rp.extract(model, x, ["encoder", "encoder:last_hidden_state", "encoder:0"])
    with torch.no_grad():
        expected = net(pixel_values=x).last_hidden_state
    for name in features.features:
        torch.testing.assert_close(features[name], expected)


def test_the_layers_command_shows_what_a_container_layer_reads(run_main, tmp_path, monkeypatch):
    (tmp_path / "gated.py").write_text("import torch\nfrom torch import nn\n\n" + _source())
    monkeypatch.chdir(tmp_path)
    result = run_main("layers", ["model=module", "model.target=gated:build", "model.image_size=16"])
    line = next(line for line in result.out.splitlines() if line.startswith("blocks.0 "))
    assert "(1, 8, 16, 16)" in line and "[0] of tuple(2)" in line, result.out


def _source() -> str:
    import inspect

    return "\n\n".join(inspect.getsource(part) for part in (Gated, Net)) + "\n\ndef build():\n    return Net(Gated)\n"
