"""MLP inversion throughput: our InversionModule under a Lightning Trainer vs a raw torch loop.

    python bench/mlp_bench.py [--steps 2000] [--repeats 3] [--threads N]    (results in bench/RESULTS.md)

Both paths invert the same MLP (conf/model/mlp.yaml) toward the same target with the same update: L1
loss on the last layer, Adam, lr 0.05 decaying linearly to 0, distances recorded every 10 steps. They
alternate in this process, --repeats times each, and the best rate of each is reported: on a shared
machine other jobs only ever slow a run down, so the fastest repeat is the least disturbed one. Steady-state steps/s are
timed from step WARMUP to the last step (a 200,000-step run is all steady state); the end-to-end
figure includes Trainer set-up and teardown.

`invert` groups several updates into one Lightning batch (`inversion.steps_per_batch: null` = as many
as take ~50 ms); the "one step per batch" column forces `steps_per_batch=1`, Lightning's plain loop.
"""

from __future__ import annotations

import argparse
import logging
import time

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback

from representation_probe.cli import schemas  # noqa: F401 - registers the structured configs
from representation_probe.cli.shell import arguments
from representation_probe.config.presets import CONF
from representation_probe.data import load_target
from representation_probe.inversion import InversionModule, Sample
from representation_probe.models import LayerEmbedder
from representation_probe.models.load import load

WARMUP = 50
MODELS = {  # label -> overrides of conf/model/mlp.yaml
    "widths=[1000] (Fig. 6/7, smallest)": ["model.widths=[1000]"],
    "widths=[3000] (Fig. 6/7)": ["model.widths=[3000]"],
    "width=3000 depth=4 (Fig. 8)": ["model.width=3000", "model.depth=4"],
}


def compose_invert(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("invert", overrides=["model=mlp", "logger=csv", *overrides])


class SteadyClock(Callback):
    """perf_counter at the start of step WARMUP and at the end of the last step."""

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        first = int(batch[0])  # a batch is (first, stop) of consecutive steps
        if first >= WARMUP and not hasattr(self, "start"):
            self.start, self.first = time.perf_counter(), first

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.end = time.perf_counter()


def ours(cfg, backbone, target, progress_bar: bool, steps_per_batch: int | None = None) -> tuple[float, float]:
    """(steady steps/s, end-to-end steps/s) of the real module and Trainer, built as `invert` builds them."""
    module = InversionModule(embedder=LayerEmbedder(backbone, [backbone.default_layer]), targets=target[None],
                             samples=[Sample(backbone.default_layer, "chelsea", 0)],
                             **arguments(cfg.inversion) | dict(steps_per_batch=steps_per_batch))
    clock = SteadyClock()
    trainer = instantiate(cfg.trainer, max_epochs=1, logger=False, enable_checkpointing=False,
                          enable_model_summary=False, num_sanity_val_steps=0, enable_progress_bar=progress_bar,
                          callbacks=[clock])
    start = time.perf_counter()
    trainer.fit(module)
    total = time.perf_counter() - start
    steps = cfg.inversion.steps
    return (steps - clock.first) / (clock.end - clock.start), steps / total


def raw(cfg, backbone, target) -> tuple[float, float]:
    """The same update written as a plain loop on the backbone's nn.Sequential."""
    inv, net = cfg.inversion, backbone.net
    steps, (lr_start, lr_end), record_every = inv.steps, inv.lr, inv.record_every  # read once: OmegaConf is slow
    start = time.perf_counter()
    gen = torch.Generator().manual_seed(0)
    image = (inv.init_mean + torch.randn(target[None].shape, generator=gen) * inv.init_std).requires_grad_(True)
    with torch.no_grad():
        goal = net(target[None])
    optimizer = torch.optim.Adam([image], lr=lr_start)
    history = []
    for step in range(steps):
        if step == WARMUP:
            steady = time.perf_counter()
        lr = lr_start + (lr_end - lr_start) * step / steps
        diff = net(image) - goal
        loss = diff.abs().sum()
        if step % record_every == 0:
            history.append((step, float(loss.detach()), float(diff.detach().norm()),
                            float((image.detach() - target).norm())))
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    end = time.perf_counter()
    return (steps - WARMUP) / (end - steady), steps / (end - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--models", nargs="*", default=list(MODELS), help="labels of MODELS to run")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # no per-fit banner in the table
    print(f"torch {torch.__version__}, {args.threads} threads, {args.steps} steps, best of {args.repeats} "
          f"repeats, steady state from step {WARMUP}")
    print("| model | raw loop steps/s | ours steps/s (progress bar on: CLI default) | ratio | ours, bar off | ratio "
          "| end to end: raw / ours (bar on) | ours, one step per batch, bar on | ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label in args.models:
        cfg = compose_invert([*MODELS[label], f"inversion.steps={args.steps}"])
        backbone = load(arguments(cfg.model))
        target = load_target("chelsea", cfg.model.image_size)
        runs = {"raw": [], "bar": [], "nobar": [], "one": []}
        for _ in range(args.repeats):  # alternate, so load changes on a shared machine hit all paths alike
            runs["raw"].append(raw(cfg, backbone, target))
            runs["bar"].append(ours(cfg, backbone, target, progress_bar=True))
            runs["nobar"].append(ours(cfg, backbone, target, progress_bar=False))
            runs["one"].append(ours(cfg, backbone, target, progress_bar=True, steps_per_batch=1))
        steady = {key: max(r[0] for r in value) for key, value in runs.items()}
        total = {key: max(r[1] for r in value) for key, value in runs.items()}
        print(f"| {label} | {steady['raw']:.0f} | {steady['bar']:.0f} | {steady['bar'] / steady['raw']:.2f}x "
              f"| {steady['nobar']:.0f} | {steady['nobar'] / steady['raw']:.2f}x "
              f"| {total['raw']:.0f} / {total['bar']:.0f} | {steady['one']:.0f} "
              f"| {steady['one'] / steady['raw']:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
