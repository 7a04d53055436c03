"""InversionModule: gradient descent on the input toward a layer embedding (paper eqs. 4-5)."""

import csv
import ctypes
import json
import math
import os

import pytest
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn

from representation_probe import ConfigError, metrics
from representation_probe.data import load_target
from representation_probe.inversion import Sample, smooth
from representation_probe.inversion.smoothing import gaussian_kernel3
from representation_probe.models import Backbone, Family, LayerEmbedder

from .conftest import CONF, build_model, compose_config, run_inversion

SIZE = 32


@pytest.fixture(scope="module")
def chelsea():
    return load_target("chelsea", SIZE)


PRECISIONS = ["32-true", "bf16-mixed"]


@pytest.mark.parametrize("precision", PRECISIONS)
def test_short_inversion_lowers_loss_and_m_g(chelsea, precision):
    backbone = build_model("resnet18", SIZE)
    running_mean = backbone.net.bn1.running_mean.clone()
    module = run_inversion(backbone, chelsea[None], [Sample("conv2", "chelsea", 0)], "inversion.steps=30",
                           "inversion.record_every=10", f"trainer.precision={precision}")

    first, last = module.history[0], module.history[-1]
    assert [row["step"] for row in module.history] == [0, 10, 20, 30]  # every 10 steps, plus the end
    assert last["loss"] < 0.5 * first["loss"]
    assert last["m_g"] < 0.5 * first["m_g"]
    result = module.results()[0]
    assert result["m_g"] == pytest.approx(last["m_g"])
    assert result["m_i"] == pytest.approx(last["m_i"])
    # the frozen backbone was neither trained nor switched to training mode by Lightning
    assert not backbone.net.training
    torch.testing.assert_close(backbone.net.bn1.running_mean, running_mean, rtol=0, atol=0)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_reference_shift_and_m_s(chelsea, precision):
    backbone = build_model("resnet18", SIZE)
    module = run_inversion(backbone, chelsea[None], [Sample("conv2", "chelsea", 0)], "inversion.steps=1",
                           f"trainer.precision={precision}")
    result = module.results()[0]
    # the default a' = a + N(0, 1/20): ||a' - a|| is close to sigma * sqrt(number of pixels)
    assert result["m_i_ref"] == pytest.approx(0.05 * math.sqrt(chelsea.numel()), rel=0.1)
    embedder = LayerEmbedder(backbone, ["conv2"])
    with torch.no_grad():
        m_s = (embedder(module.shifted, "conv2") - embedder(chelsea[None], "conv2")).norm()
    assert result["m_s"] == pytest.approx(float(m_s), rel=1e-5)
    assert result["m_g_over_m_s"] == pytest.approx(result["m_g"] / result["m_s"])


@pytest.mark.parametrize("overrides, layers", [
    (["model=timm", "model.name=vit_tiny_patch16_224", "layers=[blocks.0,blocks.5,blocks.11]"],
     ["blocks.0", "blocks.5", "blocks.11"]),
    (["model=vit_tiny", "layers=probe_points"], [f"blocks.{i}" for i in range(6)]),
    pytest.param(["model=vit_b_16", "layers=[blocks.0,blocks.11]"], ["blocks.0", "blocks.11"], marks=pytest.mark.slow),
], ids=["timm-vit_tiny", "probe-points", "torchvision-vit_b_16"])
def test_vit_blocks_are_inverted(run_task, overrides, layers):
    _, run_dir = run_task("invert", [*overrides, f"model.image_size={SIZE}", "inversion.steps=20", "logger=csv"])
    summary = json.loads((run_dir / "summary.json").read_text())
    with open(run_dir / "metrics.csv") as file:
        first = {row["layer"]: float(row["m_g"]) for row in csv.DictReader(file) if row["step"] == "0"}
    assert [entry["layer"] for entry in summary] == layers
    assert [entry["relative_depth"] for entry in summary] == sorted(entry["relative_depth"] for entry in summary)
    assert summary[-1]["relative_depth"] == 1.0
    for entry in summary:
        assert entry["m_g"] < 0.5 * first[entry["layer"]], entry["layer"]  # the embedding is approached


