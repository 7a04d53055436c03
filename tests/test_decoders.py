"""Learned inverse decoders: networks, learning, chained and cross decoding, colour, the command."""

import json

import pytest
import torch

from representation_probe import ConfigError
from representation_probe.decoders import Decoder, DecoderModule, colour, to_grid
from representation_probe.models import FeatureExtractor
from representation_probe.reporting import write_report

from . import wandb_records
from .conftest import build_model, cli, error_lines

SIZE = 32
TINY = ["model=resnet10", "dataset=patches", f"dataset.image_size={SIZE}", "dataset.count=384",
        "dataset.val_count=64", "dataset.batch_size=32", "dataset.workers=0", "logger=csv", "inversion.steps=10",
        "decode.colour_images=2"]


# ---- networks ------------------------------------------------------------------------------------
@pytest.mark.parametrize("in_size, out_size", [((1, 1), (32, 32)), ((4, 4), (32, 32)), ((8, 8), (8, 8)),
                                               ((7, 7), (28, 28)), ((3, 3), (32, 32)), ((2, 3), (25, 40))])
def test_a_decoder_maps_any_grid_to_the_output_size(in_size, out_size):
    decoder = Decoder(20, in_size, 3, out_size, width=16, min_width=8)
    out = decoder(torch.randn(2, 20, *in_size))
    assert out.shape == (2, 3, *out_size)
    assert 0 <= out.min() and out.max() <= 1  # an image: sigmoid
    embedding = Decoder(20, in_size, 7, out_size, image=False)(torch.randn(2, 20, *in_size))
    assert embedding.shape == (2, 7, *out_size) and embedding.min() < 0  # an embedding: linear


def test_layer_outputs_become_grids():
    maps = torch.randn(2, 5, 4, 4)
    assert to_grid(maps) is maps
    tokens = torch.randn(2, 1 + 9, 6)  # a class token and a 3 x 3 patch grid of width 6
    grid = to_grid(tokens, prefix_tokens=1)
    assert grid.shape == (2, 6, 3, 3)
    torch.testing.assert_close(grid[:, :, 1, 2], tokens[:, 1 + 1 * 3 + 2])  # row-major patches
    assert to_grid(torch.randn(2, 7)).shape == (2, 7, 1, 1)
    with pytest.raises(ConfigError, match=r"no decoder for a layer output of shape \(2, 3, 4, 5, 6\).*token sequences"):
        to_grid(torch.randn(2, 3, 4, 5, 6))


# ---- the module -----------------------------------------------------------------------------------
def module(name: str, mode: str, layers=None) -> DecoderModule:
    backbone = build_model(name, SIZE)
    features = FeatureExtractor(backbone, layers or list(backbone.probe_points))
    return DecoderModule(features, optimizer=torch.optim.Adam, mode=mode, width=16, min_width=8)


def test_chained_decoding_composes_the_stage_inverses_down_to_the_first_layer():
    decoders = module("resnet10", "chained").eval()
    images = torch.rand(2, 3, SIZE, SIZE)
    grids = decoders.grids(images)
    assert list(decoders.stages) == ["conv2", "conv3", "conv4", "conv5"]  # one inverse per stage after the first
    for previous, layer in zip(decoders.layers, decoders.layers[1:]):
        assert decoders.stages[layer](grids[layer]).shape == grids[previous].shape
    with torch.no_grad():
        by_hand = decoders.direct["conv1"](decoders.stages["conv2"](decoders.stages["conv3"](grids["conv3"])))
    torch.testing.assert_close(decoders.reconstruct(images, chained=True)["conv3"], by_hand)
    torch.testing.assert_close(decoders.reconstruct(images, chained=True)["conv1"],
                               decoders.reconstruct(images)["conv1"])  # the first layer has no stage


@pytest.mark.parametrize("name, full", [("vit_tiny", True), ("resnet10", False)])
def test_the_cross_matrix_feeds_every_layer_of_the_same_shape_to_every_decoder(name, full):
    decoders = module(name, "cross").eval()
    errors = decoders.cross(torch.rand(2, 3, SIZE, SIZE))
    n = len(decoders.layers)
    assert errors.shape == (n, n)
    assert bool(torch.isfinite(errors.diagonal()).all())
    assert bool(torch.isfinite(errors).all()) == full  # ViT blocks share a shape; ResNet stages do not


def test_unknown_mode_is_refused():
    with pytest.raises(ConfigError, match="unknown decode.mode 'sideways'; allowed: direct, chained, cross"):
        module("resnet10", "sideways")


# ---- colour ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("condition", list(colour.CONDITIONS))
def test_the_colour_measure_is_1_for_the_perturbed_and_0_for_the_original_colours(condition):
    images, masks = colour.shapes(3, (SIZE, SIZE), seed=0)
    assert masks.any() and not masks.all()  # objects on a background
    perturbed = colour.perturb(images, masks, condition)
    assert torch.equal(perturbed[:, :, ~masks[0]][0], images[:, :, ~masks[0]][0]) or condition == "grayscale"
    assert colour.colour_kept(perturbed, images, perturbed, masks)["kept"] == 1.0
    assert colour.colour_kept(images, images, perturbed, masks)["kept"] == 0.0
    halfway = colour.colour_kept(images, images, perturbed, masks)["to_perturbed"]
    assert halfway > 10  # degrees of hue (or saturation points) between the original and the perturbed


