"""The MLP studies of paper section 4: width, exact inversion, output noise, ReLU widths, and their commands."""

import json

import numpy as np
import pytest
import torch
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.utils import instantiate
from PIL import Image

from representation_probe import ConfigError
from representation_probe.cli.shell import arguments
from representation_probe.cli.sweep_figure import SweepFigure, read_jobs
from representation_probe.data import load_target
from representation_probe.inversion import Sample, exact
from representation_probe.inversion.invertibility import study
from representation_probe.models import create_model
from representation_probe.models.load import load

from .conftest import build_model, cli, compose_config, error_lines, run_inversion

PAPER_SIZE = 29  # 3 x 29 x 29 = 2,523 inputs
SMALL = 8  # 3 x 8 x 8 = 192 inputs: the same studies in a fraction of a second


def mlp(image_size: int = SMALL, **options):
    return create_model("mlp", "mlp", image_size=image_size, **options)


# ---- the family -----------------------------------------------------------------------------------------
def test_mlp_config_builds_the_papers_model():
    backbone = build_model("mlp", PAPER_SIZE, "model.widths=[1000]")
    layers = exact.affine_layers(backbone.net)
    assert [layer.shape for layer in layers] == [(1000, 2523)]
    assert backbone.default_layer == "fc1" and backbone.family.name == "mlp"
    assert backbone.details == dict(widths=[1000], activation="none", input_size=2523)
    assert not any(p.requires_grad for p in backbone.net.parameters())
    # PyTorch's nn.Linear init: weights and biases uniform in +-1/sqrt(fan_in) (Kaiming-uniform, a=sqrt(5))
    linear = backbone.net.fc1
    bound = 1 / 2523**0.5
    assert linear.weight.abs().max() <= bound and linear.weight.abs().max() > 0.99 * bound
    assert linear.bias.abs().max() <= bound and linear.bias.abs().max() > 0.9 * bound


def test_width_and_depth_make_equal_layers_and_default_to_three_square_ones():
    assert [l.shape for l in exact.affine_layers(mlp(width=50, depth=2).net)] == [(50, 192), (50, 50)]
    assert [l.shape for l in exact.affine_layers(mlp().net)] == [(192, 192)] * 3


def test_init_seed_makes_the_model_and_activation_follows_every_layer():
    a, b, c = mlp(init_seed=1).net, mlp(init_seed=1).net, mlp(init_seed=2).net
    assert torch.equal(a.fc2.weight, b.fc2.weight) and not torch.equal(a.fc2.weight, c.fc2.weight)
    net = mlp(widths=[300, 400], activation="relu").net
    assert list(net._modules) == ["flatten", "fc1", "relu1", "fc2", "relu2"]
    assert mlp(widths=[300, 400], activation="relu").default_layer == "relu2"


def test_invert_on_an_mlp_defaults_to_its_last_layer_and_a_resnet_to_conv4(run_task):
    _, run_dir = run_task("invert", ["model=mlp", f"model.image_size={SMALL}", "model.widths=[50]",
                                     "inversion.steps=3", "logger=csv"])
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["layer"], summary["widths"], summary["activation"]) == ("fc1", [50], "none")
    assert "layers: fc1" in (run_dir / "config.yaml").read_text()  # the layer actually inverted
    _, run_dir = run_task("invert", ["model=resnet18", "model.image_size=32", "inversion.steps=1", "logger=csv"])
    assert json.loads((run_dir / "summary.json").read_text())["layer"] == "conv4"


# ---- Figs. 6/7: a layer narrower than its input cannot be inverted, a wider one can -------------------
def test_overcomplete_layer_inverts_many_times_better_after_the_same_budget():
    target = load_target("chelsea", PAPER_SIZE)[None]
    results = {}
    for width in (2000, 3000):
        backbone = build_model("mlp", PAPER_SIZE, f"model.widths=[{width}]")
        module = run_inversion(backbone, target, [Sample("fc1", "chelsea", 0)], "inversion.steps=150")
        results[width] = module.results()[0]
    assert results[2000]["m_g_over_m_s"] < 1 and results[3000]["m_g_over_m_s"] < 1  # both match the output
    assert results[3000]["m_i"] < results[2000]["m_i"] / 10  # ... but only 3000 > 2523 recovers the image
    assert results[2000]["m_i"] > results[2000]["m_i_ref"]  # 2000 stays farther than the shifted a'


