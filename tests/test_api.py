"""The library on any model: the same functions invert, decode, probe and compare a torchvision module, a timm
model by name, a Hugging Face ViT built from its config and a small module of one's own; results come back as
tensors and long-form frames, read back from their run directories; the user's module is left as it was."""

from __future__ import annotations

import ctypes
import gc
import json
import os

import pytest
import torch
import torchvision
import transformers
from torch import nn

import representation_probe as rp
from representation_probe.api.results import IDS
from representation_probe.models import prefix_tokens

SIZE = 32


class Tiny(nn.Module):
    """Ten lines of a user's own: torch.fx cannot trace it (it branches on a value), so hooks read its layers."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.norm, self.head = nn.BatchNorm2d(16), nn.Linear(16, 5)

    def forward(self, x):
        x = torch.relu(self.conv1(x))
        x = self.norm(self.conv2(x)).relu()
        if x.mean() > -1:  # data-dependent control flow
            x = x * 1.0
        return self.head(x.mean(dim=(2, 3)))


def hf_vit() -> nn.Module:
    config = transformers.ViTConfig(image_size=SIZE, patch_size=8, hidden_size=24, num_hidden_layers=3,
                                    num_attention_heads=2, intermediate_size=48)
    return transformers.AutoModel.from_config(config)


MODELS = {  # name -> (model as a user has it, a layer named as its own naming has it)
    "torchvision": (lambda: torchvision.models.resnet18(), "layer2"),
    "timm": (lambda: "timm/resnet10t", "layer2"),
    "hugging-face": (hf_vit, "layers.1"),
    "own-module": (Tiny, "conv2"),
}


@pytest.fixture(scope="module")
def data():
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(40, 3, SIZE, SIZE, generator=gen)
    return images, (images[:, 0].mean(dim=(1, 2)) > 0.5).long()  # a learnable label: the red channel's level


@pytest.mark.parametrize("name", MODELS)
def test_any_model_is_inverted_decoded_probed_and_compared_by_the_same_functions(name, data):
    build, layer = MODELS[name]
    model = rp.load(build(), image_size=SIZE)
    images, labels = data
    inversion = rp.invert(model, images[:2], layers=layer, steps=6)
    assert inversion.a_g.shape == (2, 3, SIZE, SIZE) and inversion.rows[0]["layer"] == layer
    history = inversion.history
    assert history["m_g"].iloc[-1] < history["m_g"].iloc[0]  # the descent went down
    decoding = rp.decode(model, images, [layer], epochs=1, colour_images=0, eval_images=images[:2], inversion=None)
    assert decoding.reconstructions[layer].shape == (2, 3, SIZE, SIZE)
    probing = rp.probe(model, (images, labels), [layer], epochs=2, batch_size=8)
    assert 0 <= probing.accuracy[layer] <= 1
    comparison = rp.similarity([model, model], images, metrics=["cka"])
    assert comparison.matrix("cka").shape[0] == 1 + 2 * len(model.probe_points)  # the pixels and both models
    for result in (inversion, decoding, probing, comparison):
        frame = result.to_frame()
        assert list(frame.columns[: len(IDS)]) == list(IDS) and len(frame) and frame["value"].notna().all()
        assert set(frame["model"]) == {model.name}


def test_a_loaded_model_names_its_layers_and_takes_them_by_index_depth_alias_or_module():
    net = torchvision.models.resnet18()
    model = rp.load(net, image_size=SIZE)
    table = rp.layers(model)
    assert list(table.columns) == ["layer", "alias", "output", "shape", "relative_depth", "probe_point"]
    points = table[table.probe_point]
    assert list(points.layer) == ["relu", "layer1", "layer2", "layer3", "layer4"]
    assert list(points.alias) == ["conv1", "conv2", "conv3", "conv4", "conv5"]  # the paper's names
    assert tuple(table.set_index("layer").loc["layer2", "shape"]) == (1, 128, 4, 4)
    features = rp.extract(model, torch.rand(2, 3, SIZE, SIZE), [0, -1, 0.6, net.layer2, "conv3"])
    assert list(features.features) == ["conv1", "conv5", "conv3", "layer2"]  # conv3 and layer2: two names, one node
    torch.testing.assert_close(features["conv3"], features["layer2"])
    with pytest.raises(rp.ConfigError, match="unknown layer 'layer22' for resnet18; did you mean layer2"):
        rp.extract(model, torch.rand(1, 3, SIZE, SIZE), "layer22")


def test_a_hugging_face_block_is_what_output_hidden_states_returns():
    vit = hf_vit().eval()
    model = rp.load(vit)
    assert model.input_size == (SIZE, SIZE) and list(model.probe_points) == ["layers.0", "layers.1", "layers.2"]
    assert prefix_tokens(model) == 1  # the class token before 16 patches
    images = torch.rand(2, 3, SIZE, SIZE)
    features = rp.extract(model, images, ["layers.1"])
    with torch.no_grad():
        hidden = vit(images, output_hidden_states=True).hidden_states
    torch.testing.assert_close(features["layers.1"], hidden[2])


def test_a_hugging_face_model_loads_offline_from_its_directory_with_its_processors_normalisation(tmp_path):
    vit = hf_vit().eval()
    vit.save_pretrained(tmp_path)
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({"image_mean": [0.5] * 3, "image_std": [0.25] * 3}))
    model = rp.load(f"hf/{tmp_path}")
    assert model.weights == "pretrained" and model.normalize == ((0.5,) * 3, (0.25,) * 3)
    images = torch.rand(1, 3, SIZE, SIZE)
    with torch.no_grad():
        expected = vit((images - 0.5) / 0.25, output_hidden_states=True).hidden_states[3]
    torch.testing.assert_close(rp.extract(model, images, ["layers.2"])["layers.2"], expected)
    with pytest.raises(rp.ConfigError, match="could not be read offline"):
        rp.load("hf/nobody/no-such-model")


def test_a_users_module_comes_back_as_it_was_with_no_hook_left():
    net = Tiny().train()
    net.conv1.weight.requires_grad_(False)  # the user's own choices, to be kept
    net.head.inplace = True  # an attribute a study turns off while it runs
    images = torch.rand(2, 3, 16, 16)
    for _ in range(3):
        rp.extract(net, images, pool="mean")
        rp.invert(net, images[:1], "conv2", steps=2)
    assert net.training and all(m.training for m in net.modules())
    assert [p.requires_grad for p in net.parameters()] == [False] + [True] * 7 and net.head.inplace is True
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in net.modules())
    assert all(p.grad is None for p in net.parameters())  # no weight gradient accumulated by the inversions


@pytest.mark.slow
def test_calls_in_a_row_keep_no_memory():
    """Each call traces and folds a copy of the weights; they had stayed in the process (~15 MB a call here)."""
    net, images = torchvision.models.resnet18(), torch.rand(1, 3, 16, 16)
    rp.extract(net, images)
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    before = resident_mb()
    for _ in range(10):
        rp.extract(net, images)
    assert resident_mb() - before < 25  # 150 MB before the fix


def resident_mb() -> float:
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_the_library_prints_nothing_unasked_and_reports_progress_to_a_callback(capfd):
    seen = []
    rp.invert("resnet10", torch.rand(1, 3, SIZE, SIZE), "conv2", steps=4, steps_per_batch=1,
              progress=lambda done, total, metrics: seen.append((done, total)))
    out, err = capfd.readouterr()
    assert out == "" and err == "", (out, err)
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_results_saved_are_read_back_as_the_same_objects(tmp_path, data):
    images, labels = data
    model = rp.load("resnet10", image_size=SIZE)
    inversion = rp.invert(model, {"noise": images[0]}, ["conv1", "conv3"], seed=[0, 1], steps=3)
    back = rp.open(inversion.save(tmp_path / "invert"))
    assert isinstance(back, rp.Inversion) and back.rows == json.loads(json.dumps(inversion.rows))
    assert torch.equal(back.a_g, inversion.a_g)  # exactly, from tensors.pt (the PNGs are 8-bit)
    assert back.to_frame().equals(inversion.to_frame()) and len(back.history) == len(inversion.history)
    comparison = rp.similarity(model, images[:16], metrics=["cka", "mknn"], mknn_k=3)
    read = rp.open(comparison.save(tmp_path / "similarity"))
    assert read.matrix("mknn").equals(comparison.matrix("mknn"))
    with pytest.raises(rp.ConfigError, match="holds no result"):
        rp.open(tmp_path)
