"""The `similarity` command: what its run directory holds, that every model sees the same images, the
minibatch and on-disk paths, the report and W&B, and bad input as one line before any work."""

import csv
import json

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from representation_probe.data import PatchDataModule
from representation_probe.metrics.cka import cka_matrix, linear_cka
from representation_probe.metrics.neighbours import information_imbalance
from representation_probe.models import FeatureExtractor, create_model, pool
from representation_probe.reporting import write_report
from representation_probe.similarity.results import Similarity

from . import wandb_records
from .conftest import cli, compose_config, error_lines
from .test_training import write_folder

N = 24
TINY = [f"dataset.count={N}", "dataset.image_size=32", "dataset.batch_size=10", "mknn_k=3", "logger=csv"]


def read_csv(path) -> list[dict]:
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


@pytest.mark.slow
def test_run_directory_of_a_resnet_and_a_vit(run_task):
    _, run_dir = run_task("similarity", [*TINY, "models=[resnet18,vit_tiny]"])
    result = Similarity.load(run_dir / "similarity.npz")
    assert result.models == ["resnet18 untrained", "vit_tiny untrained"]
    assert result.layer == ["pixels", "conv1", "conv2", "conv3", "conv4", "conv5", *(f"blocks.{i}" for i in range(6))]
    assert result.depth[:3] == [0.0, 0.2, 0.4] and result.depth[-1] == 1.0
    size = len(result.layer)
    cka, knn, ii = (result.matrices[m] for m in ("cka", "mknn", "ii"))
    assert cka.shape == knn.shape == ii.shape == (size, size)
    assert np.allclose(np.diag(cka), 1) and np.allclose(np.diag(knn), 1) and np.allclose(np.diag(ii), 2 / N)
    assert np.allclose(cka, cka.T) and not np.allclose(ii, ii.T)  # II is asymmetric: both directions kept

    # the pixels are layer 0 of each model's axis; the CSV of a pair is that block of the matrix
    assert result.axis(1) == [0, *range(6, 12)]
    table = read_csv(run_dir / "cka_model0_model1.csv")
    assert [row["layer"] for row in table] == ["pixels", "conv1", "conv2", "conv3", "conv4", "conv5"]
    assert list(table[0])[2:] == ["pixels (0)", *(f"blocks.{i} ({(i + 1) / 6:.3g})" for i in range(6))]
    assert np.allclose([[float(v) for v in list(row.values())[2:]] for row in table], result.block("cka", 0, 1))
    assert {p.name for p in run_dir.glob("*_model*_model*.csv")} == {
        f"{m}_model{a}_model{b}.csv" for m in ("cka", "mknn", "ii") for a, b in ((0, 0), (0, 1), (1, 1))}

    # processing steps: 1 - CKA between consecutive representations; what is left of the pixels
    profiles = read_csv(run_dir / "profiles.csv")
    vit = [r for r in profiles if r["model"] == "vit_tiny untrained" and r["metric"] == "cka"]
    assert [r["layer"] for r in vit] == ["pixels", *(f"blocks.{i}" for i in range(6))] and vit[0]["step"] == ""
    assert float(vit[2]["step"]) == pytest.approx(1 - cka[6, 7])
    assert float(vit[3]["vs_pixels"]) == pytest.approx(cka[8, 0])
    best = [r for r in read_csv(run_dir / "best_match.csv") if r["metric"] == "cka" and r["model"] == "resnet18 untrained"]
    assert [r["layer"] for r in best] == ["conv1", "conv2", "conv3", "conv4", "conv5"]
    for r in best:
        i = result.layer.index(r["layer"])
        assert float(r["value"]) == pytest.approx(max(cka[i, j] for j in result.axis(1)))

    summary = json.loads((run_dir / "summary.json").read_text())
    assert len(summary) == 6 + 7 and {s["command"] for s in summary} == {"similarity"}
    conv3 = next(s for s in summary if s["layer"] == "conv3")
    assert conv3["relative_depth"] == 0.6 and conv3["file"] == "similarity.npz" and conv3["images"] == N
    assert conv3["cka_step"] == pytest.approx(1 - cka[2, 3]) and conv3["ii_vs_pixels"] == pytest.approx(ii[3, 0])
    assert {p.name for p in run_dir.glob("*.png")} == {"similarity_cka.png", "similarity_mknn.png",
                                                       "similarity_ii.png", "profiles.png"}

    # the numbers are those of the metric functions on features extracted here, from the held-out crops
    images = held_out_images(N)
    resnet = create_model("resnet", "resnet18", image_size=32)
    conv3_features = pool(FeatureExtractor(resnet, ["conv3"])(images)["conv3"], "mean")
    assert cka[0, 3] == pytest.approx(linear_cka(images.flatten(1), conv3_features), abs=1e-6)
    assert ii[3, 0] == pytest.approx(information_imbalance(conv3_features, images.flatten(1)), abs=1e-9)


