"""Clear lines where torch's errors were: a module with lazy layers takes its shapes before it is frozen, data
without labels is refused by a probe, a DataLoader or Dataset is data with its labels kept, a model target that
is not a module is named."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import representation_probe as rp

LAZY = '''
from torch import nn


class Lazy(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(3, 4, 3), nn.LazyLinear(5)

    def forward(self, x):
        return self.fc(self.conv(x).relu().flatten(1))


def build():
    return Lazy()


def not_a_module():
    return "resnet"
'''


@pytest.fixture
def lazy(tmp_path, monkeypatch):
    (tmp_path / "lazy.py").write_text(LAZY)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    import lazy

    return lazy


def test_a_module_with_lazy_layers_is_run_once_at_its_size_then_listed_and_inverted(lazy):
    model = rp.load(lazy.build(), image_size=16)
    assert model.net.fc.in_features == 4 * 14 * 14 and model.pinned_size == (16, 16)
    assert {"conv", "fc"} <= set(rp.layers(model).layer)
    inversion = rp.invert(model, torch.rand(3, 16, 16), layers="fc", steps=2)
    assert inversion.rows[0]["m_g"] > 0
    with pytest.raises(rp.ConfigError, match=r"Sequential has lazy layers, and its first forward, at 8x8, failed"):
        rp.load(nn.Sequential(nn.Conv2d(3, 4, 9), nn.Flatten(), nn.LazyLinear(2)), image_size=8)


def test_the_layers_command_lists_a_lazy_module_and_names_a_target_that_is_no_module(lazy, run_main):
    done = run_main("layers", ["model=module", "model.target=lazy:build", "model.image_size=16"])
    assert done.code == 0 and "fc " in done.out
    done = run_main("layers", ["model=module", "model.target=lazy:not_a_module"])
    assert done.code == 2 and "model.target=lazy:not_a_module returned a str, not an nn.Module" in done.err


def test_a_probe_needs_labels_and_says_so():
    with pytest.raises(rp.ConfigError, match="a probe classifies: its data needs labels of at least two classes"):
        rp.probe(nn.Sequential(nn.Conv2d(3, 4, 3)), torch.rand(20, 3, 16, 16), ["0"], epochs=1)


def test_a_dataloader_or_dataset_is_data_with_its_labels_kept():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
    data = TensorDataset(torch.rand(6, 3, 16, 16), torch.arange(6))
    for given in (data, DataLoader(data, batch_size=4)):
        features = rp.extract(model, given, ["1"])
        assert features["1"].shape == (6, 4, 16, 16) and torch.equal(features.labels, torch.arange(6))
        assert [row["label"] for row in features.rows] == list(range(6))
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        features = rp.extract(rp.load(model, image_size=8), DataLoader(data, batch_size=4), ["1"])
    assert features["1"].shape == (6, 4, 8, 8)
    assert [str(w.message) for w in said if w.category is rp.InputWarning] == [
        "the data's images are resized to 8x8, the model's image_size (they are 16x16)"]