# ---- the command ----------------------------------------------------------------------------------
@pytest.fixture(scope="session")  # kept however the tests that read it are ordered
def decoded(tmp_path_factory):
    """One decode run of a tiny ResNet on photo patches, W&B offline, shared by the tests below (a real
    subprocess)."""
    run_dir = tmp_path_factory.mktemp("decode") / "run"
    result = cli("decode", *(a for a in TINY if a != "logger=csv"), "logger=wandb", "trainer.max_epochs=6",
                 "decode.layers=[conv1,conv2]", f"hydra.run.dir={run_dir}", cwd=run_dir.parent)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


@pytest.mark.slow
@pytest.mark.xdist_group("decoded")
def test_a_decode_run_logs_its_layers_against_relative_depth_to_wandb(decoded):
    run = wandb_records.the_run(decoded)
    logged = wandb_records.summary(run)
    assert logged["config"]["command"] == "decode" and logged["config"]["layer"] == "conv1,conv2"
    rows = json.loads((decoded / "summary.json").read_text())
    held = {r["layer"]: r for r in rows if r["image"] == "held-out"}
    assert logged["summary"]["final/conv2/held-out/psnr"] == pytest.approx(held["conv2"]["psnr"], rel=1e-6)
    per_decoder = {f"{stage}/direct/{layer}" for stage in ("train", "val") for layer in ("conv1", "conv2")}
    assert wandb_records.metric_keys(run) == {"train/loss", "val/loss", "epoch", "trainer/global_step", *per_decoder}
    table = json.loads(next(run.glob("files/media/table/decode/results*.table.json")).read_text())
    assert table["columns"][:3] == ["layer", "image", "relative_depth"] and len(table["data"]) == len(rows)
    assert "_charts/decode/psnr_by_depth" in str(wandb_records.records(run))


@pytest.mark.slow
@pytest.mark.xdist_group("decoded")  # one worker trains the decoders they read
def test_decoders_learn_and_beat_the_mean_image_on_held_out_patches(decoded):
    rows = json.loads((decoded / "summary.json").read_text())
    held = {r["layer"]: r for r in rows if r["image"] == "held-out"}
    assert list(held) == ["conv1", "conv2"] and held["conv1"]["relative_depth"] == 0.2
    for r in held.values():
        assert r["psnr"] > r["baseline_psnr"] + 1, r  # more than the trivial decoder
    with open(decoded / "metrics.csv") as file:
        header, *epochs = [line.split(",") for line in file.read().splitlines()]
    loss = header.index("train/loss")
    assert len(epochs) == 6 and float(epochs[-1][loss]) < 0.7 * float(epochs[0][loss])


@pytest.mark.slow
@pytest.mark.xdist_group("decoded")  # one worker trains the decoders they read
def test_evaluation_images_are_scored_beside_their_gradient_inversion(decoded):
    rows = [r for r in json.loads((decoded / "summary.json").read_text()) if r["image"] != "held-out"]
    assert {(r["layer"], r["image"]) for r in rows} == {(layer, image) for layer in ("conv1", "conv2")
                                                         for image in ("chelsea", "astronaut")}
    for r in rows:
        assert r["psnr"] > 0 and r["inversion_psnr"] > 0 and r["inversion_seconds"] > 0
        assert (decoded / "images" / f"decoded_{r['layer']}_{r['image']}.png").is_file()
        assert (decoded / "images" / f"a_g_{r['layer']}_{r['image']}_seed0.png").is_file()
    state = torch.load(decoded / "decoders.ckpt", weights_only=False)
    assert state["layers"] == ["conv1", "conv2"] and any(k.startswith("direct.conv2.") for k in state["state_dict"])


@pytest.mark.slow
@pytest.mark.xdist_group("decoded")  # one worker trains the decoders they read
def test_the_report_has_a_decoder_section(decoded):
    page = write_report([decoded], decoded).read_text()
    assert "Learned decoders" in page and "Colour perturbation" in page and "Failed" not in page
    assert (decoded / "report_files" / "decoders_by_depth.png").is_file()


@pytest.mark.parametrize("overrides, words", [
    (["decode.mode=sideways"], ["decode.mode", "direct, chained, cross"]),
    (["model=vit_tiny", "decode.layers=[blocks.0.attn.reshape]"], ["no decoder", "token sequences"]),
    (["eval_images=[missing.png]"], ["image not found", "missing.png"]),
    (["dataset.val_count=1"], ["1 validation images", "decode.held_out"]),
    (["decode.held_out=1.5"], ["decode.held_out", "between 0 and 1"]),
    (["seed=[0,1]", "ckpt_path=last"], ["ckpt_path=last", "each of seeds [0, 1]", "leave ckpt_path null"]),
], ids=["mode", "unsupported-layer", "missing-image", "too-small", "held-out", "one-checkpoint-for-seeds"])
def test_bad_input_is_one_line(run_main, overrides, words):
    result = run_main("decode", [*TINY, "trainer.max_epochs=1", *overrides])
    assert result.code == 2
    lines = error_lines(result.err)
    assert len(lines) == 1 and all(word in lines[0] for word in words), result.err


@pytest.mark.slow
def test_decoders_train_with_ddp_on_cpu(tmp_path):
    run_dir = tmp_path / "ddp"
    result = cli("decode", *TINY, "trainer=ddp_cpu", "trainer.max_epochs=1", "decode.layers=[conv2]",
                 "decode.inversion=null", "eval_images=[chelsea]", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "MEMBER: 2/2" in result.stdout + result.stderr
    rows = json.loads((run_dir / "summary.json").read_text())
    assert [r["image"] for r in rows] == ["held-out", "chelsea"]  # written once, by rank zero
    assert all(r["cached"] for r in rows)  # decode.cache=auto: patches are not augmented; each rank caches all
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["global_step"] == 384 // (2 * 32)  # each rank trains on its own half of the 384 images
