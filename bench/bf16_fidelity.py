"""Does bf16 inversion end where float32 does? Final m_g/m_s and m_i per layer over several seeds.

    OMP_NUM_THREADS=1 python bench/bf16_fidelity.py [--settings demo fig2] [--seeds 0 1 2 3 4]
                                                    [--variants bf16 sched] [--bf16-until 0.5] [--out DIR]

Not a timing: each setting is inverted with every seed as one batch, once with `trainer.precision=32-true`
and once per variant (`bf16`: trainer.precision=bf16-mixed; `sched`: inversion.bf16_until, bf16 for that
fraction of the steps, then float32), through the real command line (the exact commands are printed). Per
layer it prints float32's seed-to-seed spread (mean, sd, [min, max]) beside the variant's, and whether the
variant's mean lies inside float32's [min, max]. The distances themselves are float32 in all (InversionModule
records them outside autocast). Run directories go to --out; --reuse reads finished ones instead of running again.
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
KEYS = {"m_g_over_m_s": ".3f", "m_i": ".2f"}


def variants(bf16_until: float) -> dict[str, list[str]]:
    """name -> the overrides that make it."""
    return {"fp32": ["trainer.precision=32-true"], "bf16": ["trainer.precision=bf16-mixed"],
            "sched": ["trainer.precision=32-true", f"inversion.bf16_until={bf16_until}"]}


def run(setting: str, variant: str, overrides: list[str], seeds: list[int], out: Path, extra: list[str],
        reuse: bool) -> list[dict]:
    run_dir = out / (f"{setting}_{variant}" + "".join(o.split("=")[1] for o in overrides if "bf16_until" in o))
    cmd = [sys.executable, "-m", "representation_probe", "invert", *SETTINGS[setting],
           f"seed=[{','.join(map(str, seeds))}]", *overrides, "logger=csv", *extra, f"hydra.run.dir={run_dir}"]
    print("$ python", " ".join(cmd[1:]), flush=True)
    if not (reuse and (run_dir / "summary.json").is_file()):
        subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return json.loads((run_dir / "summary.json").read_text())


def spread(values: list[float], fmt: str) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):{fmt}} ± {sd:{fmt}} [{min(values):{fmt}}, {max(values):{fmt}}]"


def table(setting: str, variant: str, fp32_rows: list[dict], rows: list[dict]) -> list[str]:
    """One line per layer and key; returns the layers where the variant fell outside float32's spread."""
    print(f"\n| {setting} | layer | fp32: mean ± sd [min, max] over seeds | {variant}: mean ± sd [min, max] | "
          f"{variant} mean inside fp32's range |\n|---|---|---|---|---|")
    outside = []
    layers = dict.fromkeys(r["layer"] for r in fp32_rows)
    for key, fmt in KEYS.items():
        for layer in layers:
            fp32, other = ([r[key] for r in found if r["layer"] == layer] for found in (fp32_rows, rows))
            mean = statistics.mean(other)
            verdict = "yes" if min(fp32) <= mean <= max(fp32) else f"**no**, {'higher' if mean > max(fp32) else 'lower'}"
            if verdict != "yes":
                outside.append(f"{setting} {variant} {layer} {key} ({verdict[8:]})")
            print(f"| {key} | {layer} | {spread(fp32, fmt)} | {spread(other, fmt)} | {verdict} |")
    return outside


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--variants", nargs="+", default=["bf16"], choices=["bf16", "sched"])
    parser.add_argument("--bf16-until", type=float, default=0.5, help="the `sched` variant's inversion.bf16_until")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "bf16_fidelity")
    parser.add_argument("--reuse", action="store_true", help="read finished run directories instead of re-running")
    parser.add_argument("overrides", nargs="*", help="extra `invert` overrides for every run (inversion.steps=50)")
    args = parser.parse_args()
    made, outside = variants(args.bf16_until), []
    for setting in args.settings:
        rows = {name: run(setting, name, made[name], args.seeds, args.out, args.overrides, args.reuse)
                for name in ["fp32", *args.variants]}
        for variant in args.variants:
            outside += table(setting, variant, rows["fp32"], rows[variant])
    print("\nOutside float32's seed-to-seed range:", ", ".join(outside) or "none")


if __name__ == "__main__":
    main()
