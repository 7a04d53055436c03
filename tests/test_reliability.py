"""Issue 10: no traceback, nothing lost. Bad input of every kind is one `error:` line and exit code 2
before any work; files that readers find (checkpoints, summaries, images) are whole or named."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from representation_probe.data import load_target
from representation_probe.models import create_model

from .conftest import error_lines
from .test_training import TINY as TRAIN, write_folder

INVERT = ["model=resnet10", "model.image_size=16", "layers=conv2", "inversion.steps=3", "logger=csv"]
TRAIN_NOISE = [*TRAIN, "dataset.count=16", "dataset.val_count=8", "dataset.image_size=16", "dataset.batch_size=8"]


def one_error_line(result) -> str:
    """The single `error:` line of a failed command (asserting there is exactly one, and exit code 2)."""
    lines = error_lines(result.err)
    assert result.code == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.err
    return lines[0].removeprefix("error: ")


# ---- the command line: composition errors, report arguments, unwritable directories ----------------
def test_an_unknown_model_is_one_line_with_the_models(run_cli, tmp_path):
    line = one_error_line(run_cli("invert", "model=resnet99", f"hydra.run.dir={tmp_path / 'run'}"))
    assert line.startswith("unknown model 'resnet99'; allowed: hf, mlp, module, resnet10, resnet101")
    assert "vit_tiny" in line and "search path" not in line
    assert not (tmp_path / "run").exists()  # nothing ran


def test_a_misspelt_key_is_one_line(run_cli, tmp_path):
    line = one_error_line(run_cli("invert", "inversion.stpes=5", f"hydra.run.dir={tmp_path / 'run'}"))
    assert line.startswith("unknown key inversion.stpes (did you mean inversion.steps?); inversion takes ")
    assert "+" not in line  # not Hydra's advice to add it, which would run with the key ignored


def test_an_override_that_does_not_parse_is_one_line(run_cli, tmp_path):
    line = one_error_line(run_cli("invert", "seed=[1,", f"hydra.run.dir={tmp_path / 'run'}"))
    assert line.startswith("cannot parse the override 'seed=[1,'")


def test_report_without_directories_says_how_to_call_it(run_cli):
    assert "report <dir>" in one_error_line(run_cli("report"))


DENIED = ("Permission denied", "Operation not permitted")  # EACCES, EPERM (sysfs refuses root so)


def unwritable_directory() -> Path:
    """A directory nobody may create files in, also root (whom file modes do not stop): sysfs."""
    path = Path("/sys")
    try:
        (path / "representation_probe_test").mkdir()
    except OSError:
        return path
    pytest.skip("no unwritable directory on this machine")


def test_an_unwritable_working_directory_is_one_line(run_cli, monkeypatch):
    monkeypatch.chdir(unwritable_directory())
    line = one_error_line(run_cli("invert", *INVERT))
    assert line in {f"cannot access outputs: {why}" for why in DENIED}, line


def finished_inversion(run_task, run_dir: Path) -> Path:
    run_task("invert", INVERT, run_dir=run_dir)
    return run_dir


def test_report_reads_a_job_directory_named_by_its_overrides(run_cli, run_task, tmp_path):
    job = finished_inversion(run_task, tmp_path / "sweep" / "layer=conv2,seed=0")
    result = run_cli("report", str(job))
    assert result.code == 0, result.err
    assert "conv2" in (job / "report.html").read_text()


def test_report_lists_a_broken_summary_and_reports_the_rest(run_main, run_task, tmp_path):
    finished_inversion(run_task, tmp_path / "runs" / "good")
    broken = finished_inversion(run_task, tmp_path / "runs" / "broken")
    text = (broken / "summary.json").read_text()
    (broken / "summary.json").write_text(text[: len(text) // 2])  # cut short, as a full disk leaves it
    result = run_main("report", [f"runs=[{tmp_path / 'runs'}]"])
    assert result.code == 0, result.err
    page = (tmp_path / "runs" / "report.html").read_text()
    assert "Failed or incomplete jobs (1)" in page and "broken" in page and "summary.json: unreadable" in page
    assert "distances.png" in page and "good" in page  # the rest is reported


def test_report_into_an_unwritable_directory_is_one_line(run_main, run_task, tmp_path):
    run = finished_inversion(run_task, tmp_path / "run")
    line = one_error_line(run_main("report", [f"runs=[{run}]", f"out={unwritable_directory() / 'report'}"]))
    assert line in {f"cannot access /sys/report: {why}" for why in DENIED}, line


# ---- invert: silent wrong results ----------------------------------------------------------------
def test_a_16_bit_grayscale_png_keeps_its_gray_levels(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (64, 1))  # black to white, left to right
    Image.fromarray(ramp).save(tmp_path / "ramp16.png")
    assert Image.open(tmp_path / "ramp16.png").mode == "I;16"
    target = load_target(str(tmp_path / "ramp16.png"), 64)
    assert abs(float(target.mean()) - 0.5) < 0.01  # convert("RGB") made it 97% white
    assert torch.equal(target[0], target[2]) and float(target[:, :, 0].max()) < 0.02


def test_an_absurd_but_finite_inversion_warns_in_the_log_and_the_summary(run_main, run_task, caplog):
    with caplog.at_level("WARNING"):
        run_dir = run_main("invert", [*INVERT, "inversion.lr=1e6", "inversion.steps=5"]).run_dir
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["m_i"] > 100 and any("farther from the target" in w for w in summary["warnings"])
    assert any("inversion.lr too large" in r.getMessage() for r in caplog.records)
    _, calm = run_task("invert", INVERT)
    assert json.loads((calm / "summary.json").read_text())["warnings"] == []


def test_a_corrupt_file_in_the_torch_hub_cache_is_named(run_main, tmp_path, monkeypatch):
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(torchvision.models.resnet18().state_dict(), cache / "full.pth")
    data = (cache / "full.pth").read_bytes()
    (cache / "resnet18-f37072fd.pth").write_bytes(data[: len(data) // 3])  # an interrupted download
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    line = one_error_line(run_main("invert", [*INVERT, "model=resnet18", "model.weights=imagenet"]))
    assert str(cache / "resnet18-f37072fd.pth") in line and "delete the file" in line


def test_timm_imagenet_weights_load_when_the_model_takes_no_image_size(tmp_path):
    import timm

    torch.manual_seed(3)
    saved = timm.create_model("resnet18", pretrained=False)
    torch.save(saved.state_dict(), tmp_path / "resnet18_timm.pth")
    backbone = create_model("timm", "resnet18", weights="imagenet", image_size=32,
                            pretrained_cfg_overlay={"file": str(tmp_path / "resnet18_timm.pth")})
    assert torch.equal(backbone.net.conv1.weight, saved.conv1.weight)


TINY_VIT = dict(patch_size=4, depth=2, embed_dim=96, num_heads=3)


def test_timm_imagenet_weights_come_from_the_hugging_face_cache_without_the_network(tmp_path, monkeypatch):
    import huggingface_hub
    import timm
    from safetensors.torch import save_file
    from timm.models import get_pretrained_cfg

    torch.manual_seed(4)
    saved = timm.create_model("vit_tiny_patch16_224", img_size=32, **TINY_VIT)
    repo = get_pretrained_cfg("vit_tiny_patch16_224").hf_hub_id  # the cache's layout: refs/main -> a snapshot
    snapshot = tmp_path / f"models--{repo.replace('/', '--')}" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    save_file(saved.state_dict(), snapshot / "model.safetensors")
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("abc123")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(timm.models._hub, "hf_hub_download", _no_network)
    backbone = create_model("timm", "vit_tiny_patch16_224", weights="imagenet", image_size=32, **TINY_VIT)
    assert torch.equal(backbone.net.blocks[1].mlp.fc2.weight, saved.blocks[1].mlp.fc2.weight)


def test_timm_imagenet_weights_not_cached_offline_name_the_file_at_once(tmp_path, monkeypatch):
    import huggingface_hub

    from representation_probe.models.families.timm_models import _reachable

    if _reachable("huggingface.co"):
        pytest.skip("the Hugging Face Hub is reachable here: timm would download the weights")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ValueError, match=r"not cached and the Hugging Face Hub is unreachable; download "
                                         r"https://huggingface.co/timm/vit_tiny_patch16_224\.\S+/model\.safetensors"):
        create_model("timm", "vit_tiny_patch16_224", weights="imagenet", image_size=32, **TINY_VIT)


def _no_network(*args, **kwargs):
    raise AssertionError("asked the Hugging Face Hub for a file that is in the cache")


# ---- train: bad input, bad data, another model -----------------------------------------------------
NOISE = ["dataset.count=16", "dataset.val_count=8"]
BAD_TRAIN_INPUTS = {  # overrides -> what the one error line must mention
    "folder-without-root": (["dataset=folder"], ["dataset.root", "required"]),
    "one-class-folder": (["dataset=folder", "dataset.root={one_class}"], ["only red/", "at least 2 class"]),
    "flat-tree-as-imagenet": (["dataset=imagenet", "dataset.root={flat}"], ["train/<class>/", "dataset=folder"]),
    "zero-count": (["dataset.count=0"], ["dataset.count", "positive", "0"]),
    "negative-count": (["dataset.count=-3"], ["dataset.count", "-3"]),
    "text-epochs": ([*NOISE, "trainer.max_epochs=abc"], ["trainer.max_epochs", "'abc'"]),
    "zero-epochs": ([*NOISE, "trainer.max_epochs=0"], ["trainer.max_epochs", "positive"]),
    "negative-seed": ([*NOISE, "seed=-1"], ["seed", ">= 0"]),
    "missing-checkpoint": ([*NOISE, "ckpt_path=nowhere.ckpt"], ["nowhere.ckpt", "null, last or a file"]),
}


@pytest.mark.parametrize("name", BAD_TRAIN_INPUTS)
def test_bad_training_input_is_one_line_before_any_work(name, run_main, tmp_path):
    write_folder(tmp_path / "one_class", classes=("red",))
    write_folder(tmp_path / "flat")
    overrides, mentions = BAD_TRAIN_INPUTS[name]
    paths = dict(one_class=tmp_path / "one_class", flat=tmp_path / "flat")
    result = run_main("train", [*TRAIN, "dataset.image_size=16", *(o.format(**paths) for o in overrides)])
    line = one_error_line(result)
    assert all(word in line for word in mentions), line
    assert json.loads((result.run_dir / "failure.json").read_text())["error"] == line
    assert not (result.run_dir / "checkpoints").exists()


def test_a_training_summary_names_only_checkpoints_that_exist(run_task):
    _, run_dir = run_task("train", [*TRAIN_NOISE, "trainer.max_epochs=1", "~callbacks"])  # Lightning's own
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["checkpoint"] is None  # no last.ckpt: Lightning's default callback writes epoch=0-step=2.ckpt
    assert Path(summary["best_checkpoint"]).is_file()


def corrupt_image(folder: Path) -> Path:
    bad = folder / "green" / "3.png"
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])  # truncated: PIL fails while decoding
    return bad


def test_an_unreadable_image_in_a_worker_is_named_on_stderr_in_the_log_and_in_failure_json(run_cli, tmp_path):
    write_folder(tmp_path / "images", per_class=4)
    bad = corrupt_image(tmp_path / "images")
    run_dir = tmp_path / "run"
    result = run_cli("train", *TRAIN, "dataset=folder", f"dataset.root={tmp_path / 'images'}", "dataset.workers=2",
                     "dataset.image_size=16", "dataset.batch_size=4", "trainer.max_epochs=1", f"hydra.run.dir={run_dir}")
    line = one_error_line(result)
    assert line.startswith(f"cannot read image {bad} (") and "dataset.skip_bad=true" in line
    assert json.loads((run_dir / "failure.json").read_text())["error"] == line
    assert f"error: {line}" in (run_dir / "train.log").read_text()


def test_skip_bad_skips_and_counts_unreadable_images(run_task, tmp_path):
    write_folder(tmp_path / "images", per_class=4)
    bad = corrupt_image(tmp_path / "images")
    _, run_dir = run_task("train", [*TRAIN, "dataset=folder", f"dataset.root={tmp_path / 'images'}",
                                    "dataset.skip_bad=true", "dataset.val_fraction=0.25", "dataset.image_size=16",
                                    "dataset.batch_size=3", "trainer.max_epochs=2"])  # 9 training images
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["skipped_files"] == 1 and summary["epochs"] == 2
    assert set((run_dir / "skipped_files.txt").read_text().split()) == {str(bad)}


def test_resuming_with_another_model_is_refused_and_keeps_the_run(run_task, run_main, tmp_path):
    _, run_dir = run_task("train", [*TRAIN_NOISE, "trainer.max_epochs=1"])
    before = {p: p.read_bytes() for p in [run_dir / "config.yaml", *(run_dir / "checkpoints").iterdir()]}
    line = one_error_line(run_main("train", [*TRAIN_NOISE, "trainer.max_epochs=2", "model=resnet18"], run_dir))
    assert line.startswith(f"{run_dir / 'checkpoints'}/") and "holds a resnet10 model" in line
    assert "resnet18" in line and "hydra.run.dir" in line
    assert {p: p.read_bytes() for p in before} == before  # nothing written over