# ---- eq. 5 smoothing ----------------------------------------------------------------------------
def total_variation(images: torch.Tensor) -> float:
    return float((images.diff(dim=-1).abs().sum() + images.diff(dim=-2).abs().sum()))


def high_frequency_energy(images: torch.Tensor) -> float:
    """Power of the spatial frequencies above half the Nyquist frequency on either axis."""
    power = torch.fft.fftshift(torch.fft.fft2(images - images.mean()), dim=(-2, -1)).abs() ** 2
    n = images.shape[-1]
    centre = slice(n // 4, 3 * n // 4)
    return float(power.sum() - power[..., centre, centre].sum())


def test_smoothing_removes_high_frequencies_of_noise():
    noise = torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    light, strong = smooth(noise, 0.4), smooth(noise, 2.4)
    assert total_variation(strong) < total_variation(light) < total_variation(noise)
    assert high_frequency_energy(strong) < high_frequency_energy(light) < high_frequency_energy(noise)


def test_smoothing_keeps_a_constant_image():
    constant = torch.full((1, 3, SIZE, SIZE), 0.7)
    torch.testing.assert_close(smooth(constant, 1.0), constant)


def test_smoothing_is_per_channel_and_keeps_the_shape():
    images = torch.zeros(1, 3, 9, 9)
    images[0, 1, 4, 4] = 1.0
    out = smooth(images, 1.0)
    assert out.shape == images.shape
    assert out[0, 0].abs().sum() == 0 and out[0, 2].abs().sum() == 0
    torch.testing.assert_close(out[0, 1, 3:6, 3:6], gaussian_kernel3(1.0))


def test_smoothing_stays_float32_under_bf16_autocast():
    """bf16-mixed runs the update under autocast: the blurred image must not be rounded to bf16."""
    images = torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = smooth(images, 1.0)
    assert mixed.dtype == torch.float32
    torch.testing.assert_close(mixed, smooth(images, 1.0), rtol=0, atol=0)


def test_gaussian_kernel_is_normalised_and_symmetric():
    kernel = gaussian_kernel3(0.8)
    assert kernel.shape == (3, 3)
    assert float(kernel.sum()) == pytest.approx(1.0)
    torch.testing.assert_close(kernel, kernel.T)
    torch.testing.assert_close(kernel, kernel.flip(0))
    assert kernel.argmax() == 4  # the centre


def test_blurred_inversion_runs_with_the_paper_config(chelsea):
    module = run_inversion(build_model("resnet18", SIZE), chelsea[None], [Sample("conv1", "chelsea", 0)],
                           "inversion=paper", "inversion.steps=20", "inversion.lr=0.5")
    assert module.diverged_at is None
    assert module.history[-1]["m_g"] < module.history[0]["m_g"]


# ---- toy linear maps: injective maps can be inverted, non-injective ones cannot -----------------
def toy_backbone(features: int) -> Backbone:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, features))
    return Backbone(name="toy", family=Family(), net=net, image_size=8, normalize="none")


OPTIMIZERS = {
    "adam-decaying-lr": ["inversion.steps=300"],  # the default config
    # plain gradient descent on ||W(a_n - a)||^2; lr below 2 / the largest eigenvalue of 2 W^T W
    "sgd-l2": ["inversion.steps=300", "inversion.optimizer=sgd", "inversion.lr=0.3",
               "inversion.loss=l2"],
}


