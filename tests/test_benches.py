"""The benches that cannot be measured here still run (bench/gpu_bench.py), and the arithmetic that scales
the author's loop to more steps (bench/invert_bench.py) is right."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from .conftest import cli_env

BENCH = Path(__file__).resolve().parents[1] / "bench"


def gpu_bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCH / "gpu_bench.py"), *args], cwd=BENCH, env=cli_env(),
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present: the bench would measure it")
def test_gpu_bench_without_a_gpu_says_so_in_one_line_and_succeeds():
    result = gpu_bench()
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [result.stdout.strip()] and "no CUDA device" in result.stdout


@pytest.mark.slow
def test_gpu_bench_measurements_run_on_the_cpu():
    """The measuring code itself, on the CPU at toy sizes (its numbers mean nothing)."""
    result = gpu_bench("--device", "cpu", "--size", "32", "--batches", "1", "--steps", "7", "--train-batch", "2",
                       "--train-steps", "2")
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| 1 |")]
    assert [row.split(" | ")[1] for row in rows] == ["32-true", "bf16-mixed"]
    assert "ratio ours / plain:" in result.stdout


def test_the_baselines_step_is_one_repeats_five_layers_not_every_repeats():
    """invert_bench scales the author's loop to 500 steps from one five-layer step: per repeat the layers'
    median step times summed, then the median over repeats (it once summed the repeats too: 3x)."""
    sys.path.insert(0, str(BENCH))
    try:
        from author_loop import Run
        from invert_bench import step_seconds
    finally:
        sys.path.remove(str(BENCH))

    def run(first: float, second: float) -> Run:  # 4 steps of `first` s, then 4 of `second` s
        ends, t = [0.0], 0.0
        for step in [first] * 4 + [second] * 4:
            t += step
            ends.append(t)
        return Run(ends=ends)

    repeats = [[run(0.1 * r, 0.2 * r) for _ in range(5)] for r in (1, 2, 3)]  # a slower machine each repeat
    first, second = step_seconds(repeats)
    assert first == pytest.approx(5 * 0.1 * 2) and second == pytest.approx(5 * 0.2 * 2)  # the middle repeat
