"""Similarity: our minibatch CKA against the `torch-cka` package, and a memory-bounded large run.

    python bench/similarity_bench.py                      # both parts at the issue's sizes
    python bench/similarity_bench.py --images 200 --large-images 200 --repeats 1   # a quick check that it runs

1. vs torch-cka 0.21 (pip install torch-cka==0.21): the same two untrained models (ResNet18, ResNet34),
   the same layers (their five probe points conv1..conv5, torch-cka hooking relu, layer1..layer4), the
   same held-out patch images at 64 px in the same batches. torch-cka flattens each layer's output and
   averages the unbiased HSIC over batches (Nguyen et al. 2021), so ours runs with pool=flatten and
   minibatch CKA on the same batches. Prints both matrices' largest difference (target: < 1e-4) and
   the seconds of each, alternating, median of --repeats: end to end (model construction and the
   forwards, which both run on the same networks, included), and the CKA alone on the same cached
   features (ours: MinibatchCKA; torch-cka: the body of its `compare` loop with its own `_HSIC`).
2. --large-images (5,000) images at 64 px, 10 layers of each of two models (ResNet18's stem, max-pool
   and eight residual blocks; a 10-block tiny ViT), the pixels too, pool=mean: minibatch CKA plus
   mutual k-NN and Information Imbalance over all images; prints seconds and the process's peak
   resident memory (target: within 8 GiB).
"""

from __future__ import annotations

import argparse
import platform
import resource
import statistics
import time
from datetime import datetime, timezone
from functools import partial
from types import SimpleNamespace

import torch
from torch.utils.data import DataLoader

from representation_probe.data import PatchDataModule
from representation_probe.metrics.cka import MinibatchCKA
from representation_probe.models import FeatureExtractor, create_model
from representation_probe.similarity.pipeline import measure

SIZE = 64
PAIR = ("resnet18", "resnet34")
TORCH_CKA_LAYERS = ["relu", "layer1", "layer2", "layer3", "layer4"]  # = conv1..conv5 (the paper's aliases)
RESNET18_TEN = ["conv1", "conv1_pool", "layer1.0", "layer1.1", "layer2.0", "layer2.1", "layer3.0", "layer3.1",
                "layer4.0", "layer4.1"]


def images(count: int, batch: int) -> DataLoader:
    """The held-out patch crops, in order: what the similarity command compares."""
    datamodule = PatchDataModule(count=count, val_count=count, image_size=SIZE)
    datamodule.setup("validate")
    return DataLoader(datamodule.val_set, batch_size=batch, shuffle=False)


def resnet(name: str, seed: int):
    return create_model("resnet", name, image_size=SIZE, init_seed=seed)


def ours(loader: DataLoader, count: int) -> tuple[torch.Tensor, float]:
    start = time.perf_counter()
    extractors = [FeatureExtractor(resnet(name, seed), ["conv1", "conv2", "conv3", "conv4", "conv5"])
                  for seed, name in enumerate(PAIR)]
    cka = measure(extractors, loader, count, ["cka"], how="flatten", pixels=False, minibatch=True)["cka"]
    return cka[:5, 5:], time.perf_counter() - start


def theirs(loader: DataLoader) -> tuple[torch.Tensor, float]:
    from torch_cka import CKA

    start = time.perf_counter()
    nets = [resnet(name, seed).net for seed, name in enumerate(PAIR)]
    cka = CKA(*nets, model1_name=PAIR[0], model2_name=PAIR[1], model1_layers=TORCH_CKA_LAYERS,
              model2_layers=TORCH_CKA_LAYERS, device="cpu")
    with torch.no_grad():
        cka.compare(loader)
    return cka.export()["CKA"].double(), time.perf_counter() - start


def cached_features(loader: DataLoader) -> list[list[torch.Tensor]]:
    """Per batch, the flattened conv1..conv5 outputs of both models (ResNet18's, then ResNet34's)."""
    extractors = [FeatureExtractor(resnet(name, seed), ["conv1", "conv2", "conv3", "conv4", "conv5"])
                  for seed, name in enumerate(PAIR)]
    with torch.no_grad():
        return [[out.flatten(1) for e in extractors for out in e(batch).values()] for batch, _ in loader]


