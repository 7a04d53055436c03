"""Every config in conf/ composes, and what it builds is what it says."""

import pytest
import torch
from hydra.utils import instantiate

from representation_probe.inversion import InversionModule
from representation_probe.__main__ import COMMANDS
from representation_probe.tasks import TASKS

from .conftest import CONF, compose_config

ENTRY_CONFIGS = sorted(p.stem for p in CONF.glob("*.yaml"))
MODELS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))
INVERSIONS = sorted(p.stem for p in (CONF / "inversion").glob("*.yaml"))
SLOW_TO_INIT = {"resnet101", "resnet152"}


def test_every_command_has_an_entry_config_and_a_task():
    assert {"invert", "layers", "train", "kernels"} <= set(TASKS)
    assert set(TASKS) == set(ENTRY_CONFIGS) == set(COMMANDS)  # the CLI lists exactly what runs


@pytest.mark.parametrize("name", ENTRY_CONFIGS)
def test_entry_config_composes(name):
    cfg = compose_config(name, hydra=True)
    assert cfg.hydra.job.config_name == name  # what tasks.run dispatches on


@pytest.mark.parametrize("name", MODELS)
def test_model_config_composes(name):
    cfg = compose_config("invert", [f"model={name}", "model.image_size=32"])
    assert cfg.model.image_size == 32
    if name.startswith("resnet"):
        assert cfg.model.name == name


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_TO_INIT else n for n in MODELS])
def test_model_config_builds_a_frozen_backbone(name):
    cfg = compose_config("invert", [f"model={name}", "model.image_size=32"])
    backbone = instantiate(cfg.model)
    assert backbone.name == cfg.model.name
    assert backbone.image_size == 32
    assert not backbone.net.training
    assert not any(p.requires_grad for p in backbone.net.parameters())


@pytest.mark.parametrize("name", INVERSIONS)
def test_inversion_config_builds_a_module_factory(name):
    cfg = compose_config("invert", [f"inversion={name}"])
    factory = instantiate(cfg.inversion, _partial_=True)
    assert factory.func is InversionModule
    assert factory.keywords["steps"] > 0
    optimizer = factory.keywords["optimizer"](params=[torch.zeros(1, requires_grad=True)], lr=0.1)
    assert isinstance(optimizer, torch.optim.Optimizer)


def test_both_inversion_options_exist():
    assert {"default", "paper"} <= set(INVERSIONS)


def test_demo_experiment_inverts_five_layers_at_its_own_size():
    cfg = compose_config("invert", ["experiment=demo"])
    assert list(cfg.layer) == ["conv1", "conv2", "conv3", "conv4", "conv5"]
    assert cfg.model.image_size == 64  # the experiment wins over the model group's default


def test_command_line_wins_over_experiment():
    cfg = compose_config("invert", ["experiment=demo", "model.image_size=32"])
    assert cfg.model.image_size == 32
