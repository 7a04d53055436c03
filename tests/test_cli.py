"""The command line: help, the layer listing, end-to-end runs in a subprocess, and one-line errors."""

import json

import pytest
import torch
import torchvision

from representation_probe.cli.task import main
from representation_probe.data import SAMPLES

from .conftest import ENTRY_CONFIGS, cli, error_lines

TINY = ["model=resnet18", "model.image_size=32"]


@pytest.mark.slow
@pytest.mark.parametrize("args", [["--help"], []], ids=["--help", "no-args"])
def test_help_lists_the_commands(args, tmp_path):
    result = cli(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert all(command in result.stdout for command in ENTRY_CONFIGS)


@pytest.mark.slow
def test_unknown_command_fails_with_the_list(tmp_path):
    result = cli("frobnicate", cwd=tmp_path)
    assert result.returncode == 2
    assert "frobnicate" in result.stderr
    assert all(command in result.stderr for command in ENTRY_CONFIGS)


def listed_layers(stdout: str) -> dict[str, str]:
    """`layers` output as {name: the rest of its line}."""
    return dict(line.split(maxsplit=1) for line in stdout.splitlines() if not line.startswith("#"))


def test_layers_prints_probe_points_first_with_shapes(run_main):
    result = run_main("layers", ["model=resnet18", "model.image_size=64"])
    layers = listed_layers(result.out)
    assert result.code == 0
    assert list(layers)[:5] == ["conv1", "conv2", "conv3", "conv4", "conv5"]
    assert layers["conv1"] == "(1, 64, 32, 32)  depth 0.2"
    assert layers["conv5"] == "(1, 512, 2, 2)  depth 1"  # resnet18: basic blocks, no expansion
    assert "conv1_raw" in layers and "layer1.0.conv1" in layers
    assert not result.run_dir.exists()  # prints only: no run directory


@pytest.mark.parametrize("model", ["vit_tiny", "timm"])
def test_layers_of_a_vit_lists_its_blocks_first_and_no_non_tensor_node(model, run_main):
    result = run_main("layers", [f"model={model}", "model.image_size=32"])
    layers = listed_layers(result.out)
    blocks = [name for name in layers if name.startswith("blocks.") and name.count(".") == 1]
    assert result.code == 0 and list(layers)[: len(blocks)] == blocks == [f"blocks.{i}" for i in range(len(blocks))]
    assert all(line.startswith("(") for line in layers.values())  # a tensor shape each
    for not_a_tensor in ("attn_mask", "is_causal", "patch_embed.getattr", "getattr", "patch_embed._assert"):
        assert not_a_tensor not in layers


@pytest.mark.slow
def test_invert_end_to_end_with_wandb_offline(tmp_path):
    run_dir = tmp_path / "run"
    result = cli("invert", *TINY, "layers=[conv1,conv2]", "inversion.steps=5", "logger=wandb",
                 f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [(entry["layer"], entry["relative_depth"]) for entry in summary] == [("conv1", 0.2), ("conv2", 0.4)]
    assert (run_dir / "config.yaml").is_file() and (run_dir / "metrics.csv").is_file()
    assert list(run_dir.glob("wandb/offline-run-*/*.wandb"))


@pytest.mark.slow
def test_a_failed_multirun_job_spares_the_others(tmp_path, run_cli):
    sweep = tmp_path / "sweep"
    result = run_cli("invert", "-m", *TINY, "layers=conv9,conv1", "inversion.steps=3", "logger=csv",
                     f"hydra.sweep.dir={sweep}")
    assert result.code == 2 and "Traceback" not in result.err  # Hydra re-raised the first failure
    conv9 = "unknown layer 'conv9' for resnet18; did you mean conv5"
    lines = error_lines(result.err)
    assert lines[0].startswith(f"error: {conv9}")  # as the job failed, then the summary at the end:
    assert lines[-2:-1] == [f"error: 1 of 2 jobs of the multirun in {sweep} failed:"]
    assert lines[-1].startswith(f"  {sweep / '0'}: {conv9}")
    assert json.loads((sweep / "1" / "summary.json").read_text())["layer"] == "conv1"


@pytest.mark.slow
def test_bad_input_in_a_fresh_process_is_one_line_and_exit_code_2(tmp_path):
    result = cli("invert", *TINY, "images=missing.png", "logger=csv", f"hydra.run.dir={tmp_path / 'run'}",
                 cwd=tmp_path)
    assert result.returncode == 2
    assert error_lines(result.stderr) == [
        f"error: image not found: missing.png (an image is a file path or a sample: {', '.join(SAMPLES)})"]


BAD_INPUTS = {  # overrides -> what the one error line must mention
    "unknown-model": (["model.name=resnet7"], ["resnet7", "resnet18"]),
    "unknown-family": (["model.family=vgg"], ["vgg", "resnet", "timm", "mlp", "vit"]),
    "unknown-layer": (["layers=conv9"], ["conv9", "did you mean conv5", "probe points: conv1, conv2"]),
    "non-tensor-node": (["model=vit_tiny", "layers=attn_mask"], ["attn_mask", "blocks.0"]),
    "option-of-another-family": (["+model.depth=3"], ["model.depth", "resnet family"]),
    "missing-image": (["images=missing.png"], ["missing.png"]),
    "unreadable-image": (["images=x.png"], ["x.png"]),
    "missing-weights": (["model.weights=missing.pt"], ["missing.pt"]),
    "wrong-architecture": (["model=resnet34", "model.weights=resnet18.pt"], ["resnet18.pt", "resnet34"]),
    "unknown-weights-version": (["model.weights=IMAGENET1K_V9"], ["IMAGENET1K_V9", "IMAGENET1K_V1"]),
    "zero-steps": (["inversion.steps=0"], ["inversion.steps"]),
    "zero-steps-per-batch": (["inversion.steps_per_batch=0"], ["inversion.steps_per_batch"]),
    "zero-image-size": (["model.image_size=0"], ["image_size"]),
    "negative-image-size": (["model.image_size=-8"], ["image_size"]),
    "unknown-normalize": (["model.normalize=cifar"], ["cifar", "imagenet"]),
    # issue 10: each of these ran silently wrong or crashed with a traceback
    "unknown-loss": (["inversion.loss=foo"], ["inversion.loss", "l1, l2", "'foo'"]),
    "negative-lr": (["inversion.lr=-1"], ["inversion.lr", "positive", "-1"]),
    "text-lr": (["inversion.lr=abc"], ["inversion.lr", "'abc'"]),
    "lr-schedule-of-three": (["inversion.lr=[1,2,3]"], ["inversion.lr", "[start, end]"]),
    "text-seed": (["seed=abc"], ["seed", "integer", "'abc'"]),
    "fractional-seed": (["seed=1.5"], ["seed", "integer", "1.5"]),
    "image-below-ssim-window": (["model.image_size=5"], ["model.image_size", "at least 6", "5"]),
    "vit-size-off-its-patches": (["model=vit_b_16", "model.image_size=40"], ["model.image_size", "multiple of 16"]),
    "timm-similar-names": (["model=timm", "model.name=resnet_18"], ["resnet_18", "resnet18"]),
    "zero-shift": (["inversion.shift_std=0"], ["inversion.shift_std", "positive"]),
}
REFUSED_BY_THE_SCHEMA = {  # overrides -> what the one line must mention; Hydra refuses them while composing
    "boolean-steps": (["inversion.steps=true"], ["inversion.steps", "True", "Integer"]),
    "fractional-steps": (["inversion.steps=2.5"], ["inversion.steps", "2.5", "Integer"]),
    "clamp-not-a-bool": (["inversion.clamp=maybe"], ["inversion.clamp", "maybe", "bool"]),
    "typo-in-a-group": (["inversion.stepz=3"], ["inversion.stepz", "stepz"]),
    "typo-in-a-model": (["model=mlp", "model.widht=3"], ["model.widht", "widht"]),
}


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad_inputs")
    (folder / "x.png").write_text("not an image\n")
    torch.save(torchvision.models.resnet18().state_dict(), folder / "resnet18.pt")
    return folder


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_bad_input_is_one_error_line_before_any_work(name, bad_files, run_main, monkeypatch):
    monkeypatch.chdir(bad_files)
    overrides, mentions = BAD_INPUTS[name]
    code, _, stderr, run_dir = run_main("invert", [*TINY, "layers=conv2", "inversion.steps=3", "logger=csv",
                                                   *overrides])
    assert code == 2
    lines = error_lines(stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert all(word in lines[0] for word in mentions), lines[0]
    assert json.loads((run_dir / "failure.json").read_text())["error"] == lines[0].removeprefix("error: ")
    assert not (run_dir / "summary.json").exists()  # nothing ran


@pytest.mark.parametrize("name", REFUSED_BY_THE_SCHEMA)
def test_a_wrong_type_or_unknown_key_is_refused_in_one_line_before_the_job_starts(name, run_cli, tmp_path):
    overrides, mentions = REFUSED_BY_THE_SCHEMA[name]
    run_dir = tmp_path / "run"
    code, _, stderr, _ = run_cli("invert", *TINY, "logger=csv", *overrides, f"hydra.run.dir={run_dir}")
    lines = error_lines(stderr)
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert all(word in lines[0] for word in mentions), lines[0]
    assert not run_dir.exists()  # refused while composing: no job, no run directory


def test_a_new_run_clears_the_failure_of_an_earlier_attempt(run_main, hydra_job):
    code, _, _, run_dir = run_main("invert", [*TINY, "layers=conv9", "logger=csv"])
    assert code == 2 and (run_dir / "failure.json").is_file()
    cfg, _ = hydra_job("invert", [*TINY, "layers=conv1", "inversion.steps=2", "logger=csv"], run_dir=run_dir)
    main(cfg)
    assert (run_dir / "summary.json").is_file() and not (run_dir / "failure.json").exists()
