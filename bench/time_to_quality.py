"""Seconds until m_g/m_s <= 0.3 at every one of conv1..conv5 (untrained ResNet50, 128 px, three images):
ours with its defaults vs the author's loop with its best eps per layer.

    python bench/time_to_quality.py [--cap 2000] [--threshold 0.3] [--size 128]
                                    [--eps resnet50_untrained_128px] [--png bench/time_to_quality.png]

Both loops get the same budget, --cap steps, and both stop as soon as they reach the threshold (an oracle
neither has otherwise). Ours: the `invert` defaults (Adam, lr 0.05 decaying linearly to 0 over the run, no
blur) with inversion.steps=--cap, all 15 (layer, image) samples as one batch, in float32 (the default) and
with trainer.precision=bf16-mixed; its distances are seen every inversion.record_every (10) steps, so its
time is up to 9 steps late (every step would cost bf16 a float32 forward each). The author's loop
(bench/author_loop.py, computing m_g/m_s at every step from the step's own forward, SGD
+ eq. 5 blur with sigma 2.4 -> 0.4 over --cap steps) runs one (layer, image) after the other with the eps
of conf/eps/<--eps>.yaml. Every clock starts before the config is composed / the first model is built, so
set-up counts; a point is stamped at the end of the step whose image it measures. Prints a table ready for
RESULTS.md and writes the curves to --png. (`invert`'s own default of 200 steps ends just above 0.3 at
128 px for the worst of the 15 samples: hence the common budget.)
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import author_loop
import torch
from lightning.pytorch.callbacks import Callback
from omegaconf import OmegaConf
from timing import CONF, compose_invert

from representation_probe.api import invert
from representation_probe.cli.shell import arguments, trainer_factory
from representation_probe.data import load_target
from representation_probe.models.load import load
from representation_probe.reporting.figures import colormap, png, subplots

IMAGES = ["chelsea", "astronaut", "coffee"]
LAYERS = author_loop.LAYERS


class Clock(Callback):
    """(seconds since `start`, step, m_g / m_s of every sample) at each of the module's records; stops the
    run once every sample is at or below `stop_below`."""

    def __init__(self, start: float, stop_below: float):
        self.start, self.stop_below, self.points, self.seen = start, stop_below, [], 0

    def _take(self, module) -> None:
        n, m_s = len(module.samples), module.m_s.tolist()
        while self.seen + n <= len(module.history):
            rows = module.history[self.seen:self.seen + n]
            self.points.append((time.perf_counter() - self.start, rows[0]["step"],
                                [r["m_g"] / s for r, s in zip(rows, m_s)]))
            self.seen += n

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self._take(module)
        if self.points and max(self.points[-1][2]) <= self.stop_below:
            trainer.should_stop = True

    def on_fit_end(self, trainer, module) -> None:
        self._take(module)  # the distances after the last update


def ours(size: int, variant: list[str], cap: int, threshold: float) -> tuple[list[tuple], list[str]]:
    """The clock's points of one `invert` run with the defaults and `cap` steps, and the layer of each sample."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out_dir:
        cfg, _ = compose_invert([f"model.image_size={size}", f"layers=[{','.join(LAYERS)}]",
                                 f"images=[{','.join(IMAGES)}]", f"inversion.steps={cap}", "logger=csv",
                                 *variant], out_dir)
    clock = Clock(start, threshold)
    result = invert(load(arguments(cfg.model)), IMAGES, LAYERS, seed=[0], **arguments(cfg.inversion),
                    trainer=trainer_factory(cfg.trainer), callbacks=[clock])
    return clock.points, [row["layer"] for row in result.rows]


def baseline(size: int, eps: dict, cap: int, threshold: float) -> list[dict]:
    """One run of the author's loop per (layer, image), one after the other, each stopped at the threshold."""
    start, runs = time.perf_counter(), []
    for layer in LAYERS:
        for name in IMAGES:
            torch.manual_seed(0)
            run = author_loop.run(layer, load_target(name, size)[None], float(eps[layer]), cap, stop_below=threshold)
            runs.append(dict(layer=layer, image=name, seconds=[t - start for t in run.ends], ratios=run.ratios,
                             reached=run.stopped_at, final=run.ratio))
            print(f"  author's loop {layer} {name}: " + (f"reached at step {run.stopped_at}, {runs[-1]['seconds'][-1]:.1f} s"
                  if run.stopped_at is not None else f"not reached in {cap} steps (m_g/m_s {run.ratio:.3f})"), flush=True)
    return runs


def first_reach(points: list[tuple], threshold: float) -> tuple[float, int] | None:
    return next(((t, step) for t, step, ratios in points if max(ratios) <= threshold), None)


