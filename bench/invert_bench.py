"""conv1..conv5 inversion of an untrained ResNet50 at 299 px, one image: the author's loop vs ours, at 50 and
500 steps, ours in float32 and in bf16-mixed.

    python bench/invert_bench.py [--steps 50 500] [--repeats 3] [--full-baseline]
                                 (from the repository root; `make bench`; results in bench/RESULTS.md)

Every timing is end to end in this process (model construction included), the three alternating, --repeats
times each; the median is reported. The author's loop (bench/author_loop.py) is measured at the smallest
--steps; at the others it is scaled from that run's per-step time when the script shows that time is flat
(first against second half of the steps, within 5%), else, or with --full-baseline, measured in full. Then: the
machine's float32 and bf16 matmul peaks, the FLOPs of one step of each loop and the share of the peak they
reach, and where ours' time outside the steps goes (one cProfile'd run).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import platform
import pstats
import statistics
import tempfile
import time
from pathlib import Path

import author_loop
import torch
import torchvision
from hydra.core.hydra_config import HydraConfig
from timing import best_time, compose_invert, cpu_matmul_peaks, flops, timed

from representation_probe.cli.shell import arguments
from representation_probe.commands import invert
from representation_probe.data import load_target
from representation_probe.inversion import InversionModule, Sample
from representation_probe.models import LayerEmbedder
from representation_probe.models.load import load

SIZE, IMAGE = 299, "chelsea"
LAYERS = author_loop.LAYERS
VARIANTS = {"ours fp32": ["trainer.precision=32-true"], "ours bf16": ["trainer.precision=bf16-mixed"]}
FLAT = 0.05  # the baseline's per-step time may differ by this much between the halves of a run to be scaled


def overrides(steps: int, variant: list[str]) -> list[str]:
    return [f"model.image_size={SIZE}", f"inversion.steps={steps}", "inversion.blur_sigma=[2.4,0.4]",
            f"layers=[{','.join(LAYERS)}]", f"images={IMAGE}", "logger=csv", *variant]


def baseline(steps: int) -> list[author_loop.Run]:
    image = load_target(IMAGE, SIZE).unsqueeze(0)
    torch.manual_seed(0)
    return [author_loop.run(layer, image, author_loop.PAPER_EPS[layer], steps) for layer in LAYERS]


def ours(steps: int, variant: list[str]) -> tuple[list[tuple[float, float]], float]:
    """(m_g / m_s, m_i) per layer and the trainer.fit seconds (from summary.json) of one `invert` run."""
    with tempfile.TemporaryDirectory() as out_dir:
        task_cfg, cfg = compose_invert(overrides(steps, variant), out_dir)
        HydraConfig.instance().set_config(cfg)
        invert.run(task_cfg)
        summary = json.loads((Path(out_dir) / "summary.json").read_text())
    return [(row["m_g_over_m_s"], row["m_i"]) for row in summary], summary[0]["seconds"]


def step_seconds(repeats: list[list[author_loop.Run]]) -> tuple[float, float]:
    """One baseline step of all five layers, in the first and in the second half of the steps: per repeat,
    each layer's median step time (step 0, a warm-up, left out) summed over the layers; the median over
    the repeats."""
    halves = ([], [])
    for runs in repeats:
        sums = [0.0, 0.0]
        for r in runs:
            durations = [b - a for a, b in zip(r.ends, r.ends[1:])]
            half = len(durations) // 2
            sums[0] += statistics.median(durations[:half])
            sums[1] += statistics.median(durations[half:])
        halves[0].append(sums[0])
        halves[1].append(sums[1])
    return statistics.median(halves[0]), statistics.median(halves[1])


def our_step(precision: str):
    """One step's compute of ours: forward + input-gradient backward of the five truncated nets, batched,
    under autocast as Lightning's bf16-mixed runs it."""
    with tempfile.TemporaryDirectory() as out_dir:
        task_cfg, _ = compose_invert(overrides(50, [f"trainer.precision={precision}"]), out_dir)
    samples = [Sample(layer, IMAGE, 0) for layer in LAYERS]
    module = InversionModule(embedder=LayerEmbedder(load(arguments(task_cfg.model)), LAYERS),
                             targets=load_target(IMAGE, SIZE).expand(len(samples), -1, -1, -1).clone(),
                             samples=samples, **arguments(task_cfg.inversion))
    module.on_fit_start()  # the target embeddings

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16-mixed"):
            loss, _ = module.distances(module.image, with_m_g=False)
        loss.sum().backward()
        module.image.grad = None

    return step