@pytest.mark.parametrize("overrides", OPTIMIZERS.values(), ids=OPTIMIZERS.keys())
@pytest.mark.parametrize("features, injective", [(2 * 192, True), (48, False)], ids=["overcomplete", "48"])
def test_linear_map_inversion(features, injective, overrides):
    target = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    # the layer is the FX node of the Linear: '1' in the Sequential
    module = run_inversion(toy_backbone(features), target, [Sample("1", "toy", 0)], *overrides)
    first, result = module.history[0], module.results()[0]
    assert result["m_g"] < 0.01 * first["m_g"]  # both maps: the embedding is matched
    if injective:
        assert result["m_i"] < 0.01 * first["m_i"]  # ... and so is the image
    else:
        assert result["m_i"] > 0.5 * first["m_i"]  # the null space keeps what a_0 had there


# ---- precision -------------------------------------------------------------------------------
def test_bf16_records_and_reports_float32_distances(chelsea):
    """Under trainer.precision=bf16-mixed the gradient's forward is bf16, but every recorded and final
    distance is the float32 one of the (float32) image."""
    backbone = build_model("resnet18", SIZE)
    module = run_inversion(backbone, chelsea[None], [Sample("conv3", "chelsea", 0)], "inversion.steps=6",
                           "inversion.record_every=3", "trainer.precision=bf16-mixed")
    assert module.image.dtype == torch.float32
    embedder = LayerEmbedder(backbone, ["conv3"])
    with torch.no_grad():
        target = embedder(chelsea[None], "conv3")
        a_0 = metrics.draws(0, chelsea.shape)[0][None]  # the default a_0 of seed 0
        first = float((embedder(a_0, "conv3") - target).norm())
        last = float((embedder(module.image.detach(), "conv3") - target).norm())
        m_s = float((embedder(module.shifted, "conv3") - target).norm())
    result = module.results()[0]
    assert module.history[0]["m_g"] == pytest.approx(first, rel=1e-6)
    assert result["m_g"] == pytest.approx(last, rel=1e-6) and module.history[-1]["m_g"] == result["m_g"]
    assert result["m_s"] == pytest.approx(m_s, rel=1e-6)
    assert result["m_g"] < 0.8 * first  # the bf16 steps did descend


def test_bf16_until_runs_the_first_steps_as_bf16_mixed_does_and_the_rest_as_float32(chelsea):
    """inversion.bf16_until=f: steps [0, f * steps) are bf16-mixed's, every one after float32's."""
    backbone = build_model("resnet18", SIZE)
    sample = [Sample("conv3", "chelsea", 0)]
    common = ["inversion.steps=12", "inversion.record_every=2"]
    runs = {name: run_inversion(backbone, chelsea[None], sample, *common, *extra) for name, extra in dict(
        bf16=["trainer.precision=bf16-mixed"], float32=[], half=["inversion.bf16_until=0.5"],
        all=["inversion.bf16_until=1.0"]).items()}
    curve = {name: [row["m_g"] for row in run.history] for name, run in runs.items()}  # steps 0, 2, ..., 12
    assert curve["all"] == curve["bf16"]  # the module's own autocast is Lightning's
    torch.testing.assert_close(runs["all"].image, runs["bf16"].image, rtol=0, atol=0)
    assert curve["half"][:4] == curve["bf16"][:4] and curve["half"][4:] != curve["bf16"][4:]  # 6 steps in bf16
    assert curve["half"] != curve["float32"] and curve["half"][-1] < 0.8 * curve["half"][0]


@pytest.mark.parametrize("extra, words", [
    (["inversion.bf16_until=1.5"], ["inversion.bf16_until", "[0, 1]"]),
    (["inversion.bf16_until=0.5", "trainer.precision=bf16-mixed"], ["keep trainer.precision=32-true"]),
])
def test_a_bf16_schedule_that_cannot_work_is_one_line(run_main, extra, words):
    result = run_main("invert", ["model=resnet10", "model.image_size=32", "logger=csv", "inversion.steps=2", *extra])
    assert result.code == 2 and all(word in result.err for word in words), result.err[-2000:]


