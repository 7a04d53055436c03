"""Decoder training throughput (`decode`), three comparisons in one process, on ready-made batches:

    python bench/decode_bench.py [--model resnet50] [--size 64] [--batch 32] [--steps 20] [--epochs 4] [--repeats 3]

(a) ours (DecoderModule on a real lightning.Trainer) against a plain torch loop doing the same work
    (the same frozen feature extractor, decoders and Adam), images/s, all probe points, one epoch;
(b) all probe points decoded from one backbone forward (ours) against one training run per layer
    (inverse-tvm trains one inverse per stage, each with its own forward through the backbone), one epoch;
(c) over `--epochs` epochs: one forward per image, its embeddings cached (decode.cache, float32; the cache
    pass timed too, batches through the datamodule's epoch loader as in `decode`), against one run per
    layer recomputing its truncated backbone in every step; and ours without the cache, for reference.
Medians over repeats, alternating; check that nothing else runs (the load is printed).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from representation_probe.data import PatchDataModule
from representation_probe.decoders import DecoderModule, cache
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


def ours(module: DecoderModule, ready: list | DataLoader, epochs: int = 1) -> float:
    trainer = L.Trainer(accelerator="cpu", max_epochs=epochs, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    loader = ready if isinstance(ready, DataLoader) else DataLoader(ready, batch_size=None)
    start = time.perf_counter()
    trainer.fit(module, train_dataloaders=loader)
    return time.perf_counter() - start


def cached(module: DecoderModule, ready: list, epochs: int) -> float:
    """The cache pass over the images, then `epochs` epochs on their stored embeddings, as `decode` does."""
    data = PatchDataModule(count=1, batch_size=len(ready[0][0]), workers=0)  # its epoch loader only
    images = TensorDataset(torch.cat([x for x, _ in ready]), torch.cat([y for _, y in ready]))
    start = time.perf_counter()
    stored = cache.embed(module, images, data.hparams.batch_size, 0, torch.device("cpu"), torch.float32)
    return time.perf_counter() - start + ours(module, data.epoch_loader(stored, workers=0), epochs)


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
    parser.add_argument("--epochs", type=int, default=4, help="of (c); the cache pays from the second")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"# {args.model}, {args.size} px, batch {args.batch}, {args.steps} steps, {args.epochs} epochs in (c), "
          f"{torch.get_num_threads()} threads, load {os.getloadavg()[0]:.2f}")
    ready = batches(args.size, args.batch, args.steps)
    images = args.batch * args.steps
    layers = list(create_model("resnet", args.model, image_size=args.size).probe_points)
    epochs = f"{args.epochs} epochs"
    times: dict[str, list[float]] = {"ours": [], "plain loop": [], "one run per layer": [],
                                     f"ours, cached embeddings, {epochs}": [], f"one run per layer, {epochs}": [],
                                     f"ours, {epochs}": []}
    for repeat in range(args.repeats):
        runs = [ours(decoders(args.model, args.size), ready), plain(decoders(args.model, args.size), ready),
                sum(ours(decoders(args.model, args.size, [layer]), ready) for layer in layers),
                cached(decoders(args.model, args.size), ready, args.epochs),
                sum(ours(decoders(args.model, args.size, [layer]), ready, args.epochs) for layer in layers),
                ours(decoders(args.model, args.size), ready, args.epochs)]
        for t, seconds in zip(times.values(), runs):
            t.append(seconds)
        print(f"repeat {repeat + 1}: " + ", ".join(f"{name} {t[-1]:.2f} s" for name, t in times.items()))
    median = {name: statistics.median(t) for name, t in times.items()}
    print("\n| training, all probe points | median s | images/s |\n|---|---|---|")
    for name, seconds in median.items():
        seen = images * (args.epochs if "epochs" in name else 1)
        print(f"| {name} | {seconds:.2f} | {seen / seconds:.1f} |")
    print(f"\n(a) ours / plain loop throughput: {median['plain loop'] / median['ours']:.2f}x (target >= 0.9x)")
    print(f"(b) one forward for all layers vs one run per layer: {median['one run per layer'] / median['ours']:.2f}x "
          "(target >= 2x)")
    with_cache = median[f"ours, cached embeddings, {epochs}"]
    print(f"(c) {epochs}: one forward, cached embeddings vs one run per layer: "
          f"{median[f'one run per layer, {epochs}'] / with_cache:.2f}x (target >= 2x); "
          f"the cache alone (ours without / with it): {median[f'ours, {epochs}'] / with_cache:.2f}x")


if __name__ == "__main__":
    main()
