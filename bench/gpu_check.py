"""Every command end to end on one CUDA device at small size, then bench/gpu_bench.py: one results folder.

    python bench/gpu_check.py [--device auto|cuda|cpu] [--out gpu_check] [--jobs 1]     (`make test-gpu`)

Each step is the real command line (`python -m representation_probe ...`, this interpreter) in a run directory
of its own under --out: training in float32 and in bf16-mixed with channels_last, DDP on the devices present,
inversion in float32, bf16-mixed and the bf16_until schedule, decoders, probes, similarity, training from an
ImageNet-like folder of JPEGs decoded by nvjpeg on the device (bench/pipeline_bench.py makes it), the atlas.
Without CUDA (or with --device cpu) the same steps run on the CPU at the smallest sizes, so the script itself is
known to work (the suite runs it). --out/results.md holds a line per step (exit code, seconds, its headline
numbers, the command), --out/gpu_bench.md and pipeline_bench.md the benches; the exit code is 1 if a step failed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
from pipeline_bench import make_folder

HERE = Path(__file__).resolve().parent
HEADLINES = ("val_acc", "m_g_over_m_s", "psnr", "accuracy", "cka_vs_pixels", "decoder_psnr")


@dataclass
class Step:
    name: str
    command: str
    overrides: list[str]


def steps(device: str, gpus: int, folder: Path) -> list[Step]:
    """The commands at the size this device runs in seconds (a GPU: 64-128 px; a CPU: the smallest)."""
    gpu = device == "cuda"
    trainer = "trainer=gpu" if gpu else "trainer=cpu"
    size = 64 if gpu else 16
    train = ["model=resnet18", "dataset=noise", f"dataset.image_size={size}", "dataset.classes=10",
             f"dataset.count={4096 if gpu else 64}", f"dataset.val_count={512 if gpu else 16}",
             f"dataset.batch_size={256 if gpu else 16}", "dataset.workers=0", "trainer.max_epochs=2", "logger=csv"]
    invert = ["model=resnet50", "layers=probe_points", "images=[chelsea,astronaut]", "logger=csv", trainer,
              f"model.image_size={128 if gpu else 32}", f"inversion.steps={200 if gpu else 4}"]
    data = ["dataset=patches", f"dataset.image_size={32 if gpu else 16}", f"dataset.count={2048 if gpu else 96}",
            f"dataset.val_count={256 if gpu else 32}", f"dataset.batch_size={128 if gpu else 32}", "dataset.workers=0",
            "logger=csv"]
    ddp = ["trainer=ddp", f"trainer.devices={gpus}"] if gpu else ["trainer=ddp_cpu"]
    return [
        Step("train_fp32_channels_last", "train", [*train, trainer, "trainer.precision=32-true",
                                                   "classifier.channels_last=true"]),
        Step("train_bf16_channels_last", "train", [*train, trainer, "trainer.precision=bf16-mixed",
                                                   "classifier.channels_last=true"]),
        Step(f"train_ddp_{gpus if gpu else 2}_processes", "train", [*train, *ddp]),
        Step("invert_fp32", "invert", [*invert, "trainer.precision=32-true"]),
        Step("invert_bf16", "invert", [*invert, "trainer.precision=bf16-mixed"]),
        Step("invert_bf16_until_0.5", "invert", [*invert, "trainer.precision=32-true", "inversion.bf16_until=0.5"]),
        Step("decode", "decode", ["model=resnet18", *data, trainer, f"trainer.max_epochs={3 if gpu else 1}",
                                  "decode.colour_images=2", f"inversion.steps={100 if gpu else 3}",
                                  "eval_images=[chelsea]"]),
        Step("probe", "probe", ["model=resnet18", *data, trainer, f"trainer.max_epochs={20 if gpu else 2}",
                                f"dataset.test_count={512 if gpu else 32}"]),
        Step("similarity", "similarity", [*data, "models=[resnet18,vit_tiny]", "metrics=[cka,mknn,ii]", "mknn_k=3"]),
        Step("train_folder_nvjpeg", "train", ["model=resnet18", "dataset=imagenet", f"dataset.root={folder}",
                                              "dataset.decoder=nvjpeg", f"dataset.image_size={size * 2}",
                                              f"dataset.batch_size={128 if gpu else 16}", "dataset.workers=2",
                                              "trainer.max_epochs=1", "logger=csv", trainer]),
        Step("atlas", "atlas", ["model=resnet10", f"dataset.image_size={size}", "images=[chelsea]",
                                "dataset.count=96", "dataset.val_count=32", "dataset.batch_size=32",
                                "studies.invert.steps=5", "studies.decode.epochs=1", "studies.decode.data.count=96",
                                "studies.decode.data.val_count=32", "studies.probe.epochs=2",
                                "studies.similarity.data.count=64", "studies.similarity.data.val_count=64",
                                "logger=csv"]),
    ]


def run(step: Step, out: Path) -> dict:
    run_dir = out / step.name
    command = [sys.executable, "-m", "representation_probe", step.command, *step.overrides, f"hydra.run.dir={run_dir}"]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    summary = run_dir / "summary.json"
    rows = json.loads(summary.read_text()) if done.returncode == 0 and summary.is_file() else []
    rows = rows if isinstance(rows, list) else [rows]
    numbers = {key: statistics.mean(r[key] for r in rows if isinstance(r.get(key), (int, float)))
               for key in HEADLINES if any(isinstance(r.get(key), (int, float)) for r in rows)}
    errors = [line for line in done.stderr.splitlines() if line.startswith("error")] or done.stderr.splitlines()[-3:]
    return dict(step=step.name, code=done.returncode, seconds=round(seconds, 1), numbers=numbers,
                error=" / ".join(errors) if done.returncode else "",
                command="python -m representation_probe " + " ".join([step.command, *step.overrides]))


def bench(script: str, arguments: list[str], out: Path) -> dict:
    """A bench script of this folder, its output (Markdown) into <out>/<script>.md."""
    command = [sys.executable, str(HERE / script), *arguments]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=HERE)
    name = script.removesuffix(".py")
    (out / f"{name}.md").write_text(done.stdout + (f"\n```\n{done.stderr[-3000:]}\n```\n" if done.returncode else ""))
    return dict(step=name, code=done.returncode, seconds=round(time.perf_counter() - start, 1), numbers={},
                error=done.stderr.strip().splitlines()[-1] if done.returncode and done.stderr.strip() else "",
                command=" ".join(["python", f"bench/{script}", *arguments]))


def benches(device: str, folder: Path) -> list[tuple[str, list[str]]]:
    """gpu_bench.py and pipeline_bench.py: their defaults on a GPU, the smallest sizes on the CPU."""
    if device == "cuda":
        return [("gpu_bench.py", ["--device", "cuda"]),
                ("pipeline_bench.py", ["--device", "cuda", "--root", str(folder)])]
    return [("gpu_bench.py", ["--device", "cpu", "--size", "32", "--batches", "1", "--steps", "7", "--train-batch",
                              "2", "--train-steps", "2"]),
            ("pipeline_bench.py", ["--root", str(folder), "--classes", "4", "--per-class", "8", "--images", "8",
                                   "--size", "32", "--repeats", "1"])]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")
    parser.add_argument("--out", type=Path, default=Path("gpu_check"))
    parser.add_argument("--jobs", type=int, default=1, help="commands run at once (1: each step's seconds its own)")
    args = parser.parse_args()
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    if device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but torch sees no CUDA device", file=sys.stderr)
        return 2
    gpus = torch.cuda.device_count() if device == "cuda" else 0
    args.out.mkdir(parents=True, exist_ok=True)
    what = torch.cuda.get_device_name(0) + f" x{gpus}" if gpus else "CPU (smallest sizes: the script's own check)"
    head = (f"# gpu_check {time.strftime('%Y-%m-%d %H:%M')}: {what}; Python {sys.version.split()[0]}, torch "
            f"{torch.__version__}\n\n| step | exit | seconds | headline | command |\n|---|---|---|---|---|")
    print(head, flush=True)
    lines, results, start = [head], [], time.perf_counter()
    folder = make_folder(args.out.resolve() / "imagenet_like", *((100, 30) if device == "cuda" else (4, 8)))
    pool = ThreadPoolExecutor(args.jobs)  # the commands `--jobs` at a time, shown in order; then the benches alone
    commands = pool.map(lambda step: run(step, args.out), steps(device, gpus, folder))
    for result in itertools.chain(commands, (bench(*b, args.out) for b in benches(device, folder))):
        results.append(result)
        headline = ", ".join(f"{k} {v:.3g}" for k, v in result["numbers"].items()) or result["error"][:200]
        lines.append(f"| {result['step']} | {result['code']} | {result['seconds']} | {headline} | "
                     f"`{result['command']}` |")
        print(lines[-1], flush=True)
    pool.shutdown()
    failed = [r["step"] for r in results if r["code"] != 0]
    lines.append(f"\n{len(results) - len(failed)} of {len(results)} passed in {time.perf_counter() - start:.0f} s"
                 + (f"; failed: {', '.join(failed)}" if failed else ""))
    print(lines[-1])
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