def test_narrow_layer_leaves_the_null_space_part_of_a0_untouched():
    """Plain gradient descent moves a_n only within W's row space: a narrow layer's a_g keeps exactly
    the part of a_0 - a in W's null space, so m_i converges to its norm and not to 0."""
    backbone = build_model("mlp", SMALL, "model.widths=[100]")
    target = load_target("chelsea", SMALL)[None]
    module = run_inversion(backbone, target, [Sample("fc1", "chelsea", 0)], "inversion.steps=300",
                           "inversion.optimizer=sgd", "inversion.lr=0.5", "inversion.loss=l2")
    weight = backbone.net.fc1.weight.double()
    gen = torch.Generator().manual_seed(0)  # a_0 as the module draws it for seed 0
    a_0 = 0.7 + torch.randn(target.shape[1:], generator=gen) * 0.05
    offset = (a_0 - target[0]).flatten().double()
    row_space, _ = torch.linalg.qr(weight.T)
    null_part = float((offset - row_space @ (row_space.T @ offset)).norm())
    assert module.history[0]["m_i"] == pytest.approx(float(offset.norm()), rel=1e-5)  # the same a_0
    result = module.results()[0]
    assert result["m_g_over_m_s"] < 1e-3
    assert result["m_i"] == pytest.approx(null_part, rel=1e-3)
    assert null_part > 0.5 * float(offset.norm())  # 92 of 192 directions: most of the offset stays


# ---- Fig. S2: exact inversion and output noise ------------------------------------------------------------
def test_float64_inverts_three_square_layers_exactly_and_float32_does_not():
    layers = exact.affine_layers(mlp(PAPER_SIZE, depth=3).net)  # 2523 x 2523, three times
    a = load_target("chelsea", PAPER_SIZE).flatten().double()
    errors = {}
    for name, dtype in exact.DTYPES.items():
        x = exact.invert(layers, exact.forward(layers, a[None], dtype), exact.solvers(layers, dtype))[0]
        errors[name] = float((x.double() - a).norm() / a.norm())
    assert errors["float64"] < 1e-6  # ~1e-8 on this machine
    assert errors["float32"] > 1e4 * errors["float64"]


def test_noisy_outputs_invert_to_inputs_far_beyond_the_shifted_image():
    net = mlp(depth=3).net
    result = study(net, load_target("chelsea", SMALL), seed=0, exact=True, precisions=["float64"],
                         method="solve", draws=300, noise_std=1e-3, shift_std=0.05, random_count=8,
                         random_mean=0.0, random_std=1.0)
    noise, m_i_ref = result.summary["noise"], result.summary["m_i_ref"]
    d_in = result.noise["input_distance"]
    assert len(d_in) == 300 and noise["no_preimage"] == 0
    # the output moved far less than a' moves it, yet the input moved far more than a' does
    assert noise["fraction_output_closer_than_m_s"] == 1.0
    assert noise["input_distance"]["q05"] > 10 * m_i_ref
    assert noise["input_distance"]["median"] > 100 * m_i_ref
    # and the spread: ||a - a''|| varies over orders of magnitude more than ||a - a'|| could at all
    assert float(d_in.quantile(0.75) - d_in.quantile(0.25)) > 10 * m_i_ref
    composed = result.summary["composed"]
    assert composed["condition"] > 100 * max(layer["condition"] for layer in result.summary["layers"])


# ---- ReLU widths ------------------------------------------------------------------------------------------
def test_relu_zeroes_about_half_of_each_layer_on_symmetric_inputs():
    layers = exact.affine_layers(mlp(widths=[400, 800, 1600], activation="relu").net)
    inputs = torch.randn(64, 192, generator=torch.Generator().manual_seed(0))
    p = exact.zero_fractions(layers, inputs).mean(dim=0)
    assert p.shape == (3,)
    torch.testing.assert_close(p, torch.full((3,), 0.5, dtype=torch.float64), atol=0.04, rtol=0)
    # no activation: nothing is exactly zero
    assert exact.zero_fractions(exact.affine_layers(mlp(widths=[400]).net), inputs).max() == 0


def test_required_widths_grow_by_1_over_p_per_layer():
    widths = exact.required_widths(100, [0.5, 0.5, 0.25])
    assert widths["paper"] == [200, 400, 1600]  # m (1/p)^n, the paper's formula
    assert widths["active"] == pytest.approx([200, 400, 400 / 0.75])  # m prod 1/(1 - p)


def test_widening_relu_layers_keeps_every_input_direction_where_equal_widths_lose_them():
    a = load_target("chelsea", SMALL).flatten()
    ranks = {}
    for widths in ([192, 192, 192], [384, 768, 1536]):
        layers = exact.affine_layers(mlp(widths=widths, activation="relu").net)
        ranks[tuple(widths)] = [exact.numerical_rank(torch.linalg.svdvals(j), tuple(j.shape))
                                for j in exact.jacobians(layers, a)]
    assert max(ranks[(192, 192, 192)]) < 0.7 * 192  # about half the directions are gone after one layer
    assert ranks[(384, 768, 1536)] == [192, 192, 192]


