"""The benches and checks that cannot be measured here still run (bench/gpu_bench.py, bench/gpu_check.py), and the
arithmetic that scales the author's loop to more steps (bench/invert_bench.py) is right."""

import json
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
def test_the_gpu_check_runs_every_command_and_the_bench_on_the_cpu(tmp_path):
    """`make test-gpu`'s script on the CPU at the smallest sizes: every step passes and is recorded, the DDP step
    ran two gloo processes that each trained on half the images, the bench measured both precisions."""
    out = tmp_path / "gpu_check"
    done = subprocess.run([sys.executable, str(BENCH / "gpu_check.py"), "--device", "cpu", "--out", str(out),
                           "--jobs", "2"],  # the suite's other worker often waits (SLURM): two commands at once
                          cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert [r["step"] for r in results] == ["train_fp32_channels_last", "train_bf16_channels_last",
                                            "train_ddp_2_processes", "invert_fp32", "invert_bf16",
                                            "invert_bf16_until_0.5", "decode", "probe", "similarity",
                                            "train_folder_nvjpeg", "atlas", "gpu_bench", "pipeline_bench"]
    assert all(r["code"] == 0 for r in results) and "13 of 13 passed" in (out / "results.md").read_text()
    for r in results[:-2]:
        assert (out / r["step"] / "summary.json").is_file() and r["numbers"], r
    ddp = out / "train_ddp_2_processes"
    assert "distributed_backend=gloo" in (ddp / "train.log").read_text()
    assert "MEMBER: 2/2" in (ddp / "train_ddp_process_1.log").read_text()
    assert json.loads((ddp / "summary.json").read_text())["global_step"] == 4  # 64 images / (2 ranks x 16), 2 epochs
    assert sorted(p.name[:11] for p in (ddp / "checkpoints").iterdir()) == ["best-epoch=", "last.ckpt"]
    bench = (out / "gpu_bench.md").read_text()
    rows = [line for line in bench.splitlines() if line.startswith("| 1 |")]
    assert [row.split(" | ")[1] for row in rows] == ["32-true", "bf16-mixed"] and "ratio ours / plain:" in bench
    pipeline = (out / "pipeline_bench.md").read_text()  # the JPEG folder made once, in the results folder
    assert "| ours, decoder=torchvision |" in pipeline and len(list((out / "imagenet_like" / "train").iterdir())) == 4


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
