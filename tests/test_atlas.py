"""The layer atlas: every study of every probe point, run once and found again, on one report page."""

import csv
import json
import re
import statistics
from pathlib import Path

import pytest

from . import wandb_records
from .conftest import error_lines

TINY = ["model=resnet10", "dataset.image_size=16", "images=[chelsea]", "dataset.count=96", "dataset.val_count=32",
        "dataset.batch_size=32", "studies.invert.steps=5", "studies.decode.epochs=1",
        "studies.decode.data.count=96", "studies.decode.data.val_count=32", "studies.probe.epochs=2",
        "studies.similarity.data.count=64", "studies.similarity.data.val_count=64",
        "training.patches=['dataset=patches','trainer.max_epochs=1']"]
COLUMNS = ["inversion_psnr", "inversion_m_g_over_m_s", "decoder_psnr", "probe_accuracy", "cka_vs_pixels", "cka_step"]


@pytest.mark.slow
def test_an_atlas_runs_its_studies_once_then_finds_them(tmp_path, run_cli):
    first = tmp_path / "first"
    done = run_cli("atlas", *TINY, "weights=[train:patches]", f"hydra.run.dir={first}")  # training: a subprocess
    assert done.code == 0, done.err[-3000:]
    rows = json.loads((first / "summary.json").read_text())
    layers = [row["layer"] for row in rows]
    assert layers == ["pixels", "conv1", "conv2", "conv3", "conv4", "conv5"]  # the pixels: CKA's depth 0
    assert [row["relative_depth"] for row in rows] == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    for row in rows[1:]:
        assert all(row[column] is not None for column in COLUMNS), row
        assert set(row["runs"]) == {"invert", "decode", "probe", "similarity"}
    assert rows[0]["cka_vs_pixels"] == pytest.approx(1.0)
    assert rows[0]["weights"].endswith("train/patches/checkpoints/last.ckpt")  # the recipe's model, trained here
    page = (first / "report.html").read_text()
    assert "Layer atlas" in page and (first / "atlas.png").is_file()
    sources = re.findall(r"<img src='([^']+)'", page)
    assert sources and all((first / src).is_file() for src in sources)

    again = tmp_path / "again"  # the same atlas elsewhere, told where the first one ran: nothing runs again
    done = run_cli("atlas", *TINY, "weights=[train:patches]", f"reuse=[{first}]", f"hydra.run.dir={again}")
    assert done.code == 0, done.err[-3000:]
    log = (again / "atlas.log").read_text()
    assert log.count("reusing") == 5 and "running:" not in log  # train + four studies
    reused = json.loads((again / "summary.json").read_text())
    assert [dict(row, runs=None) for row in reused] == [dict(row, runs=None) for row in rows]  # the same numbers
    assert all(Path(path).is_relative_to(first.resolve()) for row in reused for path in row["runs"].values())
    assert sorted(p.name for p in again.iterdir() if p.is_dir()) == [".hydra", "report_files", "wandb"]
    logged = wandb_records.summary(wandb_records.the_run(again))  # the atlas's rows, by layer and depth
    assert logged["config"]["command"] == "atlas" and logged["config"]["model"] == "resnet10"
    assert logged["summary"]["final/conv3/decoder_psnr"] == pytest.approx(rows[3]["decoder_psnr"], rel=1e-6)


@pytest.mark.parametrize("overrides, words", [
    (["weights=[train:imagenet21k]"], ["train:imagenet21k", "no training recipe", "patches, noise"]),
    (["+studies.vibes=[]"], ["unknown key studies.vibes", "studies takes decode, invert, probe, similarity"]),
    (["studies.invert=null", "studies.decode=null", "studies.probe=null", "studies.similarity=null"],
     ["no study", "invert, decode, probe, similarity"]),
], ids=["recipe", "study", "nothing"])
def test_bad_input_is_one_line(run_main, overrides, words):
    result = run_main("atlas", ["model=resnet10", *overrides])
    assert result.code == 2
    lines = error_lines(result.err)
    assert len(lines) == 1 and all(word in lines[0] for word in words), result.err


@pytest.mark.slow
def test_seeds_are_an_axis_of_the_atlas_its_table_and_figure_carry_their_spread(tmp_path):
    import representation_probe as rp

    data = rp.dataset("patches", image_size=16, count=64, val_count=64)
    studies = {"invert": {"steps": 3}, "similarity": {"metrics": ["cka"]}}
    atlas = rp.atlas("resnet10", data=data, images=["chelsea"], seed=[0, 1, 2], studies=studies, directory=tmp_path)
    assert [(r["layer"], r["seed"]) for r in atlas.rows] == [(layer, seed) for seed in (0, 1, 2) for layer in
                                                             ("pixels", "conv1", "conv2", "conv3", "conv4", "conv5")]
    assert sorted(p.name for p in (tmp_path / "invert" / "resnet10_untrained").iterdir()) == ["seed0", "seed1", "seed2"]
    conv3 = [r["cka_vs_pixels"] for r in atlas.rows if r["layer"] == "conv3"]
    assert len(set(conv3)) == 3  # an untrained network drawn from each seed
    with (tmp_path / "atlas.csv").open() as file:
        cells = {row["layer"]: row for row in csv.DictReader(file)}
    assert float(cells["conv3"]["cka_vs_pixels"]) == pytest.approx(statistics.mean(conv3))
    assert float(cells["conv3"]["cka_vs_pixels_sd"]) == pytest.approx(statistics.stdev(conv3))
    assert cells["conv3"]["seeds"] == "3"
    spread = atlas.spread().set_index(["layer", "metric"])
    assert spread.loc[("conv3", "cka_vs_pixels"), "sd"] == pytest.approx(statistics.stdev(conv3))
    page = (tmp_path / "report.html").read_text()
    assert "mean ± sd over 3 seeds" in page and f"{statistics.mean(conv3):.3g} ± {statistics.stdev(conv3):.3g}" in page