def baseline_step():
    """One step's compute of the baseline for the five layers (one model each, weight gradients on)."""
    image = load_target(IMAGE, SIZE).unsqueeze(0)
    nets = [author_loop.NewResNet(torchvision.models.resnet50().eval(), layer) for layer in LAYERS]
    targets = [net(image).detach() for net in nets]

    def step():
        for net, target in zip(nets, targets):
            a = image.clone().requires_grad_(True)
            torch.sum(torch.abs(target - net(a))).backward()

    return step


PARTS = {  # where ours' time goes: label -> functions whose cumulative time it is (file:function)
    "compose the config": ["timing.py:compose_invert"],
    "build the model (random init)": ["backbone.py:create_model"],
    "trace + fold the five layers": ["features.py:__init__"],
    "Trainer()": ["trainer.py:__init__"],
    "target embeddings and m_s (2 forwards)": ["module.py:on_fit_start"],
    "the steps (training_step)": ["module.py:training_step"],
    "final distances (1 forward)": ["module.py:on_train_end"],
    "PSNR, SSIM": ["module.py:results"],
    "write the run directory": ["invert.py:_write"],
}


def profile_ours(steps: int) -> None:
    """Where one float32 run of ours spends its time, by cProfile's cumulative seconds (it slows Python,
    not the convolutions: the Python-heavy parts, Lightning and tracing, read high)."""
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.runcall(ours, steps, VARIANTS["ours fp32"])
    total = time.perf_counter() - start
    stats = pstats.Stats(profiler).stats
    cumulative = {}
    for (path, _, name), (_, _, _, ct, _) in stats.items():  # names repeat (several __init__ in a file): the largest
        key = f"{path.rsplit('/', 1)[-1]}:{name}"
        cumulative[key] = max(ct, cumulative.get(key, 0.0))
    fit = cumulative.get("trainer.py:fit", 0.0)
    print(f"\nwhere ours' time goes, one float32 run of {steps} steps under cProfile ({total:.1f} s):")
    print("| part | s |\n|---|---|")
    inside_fit = 0.0
    for label, names in PARTS.items():
        seconds = max(cumulative.get(n, 0.0) for n in names)
        inside_fit += seconds if label in ("target embeddings and m_s (2 forwards)", "the steps (training_step)",
                                           "final distances (1 forward)") else 0.0
        print(f"| {label} | {seconds:.2f} |")
    print(f"| Lightning's loop, hooks and progress bar (trainer.fit minus the three above) | {fit - inside_fit:.2f} |")
    named = sum(max(cumulative.get(n, 0.0) for n in names) for names in PARTS.values()) + fit - inside_fit
    print(f"| other (imports already done; Hydra's job set-up) | {total - named:.2f} |")


