"""rp.open round-trips every study: save -> open gives the same rows, curves and tensors (tensors.pt holds them
exactly; PNGs are for people), for extract, invert, decode, probe, similarity, tradeoff and the atlas."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision
from torch import nn

import representation_probe as rp

SIZE = 16


def same(a, b) -> bool:
    """Equal as saved: tensors exactly, containers element by element, NaN as null (JSON has no NaN)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[key], b[key]) for key in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and math.isnan(a):
        return b is None or (isinstance(b, float) and math.isnan(b))
    return a == b


def round_trip(result, tmp_path, directory=None):
    opened = rp.open(result.save(directory or tmp_path / result.command))
    assert type(opened) is type(result)
    assert same(result.rows, opened.rows) and same(result.history_rows, opened.history_rows)
    for name in result.tensors:
        if name != "probes":
            assert same(getattr(result, name), getattr(opened, name)), name
    return opened


@pytest.fixture(scope="module")
def model():
    return rp.load(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1),
                                 nn.ReLU()))


@pytest.fixture(scope="module")
def data():
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(30, 3, SIZE, SIZE, generator=gen)
    return images, (images[:, 0].mean(dim=(1, 2)) > 0.5).long()


def test_extract_invert_and_similarity_come_back_whole(model, data, tmp_path):
    images, labels = data
    dataset = torch.utils.data.TensorDataset(images[:6], labels[:6])
    features = round_trip(rp.extract(model, dataset, ["1", "3"]), tmp_path)
    assert features["3"].shape == (6, 8, 8, 8) and torch.equal(features.labels, labels[:6])
    inversion = round_trip(rp.invert(model, images[:2], layers=["1", "3"], steps=3, seed=[0, 1]), tmp_path)
    assert inversion.a_g.shape == (8, 3, SIZE, SIZE)
    comparison = round_trip(rp.similarity([model], images[:12], metrics=["cka"]), tmp_path)
    assert comparison.matrix("cka").shape == (3, 3)


def test_decode_probe_and_tradeoff_come_back_whole(model, data, tmp_path):
    images, labels = data
    decoding = round_trip(rp.decode(model, images, ["1", "3"], epochs=1, colour_images=2, eval_images=images[:2],
                                    inversion=None), tmp_path)
    assert set(decoding.reconstructions) == {"1", "3"} and decoding.colour_examples
    probing = rp.probe(model, (images, labels), ["1", "3"], epochs=1, batch_size=8)
    opened = round_trip(probing, tmp_path)
    for ours, theirs in zip(probing.probes.state_dict().values(), opened.probes.state_dict().values()):
        assert torch.equal(ours, theirs)  # the trained heads, rebuilt
    trade = rp.tradeoff((images, labels), max_steps=4, val_every=2)
    assert round_trip(trade, tmp_path).reconstructions is not None


def test_a_run_of_several_seeds_opens_with_each_seeds_run(model, data, tmp_path):
    images, labels = data
    probing = rp.probe(model, (images, labels), ["3"], epochs=1, batch_size=8, seed=[0, 1], directory=tmp_path / "p")
    opened = round_trip(probing, tmp_path, tmp_path / "p")  # beside its seeds' runs, as the command line saves it
    assert sorted(opened.by_seed) == [0, 1] and opened.by_seed[1].probes is not None


@pytest.mark.slow
def test_an_atlas_comes_back_with_each_study_and_moves_with_its_directory(tmp_path):
    atlas = rp.atlas("resnet10", data=rp.dataset("patches", count=48, val_count=24, test_count=24), image_size=SIZE,
                     images=["chelsea"], directory=tmp_path / "atlas",
                     studies=dict(invert=dict(steps=3), probe=dict(epochs=1), similarity=dict(metrics=["cka"])))
    moved = tmp_path / "elsewhere"
    (tmp_path / "atlas").rename(moved)
    opened = rp.open(moved)
    assert same(atlas.rows, opened.rows) and set(opened.studies) == set(atlas.studies)
    for key, study in atlas.studies.items():
        assert same(study.rows, opened.studies[key].rows), key
    inversion = opened.studies[("invert", atlas.rows[0]["label"], 0)]
    assert torch.equal(inversion.a_g, atlas.studies[("invert", atlas.rows[0]["label"], 0)].a_g)


def test_a_short_repr_names_the_result_not_its_tensors(model, data):
    inversion = rp.invert(model, data[0][:1], layers="3", steps=2)
    text = repr(inversion)
    assert len(text) < 200 and "a_g 1x3x16x16" in text and "tensor(" not in text
    assert len(repr(rp.load(torchvision.models.resnet18()))) < 120
