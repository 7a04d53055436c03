"""Where the configs are, and the model and dataset presets read from them without Hydra.

`conf/` sits at the repository's top level and ships inside the wheel as `representation_probe/conf`
(pyproject.toml maps it): one set of YAML files for the command line (Hydra composes them) and for the
library (`rp.load("vit_tiny")` reads conf/model/vit_tiny.yaml here, so a preset is defined once).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from representation_probe.errors import ConfigError

_PACKAGE = Path(__file__).resolve().parents[1]
CONF = _PACKAGE / "conf" if (_PACKAGE / "conf").is_dir() else _PACKAGE.parent / "conf"


def names(group: str) -> list[str]:
    """The options of a config group (conf/<group>/*.yaml), sorted."""
    return sorted(path.stem for path in (CONF / group).glob("*.yaml"))


def preset(group: str, name: str) -> dict:
    """conf/<group>/<name>.yaml as a plain dict: the files its defaults list names (same group) merged
    first, `_self_` last; schema entries (not files) and `defaults` itself dropped."""
    path = CONF / group / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown {group} preset '{name}'; presets: {', '.join(names(group))}")
    own = yaml.safe_load(path.read_text()) or {}
    merged: dict = {}
    for entry in own.pop("defaults", []):
        if isinstance(entry, str) and (CONF / group / f"{entry}.yaml").is_file():
            merged |= preset(group, entry)
    return merged | own
