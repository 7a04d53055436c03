"""One size policy, one normalisation policy, unique labels (api/images.py): a model loaded without a size follows
the data of every study, non-square included; a pinned size is honoured and a resize said once; the channels
follow the model; `normalize="auto"` and a model's name do not depend on how it was passed."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest
import torch
import torchvision
from torch import nn

import representation_probe as rp


def small() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU())


def quietly(study, *args, **kwargs):
    """The study's result, and the library's input warnings it gave."""
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        result = study(*args, **kwargs)
    return result, [w for w in said if issubclass(w.category, rp.InputWarning)]


def test_a_model_without_a_size_follows_the_tensors_it_is_given_non_square_too():
    model = rp.load(torchvision.models.resnet18())
    assert model.image_size is None and model.pinned_size is None
    inversion, said = quietly(rp.invert, model, torch.rand(3, 32, 32), layers="layer1", steps=2)
    assert inversion.a_g.shape == (1, 3, 32, 32) and not said  # not upsampled to 224
    inversion, said = quietly(rp.invert, model, torch.rand(3, 50, 40), layers="layer1", steps=2)
    assert inversion.a_g.shape == (1, 3, 50, 40) and not said  # not squashed or cropped
    features, _ = quietly(rp.extract, model, torch.rand(2, 3, 50, 40), ["layer1"])
    assert features["layer1"].shape == (2, 64, 13, 10)
    comparison, said = quietly(rp.similarity, [model, rp.load(torchvision.models.resnet18())], torch.rand(8, 3, 64, 64),
                               metrics=["cka"])
    assert comparison.rows[0]["image_size"] == 64 and not said
    with pytest.raises(rp.ConfigError, match="share one size, and these differ"):
        rp.invert(model, [torch.rand(3, 32, 32), torch.rand(3, 40, 40)], layers="layer1", steps=1)


def test_named_images_come_at_the_natural_size_and_a_pinned_size_is_honoured_and_said_once():
    model = rp.load(small())
    features, said = quietly(rp.extract, model, "chelsea", ["2"])
    assert features["2"].shape == (1, 8, 112, 112) and not said  # 224 px: a module's natural size
    pinned = rp.load(small(), image_size=(24, 32))
    inversion, said = quietly(rp.invert, pinned, torch.rand(2, 3, 48, 48), layers="2", steps=2)
    assert inversion.a_g.shape == (2, 3, 24, 32)
    assert len(said) == 1 and "2 image(s) resized to 24x32" in str(said[0].message)
    assert said[0].filename == __file__
    vit, said = quietly(rp.invert, rp.load("vit_tiny"), torch.rand(3, 16, 16), layers="blocks.0", steps=2)
    assert vit.a_g.shape == (1, 3, 32, 32) and len(said) == 1  # a ViT takes the size it was built for


def test_the_studies_that_train_follow_their_data():
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(30, 3, 24, 24, generator=gen)
    labels = (images[:, 0].mean(dim=(1, 2)) > 0.5).long()
    model = rp.load(small())
    decoding, said = quietly(rp.decode, model, images, ["2"], epochs=1, colour_images=0, eval_images=images[:2],
                             inversion=None)
    assert decoding.reconstructions["2"].shape == (2, 3, 24, 24) and not said
    probing, said = quietly(rp.probe, model, (images, labels), ["2"], epochs=1, batch_size=8)
    assert 0 <= probing.accuracy["2"] <= 1 and not said
    pinned = rp.load(small(), image_size=32)
    probing, said = quietly(rp.probe, pinned, (images, labels), ["2"], epochs=1, batch_size=8)
    assert len(said) == 1 and "30 images resized from 24x24 to 32x32" in str(said[0].message)


def test_the_channels_follow_the_model_or_are_refused_naming_both():
    gray = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 8, 3))
    inversion, said = quietly(rp.invert, gray, torch.rand(3, 32, 32), layers="2", steps=2)
    assert inversion.a_g.shape == (1, 1, 32, 32) and "turned grey" in str(said[0].message)
    inversion, said = quietly(rp.invert, gray, torch.rand(1, 32, 32), layers="2", steps=2)
    assert inversion.a_g.shape == (1, 1, 32, 32) and not said
    four = nn.Sequential(nn.Conv2d(4, 4, 3))
    with pytest.raises(rp.ConfigError, match=r"image image0 has 3 channel\(s\) and the model reads 4"):
        rp.invert(four, torch.rand(3, 32, 32), layers="0", steps=2)


def test_normalisation_and_names_do_not_depend_on_how_a_model_was_passed():
    assert rp.load(torchvision.models.resnet18()).normalize == rp.load("torchvision/resnet18").normalize == "imagenet"
    assert rp.load("resnet18").normalize == "none"  # the paper's preset says so
    assert rp.load(small()).normalize == "none"
    resnets = [rp.load(torchvision.models.resnet18()), rp.load(torchvision.models.resnet34())]
    assert [m.name for m in resnets] == ["resnet18", "resnet34"]
    x = torch.rand(2, 3, 32, 32)
    frame = pd.concat([rp.extract(m, x, ["conv5"]).to_frame() for m in resnets])
    assert frame.groupby("model").size().to_dict() == {"resnet18": 6, "resnet34": 6}
