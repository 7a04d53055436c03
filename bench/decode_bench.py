"""Decoder training throughput (`decode`), two comparisons in one process, on ready-made batches:

    python bench/decode_bench.py [--model resnet50] [--size 64] [--batch 32] [--steps 20] [--repeats 3]

(a) ours (DecoderModule on a real lightning.Trainer) against a plain torch loop doing the same work
    (the same frozen feature extractor, decoders and Adam), images/s, all probe points;
(b) all probe points decoded from one backbone forward (ours) against one training run per layer
    (inverse-tvm trains one inverse per stage, each with its own forward through the backbone).
Medians over repeats, alternating; check that nothing else runs (the load is printed).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import lightning as L
import torch
from torch.utils.data import DataLoader

from representation_probe.data import PatchDataModule
from representation_probe.decoders import DecoderModule
from representation_probe.models import FeatureExtractor, create_model


def batches(size: int, batch: int, steps: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    data = PatchDataModule(count=batch * steps, image_size=size, batch_size=batch, workers=0)
    data.setup()
    return list(DataLoader(data.train_set, batch_size=batch))


def decoders(model: str, size: int, layers: list[str] | None = None) -> DecoderModule:
    torch.manual_seed(0)
    backbone = create_model("resnet", model, image_size=size)
    features = FeatureExtractor(backbone, layers or list(backbone.probe_points))
    return DecoderModule(features, optimizer=lambda params: torch.optim.Adam(params, lr=1e-3))


def ours(module: DecoderModule, ready: list) -> float:
    trainer = L.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    start = time.perf_counter()
    trainer.fit(module, train_dataloaders=DataLoader(ready, batch_size=None))
    return time.perf_counter() - start


def plain(module: DecoderModule, ready: list) -> float:
    """The same step written out: one frozen forward, every decoder's MSE, one backward, Adam."""
    module.train()
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)
    start = time.perf_counter()
    for images, _ in ready:
        optimizer.zero_grad(set_to_none=True)
        sum(module.losses(images).values()).backward()
        optimizer.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"# {args.model}, {args.size} px, batch {args.batch}, {args.steps} steps, {torch.get_num_threads()} threads, "
          f"load {os.getloadavg()[0]:.2f}")
    ready = batches(args.size, args.batch, args.steps)
    images = args.batch * args.steps
    layers = list(create_model("resnet", args.model, image_size=args.size).probe_points)
    times: dict[str, list[float]] = {"ours": [], "plain loop": [], "one run per layer": []}
    for repeat in range(args.repeats):
        times["ours"].append(ours(decoders(args.model, args.size), ready))
        times["plain loop"].append(plain(decoders(args.model, args.size), ready))
        per_layer = [ours(decoders(args.model, args.size, [layer]), ready) for layer in layers]
        times["one run per layer"].append(sum(per_layer))
        print(f"repeat {repeat + 1}: " + ", ".join(f"{name} {t[-1]:.2f} s" for name, t in times.items()))
    median = {name: statistics.median(t) for name, t in times.items()}
    print("\n| training, all probe points | median s | images/s |\n|---|---|---|")
    for name, seconds in median.items():
        print(f"| {name} | {seconds:.2f} | {images / seconds:.1f} |")
    print(f"\n(a) ours / plain loop throughput: {median['plain loop'] / median['ours']:.2f}x (target >= 0.9x)")
    print(f"(b) one forward for all layers vs one run per layer: {median['one run per layer'] / median['ours']:.2f}x "
          "(target >= 2x)")


if __name__ == "__main__":
    main()
