"""conv1..conv5 inversion of an untrained ResNet50 at 299 px, 50 steps, one image: the author's loop vs ours.

    python bench/invert_bench.py        (from the repository root; `make bench`; results in bench/RESULTS.md)

Both run in this process, alternately, REPEATS times each; every timing is end to end (model construction
included) and the median is reported. Then the machine's float32 matmul peak, the FLOPs of one step of each
(torch's FlopCounterMode on a real step) and the share of the peak that they reach.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torchvision
import torchvision.transforms.functional as TF
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import open_dict
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from representation_probe.commands import invert
from representation_probe.data import load_target
from representation_probe.inversion import Sample
from representation_probe.models import LayerEmbedder

LAYERS = ["conv1", "conv2", "conv3", "conv4", "conv5"]
SIZE, STEPS, SIGMA = 299, 50, (2.4, 0.4)
# The paper's hand-tuned eps, 1/2 at conv1 down to 1/1000 at conv5 (it scales the update, not the cost).
EPS = {"conv1": 0.5, "conv2": 0.1, "conv3": 0.02, "conv4": 0.005, "conv5": 0.001}
REPEATS = 3
CONF = Path(__file__).resolve().parent.parent / "conf"
OVERRIDES = [f"model.image_size={SIZE}", f"inversion.steps={STEPS}", "inversion.blur_sigma=[2.4,0.4]",
             f"layer=[{','.join(LAYERS)}]", "image=chelsea", "logger=csv"]


# ---- (a) the baseline, written like the author's resnet_representations.py ----------------------------
class NewResNet(nn.Module):
    """The author's hand-truncated forward, cut after `layer` (conv1 = relu, conv2 = layer1, ...)."""

    def __init__(self, model: nn.Module, layer: str):
        super().__init__()
        self.model, self.depth = model, LAYERS.index(layer)

    def forward(self, x):
        x = self.model.conv1(x)
        x = self.model.bn1(x)
        x = self.model.relu(x)
        if self.depth >= 1:
            x = self.model.maxpool(x)
            x = self.model.layer1(x)
        if self.depth >= 2:
            x = self.model.layer2(x)
        if self.depth >= 3:
            x = self.model.layer3(x)
        if self.depth >= 4:
            x = self.model.layer4(x)
        return x


def baseline_layer(layer: str, image: torch.Tensor) -> tuple[float, float]:
    """One run of the author's script for one layer; returns m_g / m_s and m_i."""
    resnet = torchvision.models.resnet50()  # built per run (torch.hub.load in the original), untrained
    resnet.eval()  # eval() only: the weights keep requires_grad=True
    resnet2 = NewResNet(resnet, layer).eval()
    target_tensor = resnet2(image).detach()
    shifted = image + torch.randn(1, 3, SIZE, SIZE) / 20
    m_s = torch.sqrt(torch.sum((target_tensor - resnet2(shifted)) ** 2))
    single_input = torch.randn(1, 3, SIZE, SIZE) / 20 + 0.7
    for i in range(STEPS):
        single_input = single_input.detach()
        single_input.requires_grad = True
        loss = torch.sum(torch.abs(target_tensor - resnet2(single_input)))
        loss.backward()  # also computes, and accumulates into, .grad of every weight, as the original does
        sigma = SIGMA[0] * (STEPS - i) / STEPS + SIGMA[1] * i / STEPS
        single_input = single_input.detach() - EPS[layer] * single_input.grad
        single_input = TF.gaussian_blur(single_input, 3, sigma=sigma)  # eq. 5
    m_g = torch.sqrt(torch.sum((target_tensor - resnet2(single_input)) ** 2))
    m_i = torch.sqrt(torch.sum((single_input - image) ** 2))
    return float((m_g / m_s).detach()), float(m_i)


def baseline() -> list[tuple[float, float]]:
    image = load_target("chelsea", SIZE).unsqueeze(0)
    return [baseline_layer(layer, image) for layer in LAYERS]  # one run per layer


