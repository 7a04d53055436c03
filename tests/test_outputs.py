"""The run directory of `invert`, the unit of record (DESIGN.md)."""

import csv
import json
import stat

import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image

from representation_probe import ConfigError
from representation_probe.data import load_target
from representation_probe.runs import rundir

SIZE = 32
BASE = ["model=resnet18", f"model.image_size={SIZE}", "inversion.steps=5", "inversion.record_every=10", "logger=csv"]
SUMMARY_KEYS = {"command", "model", "weights", "layer", "image", "seed", "steps", "lr", "blur", "m_g", "m_i",
                "m_s", "m_i_ref", "m_g_over_m_s", "psnr", "ssim", "seconds"}
METRICS_COLUMNS = ["step", "layer", "image", "seed", "loss", "m_g", "m_i", "lr"]


def read_metrics(run_dir) -> list[dict]:
    with open(run_dir / "metrics.csv", newline="") as file:
        return list(csv.DictReader(file))


def png(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


def assert_no_temporary_files(run_dir):
    assert not [p.name for p in run_dir.rglob(".*")]  # e.g. '.summary.json.x1y2' from rundir.write_atomic


def test_single_inversion_run_directory(run_task):
    m_g, run_dir = run_task("invert", [*BASE, "layers=conv2", "images=chelsea", "seed=0"])

    config = (run_dir / "config.yaml").read_text()
    assert "${" not in config
    config = OmegaConf.create(config)
    assert config.layers == "conv2" and config.model.image_size == SIZE and "hydra" not in config

    summary = json.loads((run_dir / "summary.json").read_text())
    assert isinstance(summary, dict)
    assert SUMMARY_KEYS <= set(summary)
    assert (summary["command"], summary["model"], summary["layer"], summary["image"], summary["seed"],
            summary["steps"]) == ("invert", "resnet18", "conv2", "chelsea", 0, 5)
    assert summary["m_g"] == pytest.approx(m_g)  # the number a sweeper optimises
    assert summary["m_g_over_m_s"] == pytest.approx(summary["m_g"] / summary["m_s"])

    rows = read_metrics(run_dir)
    assert list(rows[0])[: len(METRICS_COLUMNS)] == METRICS_COLUMNS
    assert int(rows[-1]["step"]) == 5 and float(rows[-1]["m_g"]) == pytest.approx(m_g)

    images = run_dir / "images"
    assert sorted(p.name for p in images.iterdir()) == [
        "a_g_conv2_chelsea_seed0.png", "shifted_chelsea_seed0.png", "target_chelsea.png"]
    expected = (load_target("chelsea", SIZE) * 255).round().byte().permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(png(images / "target_chelsea.png"), expected)
    assert png(images / "a_g_conv2_chelsea_seed0.png").shape == (SIZE, SIZE, 3)
    assert_no_temporary_files(run_dir)


def test_batched_inversion_run_directory(run_task, tmp_path):
    picture = tmp_path / "pic.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(picture)
    _, run_dir = run_task("invert", [*BASE, "layers=[conv1,conv2]", f"images=[chelsea,{picture}]", "seed=[0,1]"])

    summary = json.loads((run_dir / "summary.json").read_text())
    assert isinstance(summary, list) and len(summary) == 2 * 2 * 2
    assert all(SUMMARY_KEYS <= set(entry) for entry in summary)
    assert {(e["layer"], e["image"], e["seed"]) for e in summary} == {
        (layer, image, seed) for layer in ("conv1", "conv2") for image in ("chelsea", "pic") for seed in (0, 1)}

    rows = read_metrics(run_dir)
    assert len(rows) == len(summary) * 2  # recorded at step 0 and at the end (every 10 steps, of 5)
    assert {int(r["step"]) for r in rows} == {0, 5}

    names = {p.name for p in (run_dir / "images").iterdir()}
    assert {n for n in names if n.startswith("target_")} == {"target_chelsea.png", "target_pic.png"}
    assert len([n for n in names if n.startswith("shifted_")]) == 2 * 2  # per image and seed
    assert len([n for n in names if n.startswith("a_g_")]) == 8  # per sample
    assert png(run_dir / "images" / "target_pic.png").shape == (SIZE, SIZE, 3)
    assert_no_temporary_files(run_dir)

    run = rundir.read_run(run_dir)  # what the report reads, through the same names
    assert (run.command, run.status, run.config["layers"]) == ("invert", "done", ["conv1", "conv2"])
    assert [(s["layer"], s["image"], s["seed"]) for s in run.summaries] == [(e["layer"], e["image"], e["seed"])
                                                                          for e in summary]
    assert len(run.metrics) == len(rows) and run.metrics[0]["m_g"] == float(rows[0]["m_g"])
    for s in run.summaries:
        assert run.a_g(s["layer"], s["image"], s["seed"]).is_file() and run.shifted(s["image"], s["seed"]).is_file()


@pytest.mark.parametrize("second", ["b/cat.png", "chelsea.png"], ids=["two-files", "file-named-like-a-sample"])
def test_two_images_with_the_same_name_are_refused_not_merged(run_task, tmp_path, second):
    for name, value in (("a/cat.png", 0), (second, 255)):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        Image.fromarray(np.full((40, 40, 3), value, np.uint8)).save(tmp_path / name)
    first = "chelsea" if second == "chelsea.png" else tmp_path / "a" / "cat.png"
    with pytest.raises(ConfigError, match="share a name"):
        run_task("invert", [*BASE, "layers=conv1", f"images=[{first},{tmp_path / second}]"], run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()  # refused before any work


def test_failed_atomic_write_keeps_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "summary.json"
    rundir.write_json(path, {"m_g": 1.0})
    with pytest.raises(TypeError):
        rundir.write_atomic(path, "not bytes")
    assert json.loads(path.read_text()) == {"m_g": 1.0}
    assert_no_temporary_files(tmp_path)


def test_run_files_are_as_readable_as_any_other_file(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("")
    written = tmp_path / "summary.json"
    rundir.write_json(written, {})
    assert oct(stat.S_IMODE(written.stat().st_mode)) == oct(stat.S_IMODE(plain.stat().st_mode))  # umask decides