def main() -> None:
    global SIZE
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", nargs="+", type=int, default=[50, 500])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--full-baseline", action="store_true", help="measure the baseline at every --steps")
    parser.add_argument("--size", type=int, default=SIZE, help="image side (299: the paper's; smaller to try it out)")
    parser.add_argument("--bf16-until", type=float, help="also time inversion.bf16_until=<this> (ours sched)")
    args = parser.parse_args()
    if args.bf16_until is not None:
        VARIANTS["ours sched"] = ["trainer.precision=32-true", f"inversion.bf16_until={args.bf16_until}"]
    SIZE = args.size
    steps_list = sorted(args.steps)
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}, {platform.machine()}, {platform.processor() or 'cpu'}, torch "
          f"{torch.__version__} ({torch.get_num_threads()} threads); {len(LAYERS)} layers, {SIZE} px, steps "
          f"{', '.join(map(str, steps_list))}")
    table, base_flat = [], False
    for steps in steps_list:
        measure_baseline = steps == steps_list[0] or args.full_baseline or not base_flat  # else scaled
        runs = {"baseline": [], **{name: [] for name in VARIANTS}}
        for r in range(args.repeats):  # alternate, so drift in machine load hits every side alike
            if measure_baseline:
                base_runs, *base = timed(lambda: baseline(steps))
                runs["baseline"].append((base, base_runs))
            for name, variant in VARIANTS.items():
                (ratios, fit_s), *ours_t = timed(lambda: ours(steps, variant))
                runs[name].append((ours_t, ratios))
            print(f"{steps} steps, repeat {r + 1}: " + ", ".join(
                f"{name} {v[-1][0][0]:.1f} s" for name, v in runs.items() if v), flush=True)
        for name, values in runs.items():  # both did the work; not a quality test
            if values:
                last = values[-1][1]
                pairs = [(x.ratio, x.m_i) for x in last] if name == "baseline" else last
                print(f"  {name} m_g/m_s, m_i at the end, conv1..conv5:", ", ".join(f"{a:.2f} {b:.0f}" for a, b in pairs))
        med = {name: statistics.median(t[0][0] for t in v) for name, v in runs.items() if v}
        others = {name: ", ".join("n/a" if t[0][1] is None else f"{t[0][1]:.2f}" for t in v) for name, v in runs.items() if v}
        if measure_baseline:
            first, second = step_seconds([base_runs for _, base_runs in runs["baseline"]])
            flat = abs(second - first) / first <= FLAT
            print(f"  baseline step (5 layers), median of steps 1..{steps // 2} vs {steps // 2}..{steps - 1}: "
                  f"{first:.3f} s vs {second:.3f} s: {'flat' if flat else 'NOT flat'} (within {FLAT:.0%})")
            base_fixed, base_step, base_flat, base_steps = med["baseline"] - steps * second, second, flat, steps
        else:
            med["baseline"] = base_fixed + steps * base_step
            others["baseline"] = f"scaled from {base_steps} steps: {base_fixed:.1f} s + {steps} x {base_step:.3f} s"
        table.append((steps, med, others))
    print("\n| steps | baseline (author's loop) s | " + " | ".join(f"{name} s" for name in VARIANTS) + " | "
          + " | ".join(f"baseline / {name}" for name in VARIANTS)
          + " | other processes' CPU during the runs (cores) |\n|" + "---|" * (3 + 2 * len(VARIANTS)))
    for steps, med, others in table:
        print(f"| {steps} | {med['baseline']:.1f} | " + " | ".join(f"{med[name]:.1f}" for name in VARIANTS) + " | "
              + " | ".join(f"**{med['baseline'] / med[name]:.2f}x**" for name in VARIANTS) + " | "
              + "; ".join(f"{k}: {v}" for k, v in others.items()) + " |")

    peaks = {dtype: cpu_matmul_peaks(dtype) for dtype in (torch.float32, torch.bfloat16)}
    for dtype, values in peaks.items():
        print(f"\n{dtype} matmul peak, best of 20: " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in values.items()))
    peak = {"fp32": max(peaks[torch.float32].values()), "bf16": max(peaks[torch.bfloat16].values())}
    fns = {"ours fp32": (our_step("32-true"), "fp32"), "ours bf16": (our_step("bf16-mixed"), "bf16"),
           "baseline": (baseline_step(), "fp32")}
    print("\n| one step, 5 layers | GFLOP | best s | GFLOP/s | of the peak of its precision |\n|---|---|---|---|---|")
    for name, (fn, kind) in fns.items():
        f, s = flops(fn), best_time(fn, 5 if name != "baseline" else 3)
        print(f"| {name} | {f / 1e9:.1f} | {s:.3f} | {f / s / 1e9:.0f} | {f / s / 1e9 / peak[kind]:.0%} |")
    profile_ours(steps_list[0])


if __name__ == "__main__":
    main()