def per_layer(values: list[float], layers: list[str]) -> str:
    return ", ".join(f"{max(v for v, l in zip(values, layers) if l == layer):.3f}" for layer in LAYERS)


def figure(curves: dict, runs: list[dict], threshold: float) -> bytes:
    colors = dict(zip(LAYERS, colormap("viridis")([0.0, 0.25, 0.5, 0.75, 0.95])))
    fig, axes = subplots(1, 2, figsize=(11, 4), sharex=True, sharey=True)  # one time axis: sooner is visible
    for (label, (points, layers)), style in zip(curves.items(), ("-", "--", "-.")):
        for layer in LAYERS:  # the worst image of the layer
            worst = [max(r for r, l in zip(ratios, layers) if l == layer) for _, _, ratios in points]
            axes[0].plot([t for t, _, _ in points], worst, style, color=colors[layer],
                         label=f"{layer} ({label})")
    for run in runs:
        axes[1].plot(run["seconds"][:len(run["ratios"])], run["ratios"], color=colors[run["layer"]],
                     label=run["layer"] if run["image"] == IMAGES[0] else None)
    for ax, title in zip(axes, ("ours (defaults), worst image per layer", "author's loop (best eps), a run per layer and image")):
        ax.axhline(threshold, color="grey", linestyle=":")
        ax.set(yscale="log", xlabel="seconds since start", title=title)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("m_g / m_s")
    return png(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cap", type=int, default=2000, help="steps of each author's-loop run at most")
    parser.add_argument("--threshold", type=float, default=0.3)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--eps", default="resnet50_untrained_128px", help="a conf/eps/ table for the author's loop")
    parser.add_argument("--png", type=Path, default=Path(__file__).with_name("time_to_quality.png"))
    parser.add_argument("--bf16-until", type=float, help="also ours with inversion.bf16_until=<this> (of --cap steps)")
    parser.add_argument("--no-baseline", action="store_true", help="ours only (the author's loop takes longest)")
    args = parser.parse_args()
    eps = OmegaConf.load(CONF / "eps" / f"{args.eps}.yaml")
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}, {platform.machine()}, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads); ResNet50 untrained, {args.size} px, {', '.join(IMAGES)}, "
          f"m_g/m_s <= {args.threshold} at all of {', '.join(LAYERS)}; author's eps ({args.eps}): "
          + ", ".join(f"{layer} {eps[layer]}" for layer in LAYERS))
    variants = {"trainer.precision=32-true": ["trainer.precision=32-true"],
                "trainer.precision=bf16-mixed": ["trainer.precision=bf16-mixed"]}
    if args.bf16_until is not None:
        variants[f"inversion.bf16_until={args.bf16_until}"] = [f"inversion.bf16_until={args.bf16_until}"]
    curves = {name: ours(args.size, variant, args.cap, args.threshold) for name, variant in variants.items()}
    runs = [] if args.no_baseline else baseline(args.size, eps, args.cap, args.threshold)
    print(f"\n| loop | m_g/m_s <= {args.threshold} at all layers | seconds | steps | final m_g/m_s conv1..conv5 "
          "(worst image) |\n|---|---|---|---|---|")
    reached = {}
    for name, (points, layers) in curves.items():
        hit = first_reach(points, args.threshold)
        reached[name] = hit[0] if hit else None
        t_end, steps, last = points[-1]
        print(f"| ours, defaults, <= {args.cap} steps, {name} | {'yes' if hit else '**not reached**'} | "
              f"{hit[0] if hit else t_end:.1f} | {hit[1] if hit else steps} | {per_layer(last, layers)} |")
    if not runs:
        args.png.write_bytes(figure(curves, runs, args.threshold))
        return
    missed = [r for r in runs if r["reached"] is None]
    total = runs[-1]["seconds"][-1]
    finals = [r["final"] if r["reached"] is None else r["ratios"][-1] for r in runs]
    print(f"| author's loop, best eps per layer, <= {args.cap} steps a run | "
          f"{'**not reached** (' + str(len(missed)) + ' of ' + str(len(runs)) + ' runs)' if missed else 'yes'} | "
          f"{total:.1f} | {sum(len(r['ratios']) for r in runs)} in {len(runs)} runs | "
          f"{per_layer(finals, [r['layer'] for r in runs])} |")
    for name, seconds in reached.items():
        if seconds is not None:
            verdict = f"at least {total / seconds:.1f}x (the author's loop did not get there)" if missed else \
                f"{total / seconds:.1f}x"
            print(f"ours ({name}) reaches it sooner by: **{verdict}**")
    args.png.write_bytes(figure(curves, runs, args.threshold))
    print(f"curves: {args.png}")


if __name__ == "__main__":
    main()
