"""The reconstruction grid of this README: one evaluation image, and per decode run a row of its direct
decoders' reconstructions per layer, its chained ones and gradient inversion's a_g where the run has them
(32 px images, enlarged without smoothing).

    python experiments/decode_depth/grid.py chelsea experiments/decode_depth/chelsea.png outputs/decode_depth/*/
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image, ImageDraw

from representation_probe.runs.rundir import read_run

SCALE, LABEL, GAP = 2, 230, 3  # enlargement, width of the row labels, pixels between cells


def rows(run, image: str) -> list[tuple[str, list[Path]]]:
    """(label, images): the target and the direct decoders; the chain; gradient inversion."""
    found = [s for s in run.summaries if s["image"] == image]
    layers, first = [s["layer"] for s in found], found[0]
    name = f"{first['model']} {Path(first['weights']).stem}".replace(" none", " untrained")
    out = [(f"{name}: decoder", [run.target(image), *(run.decoded(layer, image) for layer in layers)])]
    if "chained_psnr" in first:
        out.append((f"{name}: chained", [None, *(run.decoded(layer, image, chained=True) for layer in layers)]))
    if "inversion_psnr" in first:
        out.append((f"{name}: inversion a_g", [None, *(run.a_g(layer, image, first["seed"]) for layer in layers)]))
    return out


def main(image: str, out: str, directories: list[str]) -> None:
    table = [row for directory in directories for row in rows(read_run(Path(directory)), image)]
    cell = 32 * SCALE + GAP
    width = LABEL + cell * max(len(paths) for _, paths in table)
    canvas = Image.new("RGB", (width, cell * len(table) + GAP), "white")
    draw = ImageDraw.Draw(canvas)
    for r, (label, paths) in enumerate(table):
        draw.text((4, r * cell + cell // 2), label, fill="black")
        for c, path in enumerate(paths):
            if path is not None and path.is_file():
                tile = Image.open(path).convert("RGB")
                canvas.paste(tile.resize((tile.width * SCALE, tile.height * SCALE), Image.NEAREST),
                             (LABEL + c * cell, r * cell + GAP))
    canvas.save(out, optimize=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