# ---- bad input --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("options, words", [
    (dict(widths=[1000, 0]), ["model.widths", "positive integer", "0"]),
    (dict(widths=[]), ["model.widths", "at least one"]),
    (dict(widths=[10.5]), ["model.widths", "positive integer"]),
    (dict(widths=1000), ["model.widths", "list"]),
    (dict(width=-3), ["model.width", "positive integer", "-3"]),
    (dict(depth=0), ["model.depth", "positive integer", "0"]),
    (dict(depth=2.5), ["model.depth", "positive integer"]),
    (dict(depth="four"), ["model.depth", "positive integer"]),
    (dict(widths=[5], depth=2), ["model.widths", "not both"]),
    (dict(activation="gelu"), ["gelu", "relu", "tanh"]),
    (dict(num_classes=10), ["classifier head"]),
    (dict(weights="imagenet"), ["ImageNet"]),
], ids=["zero-width", "empty", "float-width", "scalar-widths", "negative-width", "zero-depth", "float-depth",
        "string-depth", "widths-and-depth", "activation", "num-classes", "imagenet"])
def test_bad_mlp_options_say_what_is_wrong(options, words):
    with pytest.raises(ConfigError) as err:
        mlp(**options)
    assert "\n" not in str(err.value)
    assert all(word in str(err.value) for word in words), str(err.value)


def test_mlp_options_on_another_family_are_refused():
    with pytest.raises(ConfigError, match=r"model.depth is not an option of the resnet family \(its options: none\)"):
        create_model("resnet", "resnet18", image_size=32, depth=3)


@pytest.mark.parametrize("overrides, words", [
    (["model.widths=[100]"], ["fc1", "192", "100", "92-dimensional", "model.width=192"]),
    (["model.widths=[192,300]"], ["fc2", "300x192", "no inverse", "model.width=192", "exact=false"]),
    (["model.activation=relu"], ["ReLU", "exact=false", "activation=none"]),
    (["model=resnet18"], ["MLP", "resnet"]),
    (["precisions=[float16]"], ["float64", "float32"]),
], ids=["narrow-layer", "wide-layer", "relu", "resnet", "precision"])
def test_impossible_exact_inversion_says_why_and_what_works(run_task, overrides, words):
    with pytest.raises(ConfigError) as err:
        run_task("invertibility", [f"model.image_size={SMALL}", "logger=csv", *overrides])
    assert all(word in str(err.value) for word in words), str(err.value)


def test_a_singular_layer_reports_its_rank(run_task, tmp_path):
    state = mlp().net.state_dict()
    state["fc2.weight"][1] = state["fc2.weight"][0]  # two equal rows: rank 191
    torch.save(state, tmp_path / "singular.pt")
    with pytest.raises(ConfigError, match=r"fc2.*singular.*rank 191 of 192"):
        run_task("invertibility", [f"model.image_size={SMALL}", f"model.weights={tmp_path / 'singular.pt'}",
                                   "logger=csv"])


# ---- the invertibility run directory and the sweep figure ----------------------------------------------
def test_invertibility_writes_summary_figures_and_images(run_task):
    condition, run_dir = run_task("invertibility", [f"model.image_size={SMALL}", "noise.draws=50", "logger=csv"])
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["command"] == "invertibility" and summary["widths"] == [192, 192, 192]
    assert summary["composed"]["condition"] == pytest.approx(condition)
    assert set(summary["exact"]) == {"float64", "float32", "float32_output_float64_inverse"}
    assert summary["noise"]["draws"] == 50 and summary["relu"] is None
    assert {p.name for p in run_dir.glob("*.png")} == {"noise_histogram.png", "spectra.png"}
    assert len((run_dir / "noise.csv").read_text().splitlines()) == 51
    assert (run_dir / "images" / "exact_float64.png").is_file() and (run_dir / "images" / "a_pp_median.png").is_file()
    assert not [p.name for p in run_dir.rglob(".*")]  # written atomically: no temporary files left


def test_relu_invertibility_without_exact_reports_the_widths(run_task):
    _, run_dir = run_task("invertibility", [f"model.image_size={SMALL}", "model.widths=[384,768]",
                                            "model.activation=relu", "exact=false", "logger=csv"])
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["exact"] is None and summary["noise"] is None
    rows = summary["relu"]["layers"]
    assert [row["width"] for row in rows] == [384, 768]
    assert all(0.3 < row["p_target"] < 0.7 and 0.4 < row["p_random"] < 0.6 for row in rows)
    assert rows[1]["required_paper"] == pytest.approx(192 / rows[0]["p_random"] / rows[1]["p_random"])
    assert (run_dir / "relu_widths.png").is_file()


