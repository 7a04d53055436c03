"""One vocabulary: one keyword per concept across rp.* and the command line (layers, images, data, metrics, seed);
a wrong keyword in Python names the closest, as the command line does with a wrong key; the version is known."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

import pytest
import torch
import yaml
from torch import nn

import representation_probe as rp
from representation_probe.config.presets import CONF

STUDIES = ("extract", "invert", "decode", "probe", "similarity", "tradeoff", "atlas")
# the one keyword of each concept, and the spellings that are not it
CONCEPTS = {"layers": ("layer",), "images": ("image",), "seed": ("seeds",), "metrics": ("metric",)}


def test_every_study_spells_each_concept_one_way():
    for name in STUDIES:
        parameters = inspect.signature(getattr(rp, name)).parameters
        for one, others in CONCEPTS.items():
            assert not set(others) & set(parameters), (name, others)
    for command, keys in (("invert", ("layers", "images", "seed")), ("similarity", ("metrics",)),
                          ("atlas", ("images", "seed")), ("decode", ("seed",)), ("probe", ("seed",))):
        entry = yaml.safe_load((CONF / f"{command}.yaml").read_text())
        assert set(keys) <= set(entry) and not {o for k in keys for o in CONCEPTS[k]} & set(entry), command
    for name, spelled in (("similarity", ("debiased", "cka_batch_size", "mknn_k", "ii_k")),):
        assert set(spelled) <= set(inspect.signature(getattr(rp, name)).parameters)
        assert set(spelled) <= set(yaml.safe_load((CONF / f"{name}.yaml").read_text()))  # the same in both


@pytest.mark.parametrize("call, message", [
    (lambda m, x: rp.invert(m, x, layer="1"), r"rp.invert takes no keyword 'layer' \(did you mean layers\?\)"),
    (lambda m, x: rp.extract(m, x, layer="1"), r"rp.extract takes no keyword 'layer' \(did you mean layers\?\)"),
    (lambda m, x: rp.similarity(m, x, metric=["cka"]), r"takes no keyword 'metric' \(did you mean metrics\?\)"),
    (lambda m, x: rp.probe(m, x, seeds=[0, 1]), r"rp.probe takes no keyword 'seeds' \(did you mean seed\?\)"),
    (lambda m, x: rp.load(nn.Conv2d(3, 4, 3), widths=[3]), r"rp.load of a module .* it takes no widths"),
], ids=["invert", "extract", "similarity", "probe", "load"])
def test_a_wrong_keyword_names_the_closest(call, message):
    model, images = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), torch.rand(4, 3, 16, 16)
    with pytest.raises(rp.KeywordError, match=message) as raised:
        call(model, images)
    assert isinstance(raised.value, TypeError) and isinstance(raised.value, rp.ConfigError)


@pytest.mark.parametrize("args, line", [
    (["invert", "layer=conv3"], "unknown key layer (did you mean layers?)"),
    (["similarity", "metric=[cka]"], "unknown key metric (did you mean metrics?)"),
    (["invert", "model=module", "model.target=x:y", "model.width=8"],
     "unknown key model.width; model takes family, image_size, init_seed, name, normalize, num_classes, "
     "probe_points, target, trainable, weights"),
])
def test_the_command_line_says_the_same(run_cli, args, line):
    done = run_cli(*args)
    assert done.code == 2 and done.err.strip().splitlines()[-1].startswith(f"error: {line}")


def test_the_version_is_known_to_python_the_command_line_and_the_record(run_main):
    assert rp.__version__[0].isdigit()
    shown = subprocess.run([sys.executable, "-m", "representation_probe", "--version"], capture_output=True, text=True)
    assert shown.returncode == 0 and shown.stdout.strip() == f"representation-probe {rp.__version__}"
    assert {"invert", "load", "ResultWarning", "__version__"} <= set(dir(rp))  # what completion offers
    run_dir = run_main("invert", ["model=resnet10", "model.image_size=16", "inversion.steps=2", "logger=csv"]).run_dir
    assert json.loads((run_dir / "provenance.json").read_text())["version"] == rp.__version__