# ---- (b) ours: the real `invert` command, in process ----------------------------------------------------
def compose_invert(out_dir: str):
    """What `python -m representation_probe invert <OVERRIDES>` composes: (task config, full config)."""
    with initialize_config_dir(str(CONF), version_base="1.3", job_name="bench"):
        cfg = compose("invert", [*OVERRIDES, f"hydra.run.dir={out_dir}"], return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = out_dir  # Hydra's run_job sets this; compose() does not
        task_cfg = cfg.copy()
        del task_cfg["hydra"]  # as Hydra does before calling the task
    return task_cfg, cfg


def ours() -> tuple[list[tuple[float, float]], float]:
    """(m_g / m_s, m_i) per layer and the trainer.fit seconds (from summary.json) of one `invert` run."""
    with tempfile.TemporaryDirectory() as out_dir:
        task_cfg, cfg = compose_invert(out_dir)
        HydraConfig.instance().set_config(cfg)
        invert.run(task_cfg)
        summary = json.loads((Path(out_dir) / "summary.json").read_text())
    return [(row["m_g_over_m_s"], row["m_i"]) for row in summary], summary[0]["seconds"]


# ---- timing helpers -----------------------------------------------------------------------------------
def busy_seconds() -> float | None:
    """CPU-seconds all processes have used (Linux), to see whether something else ran during a timing."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return None
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # minus idle and iowait


def timed(fn):
    """(fn(), wall seconds, cores used by other processes meanwhile: ~0 on a quiet machine)."""
    busy, own, start = busy_seconds(), sum(os.times()[:2]), time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - start
    others = None if busy is None else (busy_seconds() - busy - (sum(os.times()[:2]) - own)) / seconds
    return out, seconds, others


def best_time(fn, repeats: int) -> float:
    """Best of `repeats` after a warm-up: for the parts of a run, where contention only ever adds time."""
    fn()  # warm-up: allocator, oneDNN primitive caches
    return min(timed(fn)[1] for _ in range(repeats))


# ---- (c) matmul peak, FLOPs of one step ---------------------------------------------------------------
def matmul_peak_gflops(n: int = 2048) -> dict[str, float]:
    """float32 GEMM rate of the machine's two libraries: MKL (torch.mm) and oneDNN (a 1x1 convolution,
    channels_last: a pure GEMM). Which is faster depends on the CPU: MKL runs its AVX-512 kernels on
    Intel only, so on AMD Zen 5 oneDNN's GEMM is twice as fast; the peak is the faster of the two."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    x = torch.randn(8, n, 32, 32).contiguous(memory_format=torch.channels_last)  # (8192 x 2048) @ (2048 x 512)
    conv = torch.nn.Conv2d(n, n // 4, 1, bias=False).to(memory_format=torch.channels_last).requires_grad_(False)
    conv_flop = 2 * x.numel() * (n // 4)
    return {"torch.mm 2048x2048 (MKL)": 2 * n**3 / best_time(lambda: torch.mm(a, b), 20) / 1e9,
            "1x1 convolution 8192x2048x512 (oneDNN)": conv_flop / best_time(lambda: conv(x), 20) / 1e9}


def our_step():
    """One step's compute of ours: forward + input-gradient backward of the five truncated nets, batched."""
    with tempfile.TemporaryDirectory() as out_dir:
        task_cfg, _ = compose_invert(out_dir)
    samples = [Sample(layer, "chelsea", 0) for layer in LAYERS]
    module = instantiate(task_cfg.inversion, _partial_=True)(
        embedder=LayerEmbedder(instantiate(task_cfg.model), LAYERS),
        targets=load_target("chelsea", SIZE).expand(len(samples), -1, -1, -1).clone(), samples=samples)
    module.on_fit_start()  # the target embeddings

    def step():
        loss, _ = module.distances(module.image)
        loss.sum().backward()
        module.image.grad = None

    return step


def baseline_step():
    """One step's compute of the baseline for the five layers (one model each, weight gradients on)."""
    image = load_target("chelsea", SIZE).unsqueeze(0)
    nets = [NewResNet(torchvision.models.resnet50().eval(), layer) for layer in LAYERS]
    targets = [net(image).detach() for net in nets]

    def step():
        for net, target in zip(nets, targets):
            a = image.clone().requires_grad_(True)
            torch.sum(torch.abs(target - net(a))).backward()

    return step


def flops(fn) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops()


def main() -> None:
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}, {platform.machine()}, nproc {os.cpu_count()}, torch {torch.__version__}"
          f" ({torch.get_num_threads()} threads); {len(LAYERS)} layers, {SIZE} px, {STEPS} steps")
    runs = {"baseline (author's loop)": [], "ours (invert command)": []}
    fit = []
    for r in range(REPEATS):  # alternate, so drift in machine load hits both sides alike
        base_ratios, *base = timed(baseline)
        (our_ratios, fit_s), *our = timed(ours)
        runs["baseline (author's loop)"].append(base)
        runs["ours (invert command)"].append(our)
        fit.append(fit_s)
        print(f"repeat {r + 1}: baseline {base[0]:.1f} s, ours {our[0]:.1f} s (trainer.fit {fit_s:.1f} s)", flush=True)
    for name, values in (("baseline", base_ratios), ("ours", our_ratios)):  # both did the work; not a quality test
        print(f"{name} m_g/m_s, m_i at the end, conv1..conv5:", ", ".join(f"{r:.2f} {i:.0f}" for r, i in values))

    med = {name: statistics.median(s for s, _ in times) for name, times in runs.items()}
    print("\n| end to end | median s | runs (s) | other processes' CPU during each run (cores) |\n|---|---|---|---|")
    for name, times in runs.items():
        others = ", ".join("n/a" if o is None else f"{o:.2f}" for _, o in times)
        print(f"| {name} | {med[name]:.1f} | {', '.join(f'{s:.1f}' for s, _ in times)} | {others} |")
    base_med, our_med = med.values()
    print(f"\n**speedup, baseline / ours: {base_med / our_med:.2f}x** (target >= 4x)")

    peaks = matmul_peak_gflops()
    peak = max(peaks.values())
    our_fn, base_fn = our_step(), baseline_step()
    build = best_time(torchvision.models.resnet50, 3)
    steps = {"ours": (flops(our_fn), best_time(our_fn, 5)), "baseline": (flops(base_fn), best_time(base_fn, 3))}
    print("\nfloat32 matmul peak, best of 20: " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peaks.items())
          + f"; peak {peak:.0f}")
    print("\n| one step, 5 layers | GFLOP | best s | GFLOP/s | of peak |\n|---|---|---|---|---|")
    for name, (f, s) in steps.items():
        print(f"| {name} | {f / 1e9:.1f} | {s:.3f} | {f / s / 1e9:.0f} | {f / s / 1e9 / peak:.0%} |")
    our_f, our_s = steps["ours"]
    base_f, base_s = steps["baseline"]
    print(f"\nwhere the time goes: baseline {STEPS} x {base_s:.2f} s steps = {STEPS * base_s:.1f} s, "
          f"{len(LAYERS)} x {build:.2f} s model builds = {len(LAYERS) * build:.1f} s, "
          f"rest {base_med - STEPS * base_s - len(LAYERS) * build:.1f} s; ours {STEPS} x {our_s:.2f} s steps = "
          f"{STEPS * our_s:.1f} s, rest of trainer.fit {statistics.median(fit) - STEPS * our_s:.1f} s "
          f"(target embeddings, Lightning, last distances), setup and outputs "
          f"{our_med - statistics.median(fit):.1f} s")
    print(f"ours does {our_f / base_f:.0%} of the baseline's FLOPs per step; even at 100% of the matmul peak its "
          f"{STEPS} steps would take {STEPS * our_f / peak / 1e9:.1f} s, a ceiling of "
          f"{base_med / (STEPS * our_f / peak / 1e9 + our_med - STEPS * our_s):.1f}x end to end")


if __name__ == "__main__":
    main()