@pytest.mark.slow
def test_sweep_figure_reads_the_jobs_of_a_sweep(run_task, tmp_path):
    for job, width in enumerate((20, 300)):
        run_task("invert", ["model=mlp", f"model.image_size={SMALL}", f"model.widths=[{width}]",
                            "inversion.steps=3", "logger=csv"], run_dir=tmp_path / "sweep" / str(job))
    config = compose_config("invert", [f"hydra.sweep.dir={tmp_path / 'sweep'}"], hydra=True)
    jobs = read_jobs(tmp_path / "sweep")
    assert [job["summary"]["widths"] for job in jobs] == [[20], [300]]
    assert all(job["a_g"].is_file() and job["target"].is_file() for job in jobs)
    SweepFigure("figure.png", columns="model.widths", title="test").on_multirun_end(config)
    with Image.open(tmp_path / "sweep" / "figure.png") as figure:
        pixels = np.asarray(figure.convert("L"), dtype=float)
    assert pixels.shape[1] > 400 and pixels.std() > 10  # drawn: images and curves, not a blank canvas


@pytest.mark.parametrize("command, experiment", [
    ("invert", "fig6_mlp_width"), ("invert", "fig7_mlp_width_steps"), ("invert", "fig8_mlp_depth"),
    ("invertibility", "figS2_mlp_noise"), ("invert", "relu_widths"), ("invertibility", "relu_widths_rank")])
def test_experiment_configs_build_their_model_for_every_swept_value(command, experiment):
    cfg = compose_config(command, [f"experiment={experiment}"], hydra=True)
    for callback in cfg.hydra.callbacks.values():
        assert isinstance(instantiate(callback), SweepFigure)
    parser = OverridesParser.create()
    sweeps = parser.parse_overrides([f"{key}={value}" for key, value in (cfg.hydra.sweeper.params or {}).items()])
    variants = [[f"{s.key_or_group}={value}"] for s in sweeps for value in s.sweep_string_iterator()] or [[]]
    for variant in variants:
        backbone = load(arguments(compose_config(command, [f"experiment={experiment}", *variant]).model))
        assert backbone.family.name == "mlp" and backbone.probe_points


# ---- the commands of the issue, end to end ------------------------------------------------------------------
@pytest.mark.slow
def test_invert_mlp_end_to_end(tmp_path, run_cli):
    result = run_cli("invert", "model=mlp", "model.widths=[1000]", "inversion.steps=20", "logger=csv",
                     f"hydra.run.dir={tmp_path / 'run'}")
    assert result.code == 0, result.err
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert (summary["layer"], summary["widths"], summary["input_size"]) == ("fc1", [1000], 2523)


@pytest.mark.slow
@pytest.mark.parametrize("sweep, expected", [
    (["model.widths=[100],[200],[300]"], [[100], [200], [300]]),
    (["model.depth=1,2", "model.width=250"], [[250], [250, 250]]),
], ids=["widths", "depth"])
def test_width_and_depth_multiruns(tmp_path, sweep, expected, run_cli):
    result = run_cli("invert", "-m", "model=mlp", f"model.image_size={SMALL}", *sweep, "inversion.steps=5",
                     "logger=csv", f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert result.code == 0, result.err
    summaries = [json.loads((tmp_path / "sweep" / str(i) / "summary.json").read_text()) for i in range(len(expected))]
    assert [s["widths"] for s in summaries] == expected


@pytest.mark.slow
def test_invertibility_end_to_end_with_wandb_offline(tmp_path):
    result = cli("invertibility", "model=mlp", "model.depth=3", f"model.image_size={SMALL}", "noise.draws=100",
                 "logger=wandb", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["exact"]["float64"]["relative_error"] < 1e-6
    assert (tmp_path / "run" / "noise_histogram.png").is_file()
    assert list((tmp_path / "run").glob("wandb/offline-run-*/*.wandb"))


@pytest.mark.parametrize("args, words", [
    (["invertibility", "model.widths=[100]"], ["no exact inverse", "model.width=192"]),
    (["invert", "model.depth=0"], ["model.depth", "positive integer"]),
    (["invert", "model.widths=[10,-1]"], ["model.widths", "positive integer"]),
    (["invert", "model.name=x", "model.family=mlp", "+model.patch_size=4"], ["model.patch_size", "model.widths"]),
], ids=["narrow", "zero-depth", "negative-width", "option-of-another-family"])
def test_bad_input_is_one_error_line(run_main, args, words):
    command, *overrides = args
    result = run_main(command, ["model=mlp", f"model.image_size={SMALL}", *overrides, "logger=csv"])
    assert result.code == 2
    lines = error_lines(result.err)
    assert len(lines) == 1 and lines[0].startswith("error: "), result.err
    assert all(word in lines[0] for word in words), lines[0]
