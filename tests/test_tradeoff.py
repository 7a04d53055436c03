"""Classification vs reconstruction: the gradient routing, the architectures, the data, the command."""

from __future__ import annotations

import json
import re
from functools import partial

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import SequentialSampler

from representation_probe import ConfigError
from representation_probe.cli.shell import arguments
from representation_probe.data import DigitsDataModule, TorchvisionDataModule
from representation_probe.runs.rundir import read_run
from representation_probe.tradeoff import ARCHITECTURES, TradeoffModule, build_net

from .conftest import CONF, cli, compose_config, error_lines

SHAPES = [(1, 8, 8), (1, 28, 28), (3, 32, 32)]


def grads(loss: torch.Tensor, module: torch.nn.Module) -> list[torch.Tensor]:
    return [g if g is not None else torch.zeros_like(p)
            for g, p in zip(torch.autograd.grad(loss, list(module.parameters()), retain_graph=True, allow_unused=True),
                            module.parameters())]


@pytest.mark.parametrize("name", ["tradeoff_fc_medium", "tradeoff_cnn_small"])
@pytest.mark.parametrize("weight", [0.0, 0.3, 1.0])
def test_one_backward_routes_each_loss_to_its_parts(name, weight):
    """Decoder: dMSE only (unscaled, no CE); classifier: dCE only; encoder: w dMSE + (1 - w) dCE."""
    torch.manual_seed(0)
    net = build_net(name, (1, 8, 8), 10).double()  # float64: equal up to rounding, not up to float32 noise
    module = TradeoffModule(net, weight, partial(torch.optim.Adam, lr=1e-3))
    images, labels = torch.rand(16, 1, 8, 8, dtype=torch.float64), torch.randint(10, (16,))

    target = images * 2 - 1  # the separate losses, each on a plain forward
    z = net.encoder(target)
    mse, ce = F.mse_loss(net.decoder(z), target), F.cross_entropy(net.classifier(z), labels)
    expected = {
        "encoder": [weight * a + (1 - weight) * b for a, b in zip(grads(mse, net.encoder), grads(ce, net.encoder))],
        "decoder": grads(mse, net.decoder),
        "classifier": grads(ce, net.classifier),
    }
    assert all(g.abs().sum() == 0 for g in grads(ce, net.decoder))  # CE cannot reach the decoder at all
    assert all(g.abs().sum() == 0 for g in grads(mse, net.classifier))

    module.training_step((images, labels), 0).backward()  # the one backward
    for part, wanted in expected.items():
        got = [p.grad for p in getattr(net, part).parameters()]
        for g, e in zip(got, wanted):
            torch.testing.assert_close(g, e, rtol=1e-10, atol=1e-12)
    # the test can fail: the plain weighted loss would scale the decoder's gradient by w
    if weight != 1:
        naive = grads(weight * mse + (1 - weight) * ce, net.decoder)
        assert not all(torch.allclose(a, b) for a, b in zip(naive, expected["decoder"]))


def test_scaled_gradient_leaves_the_forward_exact():
    from representation_probe.tradeoff import scale_gradient

    z = torch.randn(5, 7, requires_grad=True)
    for factor in (0.0, 0.1, 1.0):
        assert torch.equal(scale_gradient(z, factor), z)
        (gradient,) = torch.autograd.grad(scale_gradient(z, factor).sum(), z)
        assert torch.equal(gradient, torch.full_like(z, factor))


@pytest.mark.parametrize("name", list(ARCHITECTURES))
@pytest.mark.parametrize("shape", SHAPES)
def test_architectures_fit_any_input_and_mnist_gets_the_original_sizes(name, shape):
    net = build_net(name, shape, 10)
    images = torch.randn(3, *shape)
    z = net.encoder(images)
    assert net.decoder(z).shape == images.shape and net.classifier(z).shape == (3, 10)
    assert z[0].numel() == net.latent_size
    assert net.decoder(z).abs().max() <= 1  # tanh: the range of x~
    if shape == (1, 28, 28):
        widths = [m.out_features for m in net.encoder.modules() if isinstance(m, torch.nn.Linear)]
        original = {"tradeoff_fc_small": [4], "tradeoff_fc_medium": [616, 4], "tradeoff_fc_large": [716, 684, 616, 4]}
        assert widths == original.get(name, [])
        latent = {"tradeoff_cnn_small": (16, 4, 4), "tradeoff_cnn_large": (128, 4, 4)}
        assert tuple(z.shape[1:]) == latent.get(name, (4,))


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_each_architecture_has_its_net_config(name):
    cfg = compose_config("tradeoff", [f"net={name}", "tradeoff.latent=3"])
    net = build_net(**arguments(cfg.net), input_shape=(1, 8, 8), num_classes=10, latent=cfg.tradeoff.latent)
    assert net.latent == 3 and net.classifier(net.encoder(torch.rand(2, 1, 8, 8))).shape == (2, 10)
    assert sorted(p.stem for p in (CONF / "net").glob("*.yaml")) == sorted(ARCHITECTURES)


def test_trade_off_nets_and_backbones_stay_in_their_groups_and_bad_settings_are_one_line(run_cli, run_main):
    for command, overrides, words in [("train", ["model=tradeoff_fc_small"], "unknown model 'tradeoff_fc_small'"),
                                      ("tradeoff", ["net=resnet18"], "unknown net 'resnet18'")]:
        result = run_cli(command, "logger=csv", *overrides)  # refused while composing: no job starts
        assert result.code == 2 and len(error_lines(result.err)) == 1 and words in result.err, result.err
    for overrides, words in [(["tradeoff.weight=1.5"], "tradeoff.weight"),
                             (["+net.dropout=0.1"], "net.dropout is not an option"),
                             (["dataset=noise"], "weights")]:  # 224 px: far too wide a FC net
        result = run_main("tradeoff", ["logger=csv", *overrides])
        assert result.code == 2 and len(error_lines(result.err)) == 1 and words in result.err, (overrides, result.err)


