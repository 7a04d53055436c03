"""Training throughput: our Lightning ClassifierModule vs a plain PyTorch loop, and noise generation rate.

    python bench/train_bench.py

Both training paths use the same network, batch, data and optimizer, alternate in one process, and
report the median images/s over repeats. The noise set's single-process generation rate is compared
with what ResNet50 consumes at the paper's 224 px on this machine.
"""

from __future__ import annotations

import statistics
import time

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from representation_probe.data import NoiseDataset
from representation_probe.models import create_model
from representation_probe.training import ClassifierModule

MODEL, SIZE, BATCH, STEPS, REPEATS = "resnet18", 64, 32, 20, 5


def noise_batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The same pre-generated batches for both paths, so only the training step is compared."""
    data = NoiseDataset(BATCH * STEPS, classes=100, image_size=SIZE, mean=0.5, std=1 / 3, seed=0)
    items = [data[i] for i in range(len(data))]
    return [(torch.stack([x for x, _ in items[i : i + BATCH]]), torch.tensor([y for _, y in items[i : i + BATCH]]))
            for i in range(0, len(items), BATCH)]


def network() -> torch.nn.Module:
    return create_model("resnet", MODEL, image_size=SIZE, num_classes=100, trainable=True).net


def plain_loop(batches) -> float:
    net = network().train()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    start = time.perf_counter()
    for images, labels in batches:
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(net(images), labels).backward()
        optimizer.step()
    return len(batches) * BATCH / (time.perf_counter() - start)


def lightning_loop(batches) -> float:
    module = ClassifierModule(network(), 100, lambda params: torch.optim.SGD(params, lr=0.01, momentum=0.9))
    trainer = L.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    start = time.perf_counter()
    trainer.fit(module, train_dataloaders=DataLoader(batches, batch_size=None))  # the ready batches, as they are
    return len(batches) * BATCH / (time.perf_counter() - start)


def consumption_rate(size: int = 224, batch: int = 16, steps: int = 3) -> float:
    """Images/s that a ResNet50 training step eats at `size` px (what the noise set must outpace)."""
    net = create_model("resnet", "resnet50", image_size=size, num_classes=100, trainable=True).net.train()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
    images, labels = torch.rand(batch, 3, size, size), torch.randint(100, (batch,))
    F.cross_entropy(net(images), labels).backward()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(net(images), labels).backward()
        optimizer.step()
    return steps * batch / (time.perf_counter() - start)


def generation_rate(size: int = 224, count: int = 300) -> float:
    data = NoiseDataset(count, classes=100, image_size=size, mean=0.5, std=1 / 3, seed=0)
    start = time.perf_counter()
    for i in range(count):
        data[i]
    return count / (time.perf_counter() - start)


def main() -> None:
    torch.manual_seed(0)
    batches = noise_batches()
    plain_loop(batches[:3]), lightning_loop(batches[:3])  # warm-up of both paths
    plain, ours = [], []
    for _ in range(REPEATS):
        plain.append(plain_loop(batches))
        ours.append(lightning_loop(batches))
    p, o = statistics.median(plain), statistics.median(ours)
    print(f"## training step: {MODEL}, {SIZE} px, batch {BATCH}, {STEPS} steps, median of {REPEATS}, "
          f"{torch.get_num_threads()} threads")
    print("| path | images/s |\n|---|---|")
    print(f"| plain PyTorch loop | {p:.1f} |\n| ClassifierModule + Trainer | {o:.1f} |")
    print(f"each repeat, plain: {', '.join(f'{x:.0f}' for x in plain)}; ours: {', '.join(f'{x:.0f}' for x in ours)}")
    print(f"ratio ours / plain: **{o / p:.3f}** (target >= 0.95)\n")
    gen, eat = generation_rate(), consumption_rate()
    print("## noise set: generation vs consumption at 224 px (one process each)")
    print("| what | images/s |\n|---|---|")
    print(f"| NoiseDataset generation (1 process) | {gen:.0f} |\n| ResNet50 training step consumes | {eat:.1f} |")
    print(f"ratio generation / consumption: **{gen / eat:.0f}x** (target >= 10x)")


if __name__ == "__main__":
    main()
