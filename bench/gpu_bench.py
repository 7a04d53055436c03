"""GPU throughput: ResNet50 inversion at 224 px (conv1..conv5, batch 1..64, float32 vs bf16-mixed, share of the
device's bf16 matmul peak) and training images/s of ClassifierModule + Trainer against a plain torch loop.

    python bench/gpu_bench.py [--batches 1 2 4 8 16 32 64] [--steps 30] [--train-batch 128] [--train-steps 40]

Without a CUDA device it prints one line saying so and exits 0. `--device cpu` runs the same measurements on
the CPU (with small --size/--batches, to try the script out: those numbers mean nothing). Everything runs in
this process through the real configs: `trainer=gpu` (bf16-mixed, channels_last for training) and the
`invert` path (InversionModule, LayerEmbedder: folded BatchNorm, channels_last). Inversion rates are steady
state (from step WARMUP, cuDNN's autotuning and allocations done), synchronised; the output is Markdown for
bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

import torch

WARMUP = 5
LAYERS = ["conv1", "conv2", "conv3", "conv4", "conv5"]
PRECISIONS = ("32-true", "bf16-mixed")


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def bf16_peak(device: str) -> tuple[float, int]:
    """(bf16 matmul rate in TFLOP/s, best of 12; its size n): the device's practical tensor-core peak."""
    n = 8192 if device == "cuda" else 1024
    a, b = (torch.randn(n, n, device=device, dtype=torch.bfloat16) for _ in range(2))
    best = float("inf")
    for _ in range(12):
        sync(device)
        start = time.perf_counter()
        torch.mm(a, b)
        sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e12, n


def trainer_overrides(device: str) -> list[str]:
    return ["trainer=gpu"] if device == "cuda" else ["trainer=cpu"]