def held_out_images(n: int) -> torch.Tensor:
    datamodule = PatchDataModule(count=n, val_count=n, image_size=32)
    datamodule.setup("validate")
    return next(iter(DataLoader(datamodule.val_set, batch_size=n)))[0]


@pytest.mark.slow
def test_every_model_sees_the_same_images_in_the_same_order(run_task):
    """Two identical models: every layer of one is identical to the same layer of the other."""
    _, run_dir = run_task("similarity", [*TINY, "models=[resnet18,resnet18]", "dataset.batch_size=7"])
    result = Similarity.load(run_dir / "similarity.npz")
    assert result.models == ["resnet18 untrained #0", "resnet18 untrained #1"]
    for metric, same in (("cka", 1.0), ("mknn", 1.0), ("ii", 2 / N)):
        assert np.allclose(np.diag(result.block(metric, 0, 1)), same)
        assert np.allclose(result.block(metric, 0, 1), result.block(metric, 0, 0))
    best = read_csv(run_dir / "best_match.csv")
    assert all(r["best_layer"] == r["layer"] for r in best if r["metric"] == "cka")


@pytest.mark.slow
def test_weights_per_model_from_a_file(run_task, tmp_path):
    other = create_model("resnet", "resnet18", init_seed=1, num_classes=12)
    torch.save(other.net.state_dict(), tmp_path / "seed1.pt")
    # +model.num_classes reaches both models: the file's 12-class head would not load into 1000 classes
    _, run_dir = run_task("similarity", [*TINY, "models=[resnet18,resnet18]", f"weights=[none,{tmp_path / 'seed1.pt'}]",
                                         "metrics=[cka]", "+model.num_classes=12"])
    result = Similarity.load(run_dir / "similarity.npz")
    assert result.models == ["resnet18 untrained", "resnet18 seed1"]
    cross = np.diag(result.block("cka", 0, 1))
    assert cross[0] == pytest.approx(1) and np.all(cross[1:] < 0.999)  # pixels shared, layers differ
    assert set(result.matrices) == {"cka"}
    images = held_out_images(N)
    for classes, same in ((12, True), (1000, False)):  # the head size changes the random draw of every layer
        untrained = create_model("resnet", "resnet18", image_size=32, num_classes=classes)
        conv5 = pool(FeatureExtractor(untrained, ["conv5"])(images)["conv5"], "mean")
        assert (abs(result.matrices["cka"][0, 5] - linear_cka(images.flatten(1), conv5)) < 1e-6) == same


@pytest.mark.slow
def test_minibatch_cka_with_one_batch_equals_the_full_debiased_estimator(run_task):
    common = [*TINY, "models=[resnet18]", "metrics=[cka]"]
    _, full_dir = run_task("similarity", [*common, "debiased=true"])
    _, one_dir = run_task("similarity", [*common, f"cka_batch_size={N}"])
    _, many_dir = run_task("similarity", [*common, "cka_batch_size=6"])
    full, one, many = (Similarity.load(d / "similarity.npz").matrices["cka"] for d in (full_dir, one_dir, many_dir))
    assert np.allclose(one, full, atol=1e-10)
    assert not np.allclose(many, full, atol=1e-3)  # four batches of six: a different estimate of the same thing
    assert np.allclose(np.diag(many), 1)


@pytest.mark.slow
def test_features_beyond_the_memory_limit_go_to_disk_with_the_same_result(run_task):
    common = [*TINY, "models=[resnet18]", "metrics=[mknn,ii]", "pool=flatten"]
    _, memory_dir = run_task("similarity", common)
    _, disk_dir = run_task("similarity", [*common, "memory_gb=0.001"])  # 1 MiB: the flattened maps do not fit
    for metric in ("mknn", "ii"):
        assert np.array_equal(Similarity.load(memory_dir / "similarity.npz").matrices[metric],
                              Similarity.load(disk_dir / "similarity.npz").matrices[metric])
    assert not (disk_dir / "features").exists()  # scratch removed


