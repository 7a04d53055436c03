"""A peer for inversion: plenoptic's Metamer (the field's maintained metamer library) against ours, seconds until
m_g/m_s <= 0.3 on the same untrained ResNet50 layer and image, each with its own defaults.

    pip install --no-deps plenoptic==2.1.1 pyrtools einops pooch importlib_resources   (`make bench` does)
    python bench/plenoptic_bench.py [--layers conv2 conv3 conv4 conv5] [--size 128] [--image chelsea]
                                    [--cap 3000] [--threshold 0.3]

Per layer, from the same model (init_seed 0) and target: ours is `rp.invert(model, image, layer)` with its
defaults (200 steps of Adam, lr 0.05 falling linearly to 0, a_0 ~ N(0.7, 1/20)), stopped once m_g/m_s <=
--threshold (its distances are recorded every 10 steps); plenoptic is `po.Metamer(image, model)` with its
defaults (Adam lr 0.01 with amsgrad from uniform noise, MSE of the representations plus 0.1 x
its range penalty), synthesised 10 iterations at a time until the same threshold or --cap iterations (calls of
10 never fill the 50-iteration window of its stop criterion; a second table shows one call as a user makes
it, where that criterion may end it first). m_g is
measured the same way for both, ||O(x) - O(a)|| with O the layer's forward map, against the same m_s
(a' = a + N(0, 1/20), seed 0), outside the clocks; each clock starts before its object is built.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch
from time_to_quality import Clock
from torch import nn

import representation_probe as rp
from representation_probe import metrics
from representation_probe.api.images import as_images
from representation_probe.models import LayerEmbedder


class Layer(nn.Module):
    """The model truncated at one layer, as plenoptic takes a model: image -> representation."""

    def __init__(self, embedder: LayerEmbedder, layer: str):
        super().__init__()
        self.embedder, self.layer = embedder, layer

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.embedder(images, self.layer)


def ours(model, target: torch.Tensor, layer: str, threshold: float) -> tuple[float, bool, int, float]:
    """(seconds, reached the threshold, steps, m_g/m_s at the end) of rp.invert with its defaults."""
    start = time.perf_counter()
    clock = Clock(start, threshold)
    rp.invert(model, target[None], layer, callbacks=[clock])
    hit = next(((t, step, r[0]) for t, step, r in clock.points if max(r) <= threshold), None)
    seconds, step, ratios = clock.points[-1]
    return (hit[0], True, hit[1], hit[2]) if hit else (seconds, False, step, ratios[0])


def theirs(model, target: torch.Tensor, layer: str, m_s: float, cap: int,
           threshold: float) -> tuple[float, bool, int, float]:
    """The same for plenoptic's Metamer with its defaults, timed in chunks of 10 iterations."""
    import plenoptic as po

    embedder = LayerEmbedder(model, [layer])
    with torch.no_grad():
        goal = embedder(target[None], layer)
    seconds, start = 0.0, time.perf_counter()
    net = Layer(LayerEmbedder(model, [layer]), layer).eval()
    po.remove_grad(net)
    metamer = po.Metamer(target[None], net)
    ratio = float("inf")
    while len(metamer.losses) < cap:
        before = len(metamer.losses)
        metamer.synthesize(max_iter=10)
        seconds += time.perf_counter() - start
        with torch.no_grad():  # outside the clock
            ratio = float((embedder(metamer.metamer.detach(), layer) - goal).norm()) / m_s
        if ratio <= threshold:
            return seconds, True, len(metamer.losses), ratio
        if len(metamer.losses) == before:  # its own stop criterion (loss change < 1e-4 over 50 iterations)
            break
        start = time.perf_counter()
    return seconds, False, len(metamer.losses), ratio


def one_call(model, target: torch.Tensor, layer: str, m_s: float, cap: int) -> tuple[float, int, float]:
    """(seconds, iterations, m_g/m_s) of one `synthesize(max_iter=cap)`, as a user calls it: its stop criterion
    (the loss changing by < 1e-4 over 50 iterations) may end it first."""
    import plenoptic as po

    embedder = LayerEmbedder(model, [layer])
    start = time.perf_counter()
    net = Layer(LayerEmbedder(model, [layer]), layer).eval()
    po.remove_grad(net)
    metamer = po.Metamer(target[None], net)
    metamer.synthesize(max_iter=cap)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        ratio = float((embedder(metamer.metamer.detach(), layer) - embedder(target[None], layer)).norm()) / m_s
    return seconds, len(metamer.losses), ratio


def main() -> None:
    os.environ["TQDM_DISABLE"] = "1"  # plenoptic's progress bar, every 10 iterations
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", nargs="+", default=["conv2", "conv3", "conv4", "conv5"])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--image", default="chelsea")
    parser.add_argument("--cap", type=int, default=3000)
    parser.add_argument("--threshold", type=float, default=0.3)
    args = parser.parse_args()
    import plenoptic as po

    model = rp.load("resnet50", image_size=args.size)
    target = as_images(args.image, args.size)[args.image]
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}, {platform.machine()}, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), plenoptic {po.__version__}; ResNet50 untrained, {args.size} px, "
          f"{args.image}; until m_g/m_s <= {args.threshold}; ours its 200 steps at most, plenoptic {args.cap}")
    print("| layer | ours s | ours steps | plenoptic s | plenoptic iterations | plenoptic / ours | final m_g/m_s ours, "
          "plenoptic |\n|---|---|---|---|---|---|---|")
    calls = []
    for layer in args.layers:
        embedder = LayerEmbedder(model, [layer])
        _, shift = metrics.draws(0, target.shape, 0.7, 0.05, 0.05)
        with torch.no_grad():
            m_s = float((embedder((target + shift)[None], layer) - embedder(target[None], layer)).norm())
        a = ours(model, target, layer, args.threshold)
        b = theirs(model, target, layer, m_s, args.cap, args.threshold)
        ratio = "n/a (ours did not get there)" if not a[1] else f"**{b[0] / a[0]:.1f}x**" if b[1] else \
            f"**> {b[0] / a[0]:.1f}x** (plenoptic did not get there)"
        cells = [f"{x[0]:.1f}" + ("" if x[1] else " (not reached)") for x in (a, b)]
        print(f"| {layer} | {cells[0]} | {a[2]} | {cells[1]} | {b[2]} | {ratio} | {a[3]:.3f}, {b[3]:.3f} |", flush=True)
        calls.append((layer, one_call(model, target, layer, m_s, args.cap)))
    print(f"\nplenoptic's Metamer in one synthesize(max_iter={args.cap}) call, its stop criterion on (above, the calls "
          "of 10 iterations never fill its 50-iteration window):\n| layer | seconds | iterations | m_g/m_s at its end "
          "|\n|---|---|---|---|")
    for layer, (seconds, iterations, ratio) in calls:
        print(f"| {layer} | {seconds:.1f} | {iterations} | {ratio:.3f} |")


if __name__ == "__main__":
    main()