def inversion(device: str, size: int, batch: int, steps: int, precision: str) -> tuple[float, float]:
    """(steps/s in steady state, GFLOP per step) of `invert` on `batch` images at each of the five layers."""
    from lightning.pytorch.callbacks import Callback
    from timing import compose_invert, flops

    from representation_probe.cli.shell import arguments, trainer_factory
    from representation_probe.data import load_target
    from representation_probe.inversion import InversionModule, Sample
    from representation_probe.models import LayerEmbedder
    from representation_probe.models.load import load

    class Steady(Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
            if batch[0] >= WARMUP and not hasattr(self, "start"):
                sync(device)
                self.start, self.first = time.perf_counter(), batch[0]

        def on_train_end(self, trainer, module) -> None:
            sync(device)
            self.end = time.perf_counter()

    with tempfile.TemporaryDirectory() as out_dir:
        cfg, _ = compose_invert([*trainer_overrides(device), f"trainer.precision={precision}", f"model.image_size={size}",
                                 f"layers=[{','.join(LAYERS)}]", f"seed=[{','.join(map(str, range(batch)))}]",
                                 f"inversion.steps={steps}", "logger=csv", "+trainer.enable_progress_bar=false"], out_dir)
    clock = Steady()
    samples = [Sample(layer, "chelsea", seed) for layer in LAYERS for seed in range(batch)]
    module = InversionModule(LayerEmbedder(load(arguments(cfg.model)), LAYERS),
                             load_target("chelsea", size).expand(len(samples), -1, -1, -1).clone(), samples,
                             **arguments(cfg.inversion))
    trainer_factory(cfg.trainer)(max_epochs=1, logger=False, enable_checkpointing=False, enable_model_summary=False,
                                 num_sanity_val_steps=0, callbacks=[clock]).fit(module)
    rate = (steps - clock.first) / (clock.end - clock.start)

    def step():
        with torch.autocast(device, dtype=torch.bfloat16, enabled=precision == "bf16-mixed"):
            loss, _ = module.distances(module.image, with_m_g=False)
        loss.sum().backward()

    return rate, flops(step) / 1e9


def training(device: str, size: int, batch: int, steps: int) -> tuple[float, float]:
    """(images/s of ClassifierModule + Trainer with trainer=gpu, images/s of the same step as a plain loop)."""
    import torch.nn.functional as F
    from hydra.utils import instantiate
    from timing import compose_invert
    from torch.utils.data import DataLoader

    from representation_probe.models import create_model
    from representation_probe.training import ClassifierModule

    gen = torch.Generator().manual_seed(0)
    batches = [(torch.rand(batch, 3, size, size, generator=gen), torch.randint(100, (batch,), generator=gen))
               for _ in range(steps)]
    pin = device == "cuda"
    batches = [(x.pin_memory(), y.pin_memory()) if pin else (x, y) for x, y in batches]

    def network():
        torch.manual_seed(0)
        return create_model("resnet", "resnet50", image_size=size, num_classes=100, trainable=True).net

    def sgd(params):
        return torch.optim.SGD(params, lr=0.01, momentum=0.9)

    def plain() -> float:  # what trainer=gpu does, written out: bf16 autocast, channels_last, SGD
        net = network().to(device).to(memory_format=torch.channels_last).train()
        optimizer = sgd(net.parameters())
        sync(device)
        start = time.perf_counter()
        for images, labels in batches:
            images = images.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            with torch.autocast(device, dtype=torch.bfloat16):
                loss = F.cross_entropy(net(images), labels.to(device, non_blocking=True))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        sync(device)
        return steps * batch / (time.perf_counter() - start)

    def ours() -> float:
        with tempfile.TemporaryDirectory() as out_dir:
            cfg, _ = compose_invert(trainer_overrides(device), out_dir)  # the trainer group as `train` has it
        module = ClassifierModule(network(), 100, sgd, channels_last=None if device == "cuda" else True)
        trainer = instantiate(cfg.trainer, precision="bf16-mixed", max_epochs=1, logger=False, enable_checkpointing=False,
                              enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
        start = time.perf_counter()
        trainer.fit(module, train_dataloaders=DataLoader(batches, batch_size=None))
        sync(device)
        return steps * batch / (time.perf_counter() - start)

    plain(), ours()  # warm-up: cuDNN autotuning, allocator
    runs = [(plain(), ours()) for _ in range(3)]
    return statistics.median(o for _, o in runs), statistics.median(p for p, _ in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 2, 4, 8, 16, 32, 64])
    parser.add_argument("--steps", type=int, default=30, help="inversion steps per run (the first WARMUP not timed)")
    parser.add_argument("--train-batch", type=int, default=128)
    parser.add_argument("--train-steps", type=int, default=40)
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_bench: no CUDA device here (torch.cuda.is_available() is False); nothing measured")
        return
    if args.steps <= WARMUP:
        sys.exit(f"error: --steps must be more than {WARMUP} (the untimed warm-up steps)")
    name = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    peak, n = bf16_peak(args.device)
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}, {name}, torch {torch.__version__}, cuDNN TF32 for float32 "
          f"convolutions: {torch.backends.cudnn.allow_tf32}; bf16 matmul peak ({n}^3, best of 12): {peak:.1f} TFLOP/s")
    print(f"\n## inversion: ResNet50 untrained, {args.size} px, conv1..conv5 of each image in one batch, "
          f"{args.steps} steps (steady state from step {WARMUP})")
    print("| images | precision | steps/s | images x steps / s | GFLOP per step | TFLOP/s | of bf16 peak |\n"
          "|---|---|---|---|---|---|---|")
    for batch in args.batches:
        for precision in PRECISIONS:
            try:
                rate, gflop = inversion(args.device, args.size, batch, args.steps, precision)
            except torch.OutOfMemoryError:
                print(f"| {batch} | {precision} | out of memory | | | | |", flush=True)
                torch.cuda.empty_cache()
                continue
            tflops = rate * gflop / 1e3
            print(f"| {batch} | {precision} | {rate:.2f} | {rate * batch:.1f} | {gflop:.1f} | {tflops:.2f} | "
                  f"{tflops / peak:.0%} |", flush=True)
    ours, plain = training(args.device, args.size, args.train_batch, args.train_steps)
    print(f"\n## training: ResNet50, {args.size} px, batch {args.train_batch}, SGD, bf16-mixed, channels_last, "
          f"{args.train_steps} steps end to end, median of 3")
    print(f"| path | images/s |\n|---|---|\n| plain torch loop | {plain:.1f} |\n| ClassifierModule + Trainer "
          f"(trainer=gpu) | {ours:.1f} |\nratio ours / plain: **{ours / plain:.3f}**")


if __name__ == "__main__":
    main()