# ---- batching --------------------------------------------------------------------------------
@pytest.mark.parametrize("precision", PRECISIONS)
def test_batched_layers_and_seeds_equal_separate_runs(chelsea, precision):
    backbone = build_model("resnet18", SIZE)
    samples = [Sample(layer, "chelsea", seed) for layer in ("conv1", "conv3") for seed in (0, 1)]
    # Plain SGD (+ eq. 5 blur): Adam divides by sqrt(v), so the 1e-7 rounding differences between
    # batch sizes flip near-zero gradient components and grow to ~1e-2 per pixel within 20 steps.
    config = ["inversion=paper", "inversion.steps=20", "inversion.lr=0.05", f"trainer.precision={precision}"]
    batched = run_inversion(backbone, chelsea.expand(len(samples), -1, -1, -1), samples, *config)
    batched_results = batched.results()
    assert not torch.equal(batched.image[0], batched.image[1])  # the seeds differ
    for i, sample in enumerate(samples):
        single = run_inversion(backbone, chelsea[None], [sample], *config)
        alone = single.results()[0]
        assert alone["m_g"] < 0.5 * single.history[0]["m_g"]  # the runs went somewhere
        for key in ("m_g", "m_i", "m_s", "loss"):
            assert batched_results[i][key] == pytest.approx(alone[key], rel=1e-5), (sample, key)
        torch.testing.assert_close(batched.image[i], single.image[0], rtol=1e-5, atol=1e-5)


class CountBatches(Callback):
    def __init__(self):
        self.batches = 0

    def on_train_batch_end(self, *args) -> None:
        self.batches += 1


@pytest.mark.parametrize("precision", PRECISIONS)
def test_steps_per_batch_groups_updates_without_changing_them(chelsea, precision):
    backbone = build_model("resnet18", SIZE)
    runs = {}
    for k in (1, 7, None):  # one update per Lightning batch, seven, and the timed choice
        counter = CountBatches()
        config = ["inversion.steps=20", "inversion.record_every=5", f"trainer.precision={precision}"]
        if k is not None:
            config.append(f"inversion.steps_per_batch={k}")
        runs[k] = run_inversion(backbone, chelsea[None], [Sample("conv2", "chelsea", 0)], *config, callbacks=[counter])
        if k is not None:
            assert counter.batches == math.ceil(20 / k)
    for k in (7, None):
        assert runs[k].history == runs[1].history
        torch.testing.assert_close(runs[k].image, runs[1].image, rtol=0, atol=0)


class BackwardHooks(Callback):
    def __init__(self):
        self.before = self.after = 0

    def on_before_backward(self, trainer, module, loss) -> None:
        self.before += 1

    def on_after_backward(self, trainer, module) -> None:
        self.after += 1


def test_backward_hooks_reach_the_callbacks_that_override_them(chelsea):
    """The update calls loss.backward() itself only when no callback overrides Lightning's backward hooks."""
    backbone = build_model("resnet18", SIZE)
    hooks, config = BackwardHooks(), ["inversion.steps=12", "inversion.steps_per_batch=5"]
    heard = run_inversion(backbone, chelsea[None], [Sample("conv2", "chelsea", 0)], *config, callbacks=[hooks])
    plain = run_inversion(backbone, chelsea[None], [Sample("conv2", "chelsea", 0)], *config)
    assert (hooks.before, hooks.after) == (12, 12)  # once per update
    assert not heard.plain_backward and plain.plain_backward
    torch.testing.assert_close(heard.image, plain.image, rtol=0, atol=0)