def ours_cached(batches: list[list[torch.Tensor]]) -> tuple[torch.Tensor, float]:
    start = time.perf_counter()
    accumulator = MinibatchCKA()
    for features in batches:
        accumulator.update(features)
    return accumulator.compute()[:5, 5:], time.perf_counter() - start


def theirs_cached(batches: list[list[torch.Tensor]]) -> tuple[torch.Tensor, float]:
    """torch_cka.CKA.compare's loop body, its own _HSIC, on the cached features."""
    from torch_cka import CKA

    hsic = partial(CKA._HSIC, SimpleNamespace(device="cpu"))
    start = time.perf_counter()
    sums = torch.zeros(5, 5, 3)
    for features in batches:
        for i, x in enumerate(features[:5]):
            k = x @ x.t()
            k.fill_diagonal_(0.0)
            sums[i, :, 0] += hsic(k, k) / len(batches)
            for j, y in enumerate(features[5:]):
                l = y @ y.t()
                l.fill_diagonal_(0)
                sums[i, j, 1] += hsic(k, l) / len(batches)
                sums[i, j, 2] += hsic(l, l) / len(batches)
    cka = sums[:, :, 1] / (sums[:, :, 0].sqrt() * sums[:, :, 2].sqrt())
    return cka.double(), time.perf_counter() - start


def versus_torch_cka(count: int, batch: int, repeats: int) -> None:
    loader = images(count, batch)
    batches = cached_features(loader)
    runs = {"ours": ours, "torch-cka": theirs, "ours, CKA alone": ours_cached, "torch-cka, CKA alone": theirs_cached}
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, function in runs.items():
            matrix, seconds = function(batches) if "alone" in name else function(loader, count) if name == "ours" \
                else function(loader)
            times[name].append(seconds)
            if name == "ours":
                mine = matrix
            elif name == "torch-cka":
                reference = matrix
    print(f"ours (rows {PAIR[0]} conv1..conv5, columns {PAIR[1]}):\n{mine.numpy().round(5)}")
    print(f"torch-cka:\n{reference.numpy().round(5)}")
    print(f"largest |ours - torch-cka|: {(mine - reference).abs().max():.2e} (target < 1e-4)")
    for name, seconds in times.items():
        print(f"{name}: median {statistics.median(seconds):.2f} s, runs {', '.join(f'{t:.2f}' for t in seconds)}")
    for what in ("", ", CKA alone"):
        ratio = statistics.median(times[f"torch-cka{what}"]) / statistics.median(times[f"ours{what}"])
        print(f"speed-up{what}, torch-cka / ours: {ratio:.2f}x (target >= 2x)")


def large(count: int, batch: int) -> None:
    loader = images(count, batch)
    vit = create_model("timm", "vit_tiny_patch16_224", image_size=SIZE, normalize="imagenet", patch_size=4,
                       depth=10, embed_dim=96, num_heads=3)
    extractors = [FeatureExtractor(resnet("resnet18", 0), RESNET18_TEN), FeatureExtractor(vit, list(vit.probe_points))]
    start = time.perf_counter()
    matrices = measure(extractors, loader, count, ["cka", "mknn", "ii"], how="mean", pixels=True, minibatch=True)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    shapes = {name: tuple(matrix.shape) for name, matrix in matrices.items()}
    print(f"{count} images at {SIZE} px, 2 x 10 layers + pixels, minibatch CKA (batches of {batch}), mutual k-NN, "
          f"Information Imbalance: {seconds:.1f} s, peak resident memory {peak:.2f} GiB (target <= 8), matrices {shapes}")
    print(f"CKA of the last layers (ResNet18 layer4.1 vs ViT blocks.9): {matrices['cka'][10, 20]:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000, help="images for the torch-cka comparison")
    parser.add_argument("--batch", type=int, default=100, help="images per minibatch (must divide the images)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--large-images", type=int, default=5000, help="images of the memory-bounded run (0: skip)")
    parser.add_argument("--large-batch", type=int, default=500)
    args = parser.parse_args()
    print(f"# {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.machine()}, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads)")
    versus_torch_cka(args.images, args.batch, args.repeats)
    if args.large_images:
        large(args.large_images, args.large_batch)


if __name__ == "__main__":
    main()