def test_digits_splits_are_disjoint_stratified_and_the_test_loader_keeps_every_image():
    data = DigitsDataModule(batch_size=100)
    data.setup()
    ids = [set(s.indices) for s in (data.train_set, data.val_set, data.test_set)]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2]) and sum(map(len, ids)) == 1797
    test_labels = np.bincount([y for _, y in data.test_set])
    assert test_labels.min() >= 35 and test_labels.max() <= 37  # 360 images, ~36 of each digit
    image, _ = data.train_set[0]
    assert image.shape == (1, 8, 8) and image.min() >= 0 and image.max() <= 1
    loader = data.test_dataloader()
    assert isinstance(loader.sampler, SequentialSampler) and not loader.drop_last
    assert sum(len(y) for _, y in loader) == len(data.test_set) == 360  # the last batch of 60 included
    again = DigitsDataModule()
    again.setup()
    assert again.test_set.indices == data.test_set.indices  # the split depends on dataset.seed only


def write_idx(path, array: np.ndarray) -> None:
    """MNIST's idx format: magic (0x08 = ubyte, then the number of dimensions), sizes, then the bytes."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_mnist_reads_torchvision_files_and_names_what_is_missing(tmp_path):
    with pytest.raises(ConfigError) as missing:
        TorchvisionDataModule("mnist", str(tmp_path))
    message = str(missing.value)
    assert f"{tmp_path}/MNIST/raw/" in message and "t10k-labels-idx1-ubyte" in message
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, count in (("train", 30), ("t10k", 12)):
        write_idx(raw / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (count, 28, 28)))
        write_idx(raw / f"{split}-labels-idx1-ubyte", np.arange(count) % 10)
    data = TorchvisionDataModule("mnist", str(tmp_path), val_count=5, image_size=32, channels=3)
    data.setup()
    assert (len(data.train_set), len(data.val_set), len(data.test_set)) == (25, 5, 12)
    image, label = data.test_set[11]
    assert image.shape == (3, 32, 32) and label == 1 and 0 <= image.min() and image.max() <= 1


def test_missing_mnist_is_one_line_and_exit_2(run_main, tmp_path):
    result = run_main("tradeoff", ["dataset=mnist", f"dataset.root={tmp_path}", "net=tradeoff_cnn_small",
                                   "logger=csv"])
    assert result.code == 2
    (line,) = error_lines(result.err)
    assert re.match(r"error: MNIST not found under dataset.root=.*train-images-idx3-ubyte.*MNIST/raw/", line)


@pytest.mark.slow
def test_on_digits_classification_weight_buys_accuracy_and_reconstruction_weight_buys_mse(run_task):
    """Rathjens & Wiskott's finding at its ends, with a small latent: w = 0 classifies better, w = 1
    reconstructs better."""
    runs = {}
    for weight in (0, 1):
        _, run_dir = run_task("tradeoff", ["dataset=digits", f"tradeoff.weight={weight}", "tradeoff.latent=8",
                                           "trainer.max_steps=300", "logger=csv"])
        runs[weight] = json.loads((run_dir / "summary.json").read_text())
    assert runs[0]["accuracy"] > runs[1]["accuracy"] + 0.03  # 360 test images: a standard error of ~0.015
    assert runs[1]["mse"] < runs[0]["mse"] - 0.01
    assert runs[1]["psnr"] > runs[0]["psnr"]
    summary = runs[0]
    assert summary["latent"] == summary["latent_size"] == 8 and summary["dataset"] == "digits"
    assert summary["steps"] == 300 and summary["best_checkpoint"].endswith(".ckpt")
    assert (run_dir / "images" / "reconstructions.png").is_file()
    history = read_run(run_dir).metrics  # every epoch of the fit, the selected epoch's validation, then the test
    epochs = [row for row in history if row["stage"] == "fit"]
    assert [row["stage"] for row in history] == ["fit"] * len(epochs) + ["validate", "test"]
    assert [row["step"] for row in epochs] == sorted({row["step"] for row in epochs}) and epochs[-1]["step"] == 300
    assert history[-1]["test/acc"] == pytest.approx(runs[1]["accuracy"])  # run_dir: w = 1
    assert any("val/loss" in row for row in history)


@pytest.mark.slow
def test_a_two_job_sweep_and_its_report(tmp_path, run_cli):
    sweep = tmp_path / "sweep"
    done = cli("tradeoff", "-m", "dataset=digits", "tradeoff.weight=0,1", "tradeoff.latent=2",
               "trainer.max_steps=60", "logger=csv", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    summaries = [json.loads(p.read_text()) for p in sorted(sweep.glob("*/summary.json"))]
    assert sorted(s["weight"] for s in summaries) == [0.0, 1.0]
    assert run_cli("report", str(sweep)).code == 0
    page = (sweep / "report.html").read_text()
    assert "Classification vs reconstruction" in page and "tradeoff_pareto.png" in page
    sources = re.findall(r"<img src='([^']+)'", page)
    assert sources and all((sweep / src).is_file() for src in sources)


def test_pareto_front_keeps_exactly_the_undominated_points():
    from representation_probe.reporting.tradeoff import pareto_front

    points = [(0.1, 0.9), (0.2, 0.95), (0.15, 0.85), (0.3, 0.94), (0.2, 0.95), (0.1, 0.8)]
    assert pareto_front(points) == [(0.1, 0.9), (0.2, 0.95)]  # by MSE; a repeated point once