def test_adam_steps_do_not_look_for_nvml_where_there_is_no_nvidia_driver():
    """Lightning's import turns on torch's NVML-based CUDA check, which then reloads NVML at every Adam step."""
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
        driver = True
    except OSError:
        driver = False
    assert (os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK") == "1") == driver


class StopAfter(Callback):
    def __init__(self, batches: int):
        self.batches = batches

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if batch_idx + 1 == self.batches:
            trainer.should_stop = True


def test_a_run_stopped_early_records_its_last_step_not_the_planned_one(chelsea):
    module = run_inversion(build_model("resnet18", SIZE), chelsea[None], [Sample("conv2", "chelsea", 0)],
                           "inversion.steps=20", "inversion.steps_per_batch=3", callbacks=[StopAfter(2)])
    assert [row["step"] for row in module.history] == [0, 6]  # a_6, after the updates of steps 0..5


# ---- divergence ------------------------------------------------------------------------------
def test_nan_loss_stops_the_run(chelsea):
    target = chelsea[None].clone()
    target[0, 0, 0, 0] = float("nan")
    counter = CountBatches()
    module = run_inversion(build_model("resnet18", SIZE), target, [Sample("conv2", "chelsea", 0)],
                           "inversion.steps=30", callbacks=[counter])
    assert module.diverged_at == 0
    assert counter.batches == 1
    assert [row["step"] for row in module.history] == [0]


def test_divergence_is_a_config_error_after_writing_the_run(run_task, tmp_path):
    steps = 30  # eps = 1e38 overflows float32 after the first update: the loss becomes NaN
    overrides = ["model=resnet18", f"model.image_size={SIZE}", "layers=conv2", "logger=csv",
                 f"inversion.steps={steps}", "inversion.optimizer=sgd", "inversion.lr=1e38"]
    with pytest.raises(ConfigError, match="lr") as err:
        run_task("invert", overrides, run_dir=tmp_path / "run")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["diverged_at"] is not None and summary["diverged_at"] < steps
    assert f"step {summary['diverged_at']}" in str(err.value)
    with open(tmp_path / "run" / "metrics.csv") as file:
        rows = list(csv.DictReader(file))
    assert int(rows[-1]["step"]) == summary["diverged_at"]


@pytest.mark.parametrize("precision", PRECISIONS)
def test_a_per_layer_eps_table_equals_runs_with_each_layer_s_eps(chelsea, precision):
    """eps_by_layer in one batch steps each sample as a separate run with that layer's eps would."""
    backbone = build_model("resnet18", SIZE)
    eps = {"conv1": 0.05, "conv3": 0.01}
    samples = [Sample(layer, "chelsea", 0) for layer in eps]
    base = ["inversion=paper", "inversion.steps=10", f"trainer.precision={precision}"]
    table = [f"inversion.eps_by_layer={{conv1: {eps['conv1']}, conv3: {eps['conv3']}}}", "inversion.lr=1.0"]
    batched = run_inversion(backbone, chelsea.expand(2, -1, -1, -1), samples, *base, *table)
    for i, sample in enumerate(samples):
        single = run_inversion(backbone, chelsea[None], [sample], *base, f"inversion.lr={eps[sample.layer]}")
        torch.testing.assert_close(batched.image[i], single.image[0], rtol=1e-5, atol=1e-5)
    with pytest.raises(ConfigError, match="no eps for conv3"):
        run_inversion(backbone, chelsea.expand(2, -1, -1, -1), samples, *base, "inversion.eps_by_layer={conv1: 0.1}")
    with pytest.raises(ConfigError, match="plain SGD"):  # Adam ignores a gradient's scale
        run_inversion(backbone, chelsea.expand(2, -1, -1, -1), samples, "inversion.eps_by_layer={conv1: 1, conv3: 1}")


@pytest.mark.parametrize("table", sorted(p.stem for p in (CONF / "eps").glob("*.yaml")))
def test_the_shipped_eps_tables_compose(table):
    cfg = compose_config("invert", ["inversion=paper", f"eps={table}"])
    assert set(cfg.inversion.eps_by_layer) == {"conv1", "conv2", "conv3", "conv4", "conv5"}
    assert all(0 < eps < 1 for eps in cfg.inversion.eps_by_layer.values())
