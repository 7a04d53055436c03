"""Every config in conf/ composes, and what it builds is what it says."""

import importlib
import pkgutil

import pytest
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint

from representation_probe import commands
from representation_probe.cli.shell import arguments, build_callbacks
from representation_probe.config import presets
from representation_probe.inversion import InversionModule, Sample
from representation_probe.models import LayerEmbedder
from representation_probe.runs.rundir import RunDir
from representation_probe.training import ClassifierModule

from .conftest import CONF, ENTRY_CONFIGS, build_model, compose_config

# registry backbones; the trade-off architectures (model=tradeoff_*) are built and tested in test_tradeoff.py
MODELS = [name for name in presets.names("model") if "family" in (found := presets.preset("model", name))
          and "???" not in found.values()]  # hf and module need a name or target
INVERSIONS = sorted(p.stem for p in (CONF / "inversion").glob("*.yaml"))
SLOW_TO_INIT = {"resnet101", "resnet152", "vit_b_16"}


def test_every_entry_config_has_a_command_module_and_back():
    modules = {m.name for m in pkgutil.iter_modules(commands.__path__)}
    assert modules == set(ENTRY_CONFIGS)
    for name in ENTRY_CONFIGS:
        assert callable(importlib.import_module(f"representation_probe.commands.{name}").run)


@pytest.mark.parametrize("name", ENTRY_CONFIGS)
def test_entry_config_composes(name):
    cfg = compose_config(name, hydra=True)
    assert cfg.hydra.job.config_name == name  # what commands.main dispatches on


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_TO_INIT else n for n in MODELS])
def test_model_config_builds_a_frozen_backbone_with_ordered_probe_points(name):
    backbone = build_model(name, 32)
    assert not backbone.net.training
    assert not any(p.requires_grad for p in backbone.net.parameters())
    depths = list(backbone.probe_points.values())
    assert depths and depths == sorted(depths) and 0 < depths[0] and depths[-1] == 1.0
    assert backbone.default_layer is not None


@pytest.mark.parametrize("name", INVERSIONS)
def test_inversion_config_holds_the_arguments_of_an_inversion_module(name):
    cfg = compose_config("invert", [f"inversion={name}"])
    backbone = build_model("resnet10", 32)
    module = InversionModule(LayerEmbedder(backbone, ["conv1"]), torch.zeros(1, 3, 32, 32), [Sample("conv1", "x", 0)],
                             **arguments(cfg.inversion))
    assert module.steps == cfg.inversion.steps > 0
    assert isinstance(module.configure_optimizers(), torch.optim.Optimizer)


def test_demo_experiment_inverts_five_layers_at_its_own_size():
    cfg = compose_config("invert", ["experiment=demo"])
    assert list(cfg.layers) == ["conv1", "conv2", "conv3", "conv4", "conv5"]
    assert cfg.model.image_size == 64  # the experiment wins over the model group's default (224)


def test_command_line_wins_over_experiment():
    cfg = compose_config("invert", ["experiment=demo", "model.image_size=32"])
    assert cfg.model.image_size == 32


@pytest.mark.parametrize("scheduler", ["cosine", "none"])
def test_train_builds_its_classifier_and_checkpoints_from_config(scheduler, tmp_path):
    cfg = compose_config("train", ["model=resnet10", "optimizer=adam", f"scheduler={scheduler}",
                                   "trainer.max_epochs=4"])
    net = torch.nn.Linear(4, 3)
    module = instantiate(cfg.classifier, net=net, num_classes=3, normalize="none")
    assert isinstance(module, ClassifierModule) and module.net is net
    optimizers = module.configure_optimizers()
    if scheduler == "none":
        assert isinstance(optimizers, torch.optim.Adam)
    else:
        assert optimizers["lr_scheduler"].T_max == 4  # follows trainer.max_epochs
    best, last = build_callbacks(cfg.callbacks, RunDir(tmp_path))
    assert isinstance(best, ModelCheckpoint) and best.dirpath == last.dirpath == str(RunDir(tmp_path).checkpoints)
    assert (best.monitor, best.save_top_k) == ("val/acc", 1)
    assert last.monitor is None and last.filename == "last"  # written every epoch, not only when the best improves


def test_train_seeds_the_model_from_seed_and_takes_the_head_size_from_the_data(run_main):
    assert compose_config("train", ["seed=7"]).model.init_seed == 7
    assert compose_config("train", ["seed=7", "model.init_seed=3"]).model.init_seed == 3  # the user wins
    result = run_main("train", ["model=resnet10", "dataset=digits", "model.num_classes=5", "logger=csv"])
    assert result.code == 2 and "head's size from the dataset (10 classes)" in result.err, result.err


@pytest.mark.parametrize("trainer", ["cpu", "gpu", "ddp"])
def test_inversion_stays_float32_on_every_trainer_while_training_on_gpus_is_bf16(trainer):
    """bf16-mixed ends above float32's seed spread at deep layers (bench/RESULTS.md): invert opts in only."""
    assert compose_config("invert", [f"trainer={trainer}"]).trainer.precision == "32-true"
    assert compose_config("train", [f"trainer={trainer}"]).trainer.precision == (
        "32-true" if trainer == "cpu" else "bf16-mixed")