@pytest.mark.slow
def test_an_image_folder_compares_its_whole_validation_split(run_task, tmp_path):
    write_folder(tmp_path / "images" / "train")
    write_folder(tmp_path / "images" / "val", per_class=3)
    _, run_dir = run_task("similarity", ["models=[resnet18]", "dataset=folder", f"dataset.root={tmp_path / 'images'}",
                                         "dataset.image_size=32", "mknn_k=2", "logger=csv"])
    assert json.loads((run_dir / "summary.json").read_text())[0]["images"] == 9


@pytest.mark.slow
def test_report_shows_heatmaps_and_profiles(run_task, tmp_path):
    _, run_dir = run_task("similarity", [*TINY, "models=[resnet18,vit_tiny]", "metrics=[cka,ii]"])
    page = write_report([run_dir], tmp_path / "report").read_text()
    assert "Similarity of layers" in page and "resnet18 untrained vs vit_tiny untrained" in page
    files = {p.name for p in (tmp_path / "report" / "report_files").iterdir()}
    assert files == {f"similarity_0_{run_dir.name}_{name}.png" for name in ("cka", "ii", "profiles")}
    assert "Failed or incomplete" not in page


def test_experiment_pairs_each_comparison_s_models_with_their_weights():
    sweep = compose_config("similarity", ["experiment=similarity_depth"], hydra=True).hydra.sweeper.params
    for comparison in sweep.comparison.split(","):
        cfg = compose_config("similarity", ["experiment=similarity_depth", f"comparison={comparison}"])
        assert len(cfg.models) == len(cfg.weights) >= 2 and cfg.model.num_classes == 12
        assert all(w == "none" or w.endswith("/checkpoints/last.ckpt") for w in cfg.weights)
    assert set(sweep.pool.split(",")) == {"mean", "flatten"}


@pytest.mark.parametrize("overrides, message", [
    (["metrics=[cka,svcca]"], "unknown metric 'svcca'; allowed: cka, mknn, ii"),
    (["mknn_k=24"], f"mknn_k must be an integer from 1 to {N - 1} (fewer than the {N} inputs"),
    (["metrics=[ii]", "ii_k=0"], "ii_k must be an integer from 1 to"),
    (["model.image_size=16"], "every model sees the same images, and the data's are 32x32 (dataset.image_size): "
                              "resnet18 16x16"),
    (["weights=[none,none,none]"], "weights has 3 entries for 2 models"),
    (["models=[resnet18,resnet9000]"], "unknown model 'resnet9000'; models (conf/model/): hf, mlp, module, resnet10"),
    (["cka_batch_size=5"], "cka_batch_size=5 must divide the 24 images"),
    (["pool=cls"], "pool=cls takes the class token of a token sequence"),
    (["memory_gb=0.00001"], "set cka_batch_size"),  # 10 KiB
])
def test_bad_input_is_one_line_before_any_work(run_main, overrides, message):
    result = run_main("similarity", [*TINY, "models=[resnet18,vit_tiny]", *overrides])
    assert result.code == 2
    lines = error_lines(result.err)
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert not (result.run_dir / "similarity.npz").exists()


@pytest.mark.slow
def test_cli_composes_each_model_inside_the_app_and_logs_figures_to_wandb(tmp_path):
    run_dir = tmp_path / "run"
    done = cli("similarity", "models=[resnet10,vit_tiny]", "model.init_seed=3", f"dataset.count={N}",
               "dataset.image_size=32", "mknn_k=3", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert {s["model"] for s in summary} == {"resnet10", "vit_tiny"}
    reference = create_model("resnet", "resnet10", image_size=32, init_seed=3)  # model.* reached every model
    images = held_out_images(N)
    conv5 = pool(FeatureExtractor(reference, ["conv5"])(images)["conv5"], "mean")
    cka = Similarity.load(run_dir / "similarity.npz").matrices["cka"]
    assert cka[0, 5] == pytest.approx(float(cka_matrix([images, conv5])[0, 1]), abs=1e-6)
    run = wandb_records.the_run(run_dir)
    images_logged = [row for row in wandb_records.history(run) if "similarity/figures._type" in row]
    assert images_logged and images_logged[0]["similarity/figures.count"] == 4
    # per-layer values in one table and against relative depth; the models' names as config
    logged = wandb_records.summary(run)
    assert logged["config"]["command"] == "similarity" and logged["config"]["model"] == "resnet10,vit_tiny"
    assert {"final/cka_vs_pixels", "final/resnet10/conv5/cka_vs_pixels", "similarity/results"} <= set(logged["summary"])
    assert list(run.glob("files/media/table/similarity/results*.table.json"))
    charts = [r for r in wandb_records.records(run) if r.get("type") == "config"]
    assert any("_charts/similarity/cka_vs_pixels_by_depth" in str(r) for r in charts)
