"""Does bf16-mixed inversion end where float32 does? Final m_g/m_s and m_i per layer over several seeds.

    OMP_NUM_THREADS=1 python bench/bf16_fidelity.py [--settings demo fig2] [--seeds 0 1 2 3 4] [--out DIR]

Not a timing: each setting is inverted with every seed as one batch, once with `trainer.precision=32-true`
and once with `bf16-mixed`, through the real command line (the exact commands are printed). Per layer it
prints float32's seed-to-seed spread (mean, sd, [min, max]) beside bf16's, and whether bf16's mean lies
inside float32's [min, max]. The distances themselves are float32 in both (InversionModule records them
outside autocast). Run directories go to --out; --reuse reads finished ones instead of running again.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = {  # name -> overrides of `invert`
    "demo": ["experiment=demo"],  # 64 px, Adam, 200 steps (the README's demo)
    "fig2": ["experiment=fig2_untrained_resnet50"],  # 128 px, Adam 0.05 -> 0.01, eq. 5 blur, 300 steps
}
PRECISIONS = {"fp32": "32-true", "bf16": "bf16-mixed"}
KEYS = {"m_g_over_m_s": ".3f", "m_i": ".2f"}


def command(setting: str, precision: str, seeds: list[int], run_dir: Path, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "representation_probe", "invert", *SETTINGS[setting],
            f"seed=[{','.join(map(str, seeds))}]", f"trainer.precision={PRECISIONS[precision]}", "logger=csv",
            *extra, f"hydra.run.dir={run_dir}"]


def run(setting: str, precision: str, seeds: list[int], out: Path, extra: list[str], reuse: bool) -> list[dict]:
    run_dir = out / f"{setting}_{precision}"
    cmd = command(setting, precision, seeds, run_dir, extra)
    print("$ python", " ".join(cmd[1:]), flush=True)
    if not (reuse and (run_dir / "summary.json").is_file()):
        subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return json.loads((run_dir / "summary.json").read_text())


def spread(values: list[float], fmt: str) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):{fmt}} ± {sd:{fmt}} [{min(values):{fmt}}, {max(values):{fmt}}]"


def table(setting: str, rows: dict[str, list[dict]]) -> list[str]:
    """One line per layer and key; returns the layers where bf16 fell outside float32's spread."""
    print(f"\n| {setting} | layer | fp32: mean ± sd [min, max] over seeds | bf16: mean ± sd [min, max] | bf16 mean "
          "inside fp32's range |\n|---|---|---|---|---|")
    outside = []
    layers = dict.fromkeys(r["layer"] for r in rows["fp32"])
    for key, fmt in KEYS.items():
        for layer in layers:
            fp32, bf16 = ([r[key] for r in rows[p] if r["layer"] == layer] for p in PRECISIONS)
            mean = statistics.mean(bf16)
            verdict = "yes" if min(fp32) <= mean <= max(fp32) else f"**no**, {'higher' if mean > max(fp32) else 'lower'}"
            if verdict != "yes":
                outside.append(f"{setting} {layer} {key} ({verdict[8:]})")
            print(f"| {key} | {layer} | {spread(fp32, fmt)} | {spread(bf16, fmt)} | {verdict} |")
    return outside


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "bf16_fidelity")
    parser.add_argument("--reuse", action="store_true", help="read finished run directories instead of re-running")
    parser.add_argument("overrides", nargs="*", help="extra `invert` overrides for every run (inversion.steps=50)")
    args = parser.parse_args()
    outside = []
    for setting in args.settings:
        rows = {p: run(setting, p, args.seeds, args.out, args.overrides, args.reuse) for p in PRECISIONS}
        outside += table(setting, rows)
    print("\nbf16 outside float32's seed-to-seed range:", ", ".join(outside) or "none")


if __name__ == "__main__":
    main()
