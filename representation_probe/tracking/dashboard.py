"""The W&B workspace that compares a sweep (README, *W&B*): m_g/m_s, m_g and m_i against the step grouped by
layer, final m_i against final m_g, each study's value against relative depth, training curves and the a_g.

Built with wandb-workspaces from the keys tracking/results.py logs; saving it needs a W&B server, building it does not.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from representation_probe.errors import ConfigError

# Each study's headline values against relative depth (its Result.by_depth, as final/<metric> of a run).
BY_DEPTH = ("m_g_over_m_s", "m_i", "psnr", "accuracy", "cka_vs_pixels")
STEP = "trainer/global_step"


def workspace(entity: str, project: str, name: str, groups: list[str] = ()):
    """The workspace spec: one panel per metric kind, a line per layer (grouped by config.layer)."""
    import wandb_workspaces.reports.v2 as wr
    import wandb_workspaces.workspaces as ws

    def by_layer(key: str, title: str):
        return wr.LinePlot(title=title, x=STEP, y=[key], groupby=wr.Config("layer"))

    def final(x, metric: str, title: str):
        return wr.ScatterPlot(title=title, x=x, y=wr.SummaryMetric(f"final/{metric}"))

    sections = [
        ws.Section(name="Inversion against the step, by layer", is_open=True, panels=[
            by_layer("invert/m_g_over_m_s", "m_g / m_s"), by_layer("invert/m_i", "m_i"),
            by_layer("invert/m_g", "m_g"), by_layer("invert/loss", "loss")]),
        ws.Section(name="Final values", is_open=True, panels=[
            final(wr.SummaryMetric("final/m_g"), "m_i", "final m_i against final m_g (paper Figs. 4-5)"),
            *(final(wr.Config("relative_depth"), metric, f"{metric} against relative depth") for metric in BY_DEPTH)]),
        ws.Section(name="Training", panels=[wr.LinePlot(title=key, x=STEP, y=[key], groupby=wr.Config("model"))
                                            for key in ("train/loss", "val/loss", "val/acc")]),
        ws.Section(name="Generated inputs a_g", panels=[wr.MediaBrowser(title="a_g by run", media_keys=["invert/a_g"],
                                                                        mode="grid", grid_y_axis="run")]),
    ]
    filters = [ws.Metric("Group") == group for group in groups]
    runs = ws.RunsetSettings(filters=ws.Or(*filters) if len(filters) > 1 else filters)
    return ws.Workspace(entity=entity, project=project, name=name, sections=sections, runset_settings=runs)


def offline_runs(directory: Path) -> list[Path]:
    """The W&B offline runs under a run or sweep directory (a sweep keeps them all in its own wandb/)."""
    return sorted(p for p in directory.rglob("offline-run-*") if p.is_dir() and p.parent.name == "wandb")


def run_record(run: Path) -> dict:
    """The run record of an offline run (project, group, job type, name), read by W&B's own `leet inspect`."""
    with subprocess.Popen([wandb_tool(), "leet", "inspect", "--json", str(run)], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True) as reader:
        for line in reader.stdout:
            record = json.loads(line) if line.startswith("{") else {}
            if record.get("type") == "run":
                reader.kill()
                return record["run"]
    raise ConfigError(f"{run}: no run record in its .wandb log (an interrupted start?)")


def wandb_tool() -> str:
    beside = Path(sys.executable).parent / "wandb"
    return str(beside) if beside.is_file() else shutil.which("wandb") or "wandb"


def publish(spec, runs: list[Path]) -> str:
    """Upload the offline runs and save the workspace: a W&B login and network needed. Returns its URL."""
    import wandb

    try:
        api = wandb.Api()
    except wandb.errors.UsageError as err:  # no API key
        raise ConfigError(f"publishing needs a W&B login ({err}): set WANDB_API_KEY or run `wandb login`; the "
                          "offline spec is kept") from None
    if runs:
        done = subprocess.run([wandb_tool(), "sync", *map(str, runs)], capture_output=True, text=True)
        if done.returncode:
            raise ConfigError(f"wandb sync failed: {(done.stderr or done.stdout).strip().splitlines()[-1]}")
    if not spec.entity:
        spec.entity = api.default_entity
    return spec.save().url
