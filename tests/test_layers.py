"""Layer names of every family (the paper's on ResNets, blocks on ViTs) and the frozen forward map O_l."""

import pytest
import torch
import torchvision
from torch import nn

from representation_probe import ConfigError
from representation_probe.models import (FeatureExtractor, LayerEmbedder, layer_shapes, pool, prefix_tokens,
                                         resolve_layers)
from representation_probe.models.families.resnet import ALIASES as RESNET_ALIASES

from .conftest import build_model

SIZE = 64
ALIASES = list(RESNET_ALIASES)
RESNETS = ["resnet18", "resnet34", "resnet50",
           pytest.param("resnet101", marks=pytest.mark.slow), pytest.param("resnet152", marks=pytest.mark.slow)]


def assert_same_values(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """Equal up to float rounding at the output's scale: the embedder may reorder or fuse operations
    (e.g. fold BatchNorm into the convolution before it), a wrong layer differs at order one."""
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5 * float(expected.abs().max()))


def expected_shapes(net: torchvision.models.ResNet, size: int) -> dict[str, tuple]:
    """From the architecture: a stride-2 7x7 conv, a stride-2 max-pool, then stages of stride 1, 2, 2, 2
    whose widths are 64, 128, 256, 512 times the block's expansion (1 basic, 4 bottleneck)."""
    stem = (1, 64, size // 2, size // 2)
    shapes = {"conv1_raw": stem, "conv1": stem, "conv1_pool": (1, 64, size // 4, size // 4)}
    side = size // 4
    for i, stage in enumerate([net.layer1, net.layer2, net.layer3, net.layer4]):
        side = side if i == 0 else side // 2
        shapes[f"conv{i + 2}"] = (1, 64 * 2**i * type(stage[-1]).expansion, side, side)
    return shapes


@pytest.mark.parametrize("name", RESNETS)
def test_aliases_have_the_architectures_shapes(name):
    backbone = build_model(name, SIZE)
    expected = expected_shapes(backbone.net, SIZE)
    embedder = LayerEmbedder(backbone, ALIASES)
    x = torch.rand(1, 3, SIZE, SIZE)
    with torch.no_grad():
        assert {a: tuple(embedder(x, a).shape) for a in ALIASES} == expected


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_layer_shapes_lists_probe_points_then_aliases_with_the_same_shapes(name):
    backbone = build_model(name, SIZE)
    shapes = layer_shapes(backbone)  # what `python -m representation_probe layers` prints
    points = ["conv1", "conv2", "conv3", "conv4", "conv5"]
    assert list(backbone.probe_points) == points and list(backbone.probe_points.values()) == [0.2, 0.4, 0.6, 0.8, 1.0]
    assert list(shapes)[:7] == [*points, "conv1_raw", "conv1_pool"]
    assert {a: shapes[a] for a in ALIASES} == expected_shapes(backbone.net, SIZE)
    assert shapes["layer1.0.conv1"] == (1, 64, SIZE // 4, SIZE // 4)


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_conv5_is_the_forward_through_layer4(name):
    backbone = build_model(name, SIZE)
    net = backbone.net
    x = torch.rand(2, 3, SIZE, SIZE)
    with torch.no_grad():
        by_hand = net.layer4(net.layer3(net.layer2(net.layer1(net.maxpool(net.relu(net.bn1(net.conv1(x))))))))
        assert_same_values(LayerEmbedder(backbone, ["conv5"])(x, "conv5"), by_hand)


def test_stem_aliases():
    backbone = build_model("resnet18", SIZE)
    net = backbone.net
    embedder = LayerEmbedder(backbone, ["conv1_raw", "conv1"])
    x = torch.rand(2, 3, SIZE, SIZE)
    with torch.no_grad():
        assert_same_values(embedder(x, "conv1_raw"), net.conv1(x))
        assert_same_values(embedder(x, "conv1"), torch.relu(net.bn1(net.conv1(x))))


def test_imagenet_normalisation_is_part_of_the_forward_map():
    backbone = build_model("resnet18", SIZE, "model.normalize=imagenet")
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    x = torch.rand(2, 3, SIZE, SIZE)
    with torch.no_grad():
        embedded = LayerEmbedder(backbone, ["conv1_raw"])(x, "conv1_raw")
        assert_same_values(embedded, backbone.net.conv1((x - mean) / std))


def test_graph_nodes_are_layers_too():
    backbone = build_model("resnet18", SIZE)
    resolved = resolve_layers(backbone, ["layer1.0.conv1", "conv3"])
    assert resolved["layer1.0.conv1"].node == "layer1.0.conv1"
    assert resolved["conv3"].node == "layer2.1.relu_1"  # the node layer2's forward returns
    net = backbone.net
    x = torch.rand(1, 3, SIZE, SIZE)
    with torch.no_grad():
        assert_same_values(LayerEmbedder(backbone, ["layer1.0.conv1"])(x, "layer1.0.conv1"),
                           net.layer1[0].conv1(net.maxpool(net.relu(net.bn1(net.conv1(x))))))


@pytest.mark.parametrize("layer, suggested", [("conv9", "conv5 or conv4 or conv3? "), ("Layer2", "layer2"),
                                               ("layer1.0.conv3", "layer1.0.conv2 "), ("blocks.3", None)])
def test_unknown_layer_names_the_probe_points_and_the_closest_layers(layer, suggested):
    backbone = build_model("resnet18", SIZE)
    with pytest.raises(ConfigError) as err:
        LayerEmbedder(backbone, [layer])
    message = str(err.value)
    assert message.startswith(f"unknown layer '{layer}' for resnet18; ")
    assert ("did you mean" in message) == (suggested is not None)
    if suggested:
        assert f"did you mean {suggested}" in message
    assert "probe points: conv1, conv2, conv3, conv4, conv5" in message
    assert f"lists all {len(layer_shapes(backbone))} layers" in message and "layer3.1.bn2" not in message


def test_backbone_is_frozen_without_in_place_relu():
    assert any(m.inplace for m in torchvision.models.resnet18().modules() if isinstance(m, nn.ReLU))
    backbone = build_model("resnet18", SIZE)
    embedder = LayerEmbedder(backbone, ["conv2"])
    for module in (backbone.net, embedder):
        assert not any(getattr(m, "inplace", False) for m in module.modules())
        assert not any(p.requires_grad for p in module.parameters())


def test_building_an_embedder_leaves_the_backbone_untouched():
    backbone = build_model("resnet18", SIZE)
    before = {name: type(m) for name, m in backbone.net.named_modules()}
    state = {k: v.clone() for k, v in backbone.net.state_dict().items()}
    LayerEmbedder(backbone, ALIASES)
    assert {name: type(m) for name, m in backbone.net.named_modules()} == before
    after = backbone.net.state_dict()
    assert after.keys() == state.keys() and all(torch.equal(after[k], v) for k, v in state.items())


def test_embedder_stays_in_eval_mode():
    embedder = LayerEmbedder(build_model("resnet18", SIZE), ["conv2"])
    embedder.train()
    assert not any(m.training for m in embedder.modules())


def test_embedder_passes_gradients_to_the_input_only():
    embedder = LayerEmbedder(build_model("resnet18", SIZE), ["conv3"])
    x = torch.rand(1, 3, SIZE, SIZE, requires_grad=True)
    embedder(x, "conv3").abs().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in embedder.parameters())


def test_under_bf16_autocast_only_the_layer_that_reads_the_image_stays_float32():
    """autocast would round the optimised image to bf16 at the stem; the deeper layers do run in bf16."""
    embedder = LayerEmbedder(build_model("resnet18", SIZE), ["conv1_raw", "conv2"])
    x = torch.rand(2, 3, SIZE, SIZE)
    with torch.no_grad():
        stem, deep = embedder(x, "conv1_raw"), embedder(x, "conv2")
        with torch.autocast("cpu", dtype=torch.bfloat16):
            stem_mixed, deep_mixed = embedder(x, "conv1_raw"), embedder(x, "conv2")
    assert stem_mixed.dtype == torch.float32 and torch.equal(stem_mixed, stem)
    assert not torch.equal(deep_mixed.float(), deep)  # layer1's convolutions ran in bf16 ...
    torch.testing.assert_close(deep_mixed.float(), deep, rtol=0.05, atol=0.05)  # ... as the same map


def test_layers_share_one_trace_and_its_folded_weights():
    embedder = LayerEmbedder(build_model("resnet18", SIZE), ["conv2", "conv4"])
    weights = [{id(p) for p in embedder.extractors[layer].parameters()} for layer in ("conv2", "conv4")]
    assert weights[0] < weights[1]  # conv2's weights are among conv4's: folded once, not copied
    assert not any(n.target.startswith("layer2") for n in embedder.extractors["conv2"].graph.nodes
                   if n.op == "call_module")  # each graph is cut after its own layer


def test_timm_vit_blocks_are_the_residual_stream_after_each_block():
    backbone = build_model("vit_tiny", 32)
    net = backbone.net
    assert list(backbone.probe_points) == [f"blocks.{i}" for i in range(6)] and backbone.default_layer == "blocks.5"
    embedder = LayerEmbedder(backbone, ["blocks.0", "blocks.5"])
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        tokens = net.norm_pre(net.patch_drop(net._pos_embed(net.patch_embed(embedder.normalize(x)))))
        after = [tokens := block(tokens) for block in net.blocks]
        assert_same_values(embedder(x, "blocks.0"), after[0])
        assert_same_values(embedder(x, "blocks.5"), after[5])
    assert after[0].shape == (2, 1 + (32 // 4) ** 2, 96)  # the class token and 8 x 8 patches of width 96


@pytest.mark.slow
def test_torchvision_vit_blocks_are_its_encoder_layers():
    backbone = build_model("vit_b_16", 32)
    net = backbone.net
    assert list(backbone.probe_points) == [f"blocks.{i}" for i in range(12)]
    x = torch.rand(1, 3, 32, 32)
    embedder = LayerEmbedder(backbone, ["blocks.0", "blocks.11"])
    with torch.no_grad():
        tokens = net._process_input(embedder.normalize(x))
        tokens = torch.cat([net.class_token.expand(1, -1, -1), tokens], dim=1) + net.encoder.pos_embedding
        after = [tokens := layer(tokens) for layer in net.encoder.layers]
        assert_same_values(embedder(x, "blocks.0"), after[0])
        assert_same_values(embedder(x, "blocks.11"), after[11])


def test_timm_model_runs_at_the_configured_image_size():
    backbone = build_model("timm", 32)  # vit_small_patch16_224, asked for 32 px inputs
    net = backbone.net
    with torch.no_grad():
        tokens = LayerEmbedder(backbone, ["blocks.0"])(torch.rand(1, 3, 32, 32), "blocks.0")
    patches = (32 // net.patch_embed.patch_size[0]) ** 2
    assert tokens.shape == (1, net.num_prefix_tokens + patches, net.embed_dim)


@pytest.mark.parametrize("name", ["resnet18", "vit_tiny"])
def test_one_forward_returns_every_probe_point_as_the_embedder_does(name):
    backbone = build_model(name, 32)
    layers = list(backbone.probe_points)
    features = FeatureExtractor(backbone, layers)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        outputs = features(x)
        embedder = LayerEmbedder(backbone, layers)
        assert list(outputs) == layers
        for layer in layers:
            assert_same_values(outputs[layer], embedder(x, layer))


def test_feature_extraction_is_truncated_after_the_deepest_layer():
    backbone = build_model("resnet18", SIZE)
    names = {name for name, _ in FeatureExtractor(backbone, ["conv1", "conv3"]).named_modules()}
    assert any(name.startswith("extractor.layer2") for name in names)
    assert not any(name.startswith(("extractor.layer3", "extractor.layer4", "extractor.fc")) for name in names)


def test_pooling_of_maps_tokens_and_vectors():
    maps = torch.arange(2 * 3 * 2 * 2, dtype=torch.float).view(2, 3, 2, 2)
    torch.testing.assert_close(pool(maps), maps.mean(dim=(2, 3)))
    assert pool(maps, "flatten").shape == (2, 12)
    tokens = torch.randn(2, 5, 4)
    torch.testing.assert_close(pool(tokens, "mean", prefix_tokens=1), tokens[:, 1:].mean(dim=1))
    torch.testing.assert_close(pool(tokens, "cls", prefix_tokens=1), tokens[:, 0])
    with pytest.raises(ConfigError, match="class token"):
        pool(tokens, "cls", prefix_tokens=0)
    with pytest.raises(ConfigError, match="spatial map"):
        pool(maps, "cls")
    assert prefix_tokens(build_model("vit_tiny", 32)) == 1 and prefix_tokens(build_model("resnet18", 32)) == 0
