"""No silently degenerate run (metrics/doubts.py): the checks, and a collapsed trade-off flagged everywhere."""

from __future__ import annotations

import json
import math

import pytest
import torch

from representation_probe.metrics import doubts


def test_dead_units_are_the_latent_columns_that_never_vary():
    z = torch.randn(50, 6)
    z[:, [1, 4]] = torch.tensor([0.0, 3.0])  # a ReLU stuck at 0, and a constant
    assert doubts.dead_units(z) == [1, 4]
    assert doubts.dead_units(torch.randn(50, 2, 3, 3)) == []  # a CNN's z, flattened per sample


def test_a_loss_that_never_left_its_start_is_flagged_and_one_that_fell_is_not():
    assert doubts.loss_never_fell([2.30, 2.31, 2.29, 2.30])  # 2.29 > 0.98 * 2.30
    assert doubts.loss_never_fell([2.3, 1.9, 1.2]) == []
    assert doubts.loss_never_fell([math.nan, math.nan])[0].endswith("NaN or infinite throughout")
    assert doubts.loss_never_fell([2.3, 2.3]) == []  # too few records to say


def test_chance_allows_three_standard_errors_of_the_test_size():
    assert doubts.at_chance(0.12, classes=10, count=360)  # 0.1 + 3 * 0.0158 = 0.147
    assert doubts.at_chance(0.16, classes=10, count=360) == []
    assert doubts.at_chance(0.55, classes=2, count=10)  # 0.5 + 3 * 0.158: ten guesses say little
    assert doubts.no_better_than_mean(0.295, 0.296) and doubts.no_better_than_mean(0.25, 0.296) == []


@pytest.mark.slow
@pytest.mark.parametrize("z", ["none", "relu"])
def test_a_trade_off_whose_learning_rate_is_absurd_is_flagged_in_summary_log_and_report(z, tmp_path, run_cli):
    run_dir = tmp_path / "run"
    done = run_cli("tradeoff", "dataset=digits", "tradeoff.weight=0.5", "optimizer.lr=50", "trainer.max_steps=120",
                   f"net.z_activation={z}", "logger=csv", f"hydra.run.dir={run_dir}")
    assert done.code == 0, done.err[-2000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert any("at chance" in w for w in summary["warnings"]) and any("mean image" in w for w in summary["warnings"])
    if z == "relu":  # the original's ReLU on z: every unit died, and they are named
        assert summary["dead_units"] == [0, 1, 2, 3]
        assert summary["warnings"][0].startswith("4 of 4 units of z are dead")
        assert "DegenerateWarning: tradeoff tradeoff_fc_medium seed 0 weight 0.5 latent 4: 4 of 4 units of z are dead" \
            in done.out + done.err
    assert run_cli("report", str(run_dir)).code == 0
    page = (run_dir / "report.html").read_text()
    assert f"Degenerate or suspect results ({len(summary['warnings'])})" in page and "at chance" in page


def test_the_fully_connected_trade_off_nets_keep_z_linear_unless_asked_for_the_originals_relu():
    from torch import nn

    from representation_probe import ConfigError
    from representation_probe.tradeoff import build_net

    linear = build_net("tradeoff_fc_medium", (1, 8, 8), 10, latent=4)
    assert isinstance(linear.encoder[-1], nn.Linear) and linear.encoder[-1].out_features == 4
    original = build_net("tradeoff_fc_medium", (1, 8, 8), 10, latent=4, z_activation="relu")
    assert isinstance(original.encoder[-1], nn.ReLU)
    with pytest.raises(ConfigError, match="net.z_activation must be relu .* or none, got 'tanh'"):
        build_net("tradeoff_fc_small", (1, 8, 8), 10, z_activation="tanh")
    with pytest.raises(ConfigError, match="net.z_activation is not an option of tradeoff_cnn_small"):
        build_net("tradeoff_cnn_small", (1, 28, 28), 10, z_activation="none")
