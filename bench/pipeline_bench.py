"""The ImageNet input pipeline: training images/s per CPU core, dataset.decoder=torchvision (torchvision.io's
libjpeg-turbo, uint8 crops) against torchvision's ImageFolder + PIL with the same crops, on a generated
ImageNet-like folder; and how many cores each needs to feed one GPU at 3,000 images/s.

    python bench/pipeline_bench.py [--root /tmp/imagenet_like] [--classes 100] [--per-class 30] [--images 600]
                                   [--size 224] [--repeats 3] [--device cpu|cuda]

The folder (made once, --classes x --per-class JPEGs of about 500 x 375 px, quality 90) holds random crops,
rescales and flips of scikit-image's photographs, so that files differ. Each side runs in this process on
one thread (torch.set_num_threads(1)) over the same --images files in the same order, the seeded training
view (random resized crop, flip, to float), alternating, --repeats times: the median is reported.
`decoder=nvjpeg, the CPU's part` is what its workers do (read the file, check its header, draw the crop); --device
cuda also times the whole of it (batches of 256 decoded and cropped on the GPU). torchvision 0.29 deprecates
torchvision.io's decoders in favour of TorchCodec (a DeprecationWarning, silenced here); they still work.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision import datasets

from representation_probe.data.base import Seeded
from representation_probe.data.decoding import collate_encoded, decode_batch
from representation_probe.data.folder import FolderDataModule, train_transform
from representation_probe.data.targets import SAMPLES

TARGET = 3000  # images/s one modern GPU trains ResNet50 at in bf16


def make_folder(root: Path, classes: int, per_class: int, seed: int = 0) -> Path:
    """<root>/train/<class>/<i>.jpg (and a small val/): ImageNet's layout and typical file size."""
    from skimage import data as skimage_data

    if (root / "train").is_dir() and len(list((root / "train").iterdir())) == classes:
        return root
    rng = random.Random(seed)
    photos = [Image.fromarray(np.asarray(getattr(skimage_data, name)())).convert("RGB") for name in SAMPLES]
    for split, count in (("train", per_class), ("val", 2)):
        for c in range(classes):
            folder = root / split / f"n{c:08d}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                photo = photos[rng.randrange(len(photos))]
                w, h = photo.size
                side = rng.uniform(0.5, 1.0)
                left, top = rng.uniform(0, w * (1 - side)), rng.uniform(0, h * (1 - side))
                crop = photo.crop((left, top, left + w * side, top + h * side)).resize((500, 375))
                if rng.random() < 0.5:
                    crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
                crop.save(folder / f"{i}.jpg", quality=90)
    return root


def pil_side(root: Path, size: int):
    """torchvision's ImageFolder + PIL, the recipe's transform: what dataset=imagenet used before."""
    return datasets.ImageFolder(root / "train", transform=train_transform(size))


def our_side(root: Path, size: int, decoder: str):
    module = FolderDataModule(str(root), image_size=size, workers=0, decoder=decoder)
    module.setup()
    return module.train_set


def rate(dataset, count: int, device: str | None = None) -> float:
    """Training views per second of the first `count` items, each drawn from (seed 0, epoch 0, index)."""
    seeded = Seeded(dataset, 0)
    start = time.perf_counter()
    if device is None:
        for i in range(count):
            seeded[(0, i)]
    else:
        for first in range(0, count, 256):
            batch = collate_encoded([seeded[(0, i)] for i in range(first, min(first + 256, count))])
            decode_batch(batch, torch.device(device))
        torch.cuda.synchronize()
    return count / (time.perf_counter() - start)


def main() -> None:
    warnings.filterwarnings("ignore", message=".*image decoding and encoding capabilities of TorchVision.*")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("/tmp/imagenet_like"))
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--per-class", type=int, default=30)
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(1)
    make_folder(args.root, args.classes, args.per_class)
    files = sorted((args.root / "train").rglob("*.jpg"))
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}, torch {torch.__version__}, 1 thread; {len(files)} JPEGs of "
          f"{Image.open(files[0]).size} px, {sum(f.stat().st_size for f in files) / len(files) / 1e3:.0f} kB each "
          f"in {args.root}; the first {args.images} in ImageFolder's order, training view at {args.size} px")
    sides = {"ImageFolder + PIL": lambda: rate(pil_side(args.root, args.size), args.images),
             "ours, decoder=pil": lambda: rate(our_side(args.root, args.size, "pil"), args.images),
             "ours, decoder=torchvision": lambda: rate(our_side(args.root, args.size, "torchvision"), args.images),
             # what a worker does for nvjpeg: the file read, its header checked, the crop drawn; the GPU decodes
             "ours, decoder=nvjpeg, the CPU's part": lambda: rate(our_side(args.root, args.size, "nvjpeg"),
                                                                  args.images)}
    if args.device == "cuda":
        sides["ours, decoder=nvjpeg (GPU)"] = lambda: rate(our_side(args.root, args.size, "nvjpeg"), args.images,
                                                          "cuda")
    rates = {name: [] for name in sides}
    for r in range(args.repeats):
        for name, measure in sides.items():
            rates[name].append(measure())
        print(f"repeat {r + 1}: " + ", ".join(f"{n} {v[-1]:.0f}/s" for n, v in rates.items()), flush=True)
    base = statistics.median(rates["ImageFolder + PIL"])
    print(f"\n| training view, {args.size} px, one core | images/s (median of {args.repeats}) | against ImageFolder "
          f"+ PIL | cores to feed {TARGET} images/s |\n|---|---|---|---|")
    for name, values in rates.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.0f} | **{median / base:.2f}x** | {TARGET / median:.1f} |")


if __name__ == "__main__":
    main()
