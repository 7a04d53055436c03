"""Structured configs: what each config group may hold and of which type, so that Hydra refuses a typo'd key
or a wrong type when it composes the config, before any work. The fields are the library's keyword
arguments (rp.load, rp.invert, rp.decode, rp.probe, rp.similarity, rp.tradeoff, rp.atlas); the YAML files in
conf/ name their schema first in their defaults list and set the values.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Optional

import yaml
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


# ---- models (conf/model/) ---------------------------------------------------------------------------
@dataclass
class Model:
    """rp.load's arguments for a registered family (models/families/)."""

    family: str = MISSING  # resnet, vit, timm, mlp, torchvision, hf, module
    name: str = MISSING  # the model within its family (resnet50, a timm name, a Hugging Face repository)
    weights: str = "none"  # none | imagenet | a version (IMAGENET1K_V1) | a checkpoint | pretrained (hf)
    normalize: Any = "none"  # none | imagenet | [mean, std]
    image_size: int = 224
    init_seed: int = 0
    num_classes: Optional[int] = None  # the head's size (training); None: from the weights file or the family
    trainable: bool = False  # training leaves the weights trainable


@dataclass
class TimmModel(Model):
    """Further timm.create_model keywords join with a +: +model.drop_path_rate=0.1."""

    patch_size: Optional[int] = None
    depth: Optional[int] = None
    embed_dim: Optional[int] = None
    num_heads: Optional[int] = None


@dataclass
class MLPModel(Model):
    widths: Optional[list[int]] = None  # output size of each Linear layer
    width: Optional[int] = None  # one width for all layers (null: the input size)
    depth: Optional[int] = None  # number of layers (null: 3)
    activation: str = "none"  # none | relu | tanh | sigmoid


@dataclass
class ModuleModel(Model):
    """Your own nn.Module: `target` is an importable callable that returns it."""

    family: str = "module"
    name: str = "module"
    target: str = MISSING  # package.module:function or package.module.Class
    probe_points: Optional[list[str]] = None  # null: its blocks or stages, else its top-level parts


@dataclass
class TradeoffNet:
    """A trade-off architecture (conf/net/, the tradeoff command's)."""

    name: str = MISSING
    dropout: Optional[float] = None
    z_activation: Optional[str] = None  # FC nets: relu (the original's, after z too) | none (z linear)


# ---- the studies' own groups ------------------------------------------------------------------------------
@dataclass
class Inversion:
    """rp.invert's descent (conf/inversion/)."""

    steps: int = 200
    optimizer: str = "adam"  # adam | sgd
    lr: Any = field(default_factory=lambda: [0.05, 0.0])  # a number or [start, end]
    eps_by_layer: Any = None  # layer -> eps (conf/eps/ merges a table in)
    blur_sigma: Any = None  # null, a sigma or [start, end]
    clamp: bool = False
    loss: str = "l1"
    init_mean: float = 0.7
    init_std: float = 0.05
    shift_std: float = 0.05
    record_every: int = 10
    image_every: int = 100
    steps_per_batch: Optional[int] = None
    bf16_until: Optional[float] = None  # the first fraction of the steps in bf16 autocast, the rest float32


@dataclass
class Decode:
    """rp.decode's study arguments (decode.* in conf/decode.yaml)."""

    mode: str = "direct"
    layers: Any = None
    held_out: float = 0.5
    colour_images: int = 8
    inversion: Optional[str] = "run"
    cache: Any = "auto"  # auto | true | false
    cache_dtype: str = "float32"
    cache_limit_gb: Optional[float] = None
    width: int = 64
    min_width: int = 16
    depth: int = 1


@dataclass
class Probe:
    """rp.probe's study arguments (probe.* in conf/probe.yaml)."""

    layers: Any = None
    pool: str = "mean"
    cache: bool = True
    batch_size: int = 256
    patience: Optional[int] = 10


@dataclass
class Tradeoff:
    weight: float = 0.9
    latent: Optional[int] = None


# ---- the atlas's studies: each study's keyword arguments ----------------------------------------------
@dataclass
class InvertStudy(Inversion):
    pass


@dataclass
class DecodeStudy(Decode):
    epochs: int = 10
    lr: float = 1e-3
    inversion: Optional[str] = None
    data: Optional[dict[str, Any]] = None  # this study's dataset settings


@dataclass
class ProbeStudy(Probe):
    epochs: int = 100
    lr: float = 1e-2
    data: Optional[dict[str, Any]] = None


@dataclass
class SimilarityStudy:
    metrics: list[str] = field(default_factory=lambda: ["cka", "mknn", "ii"])
    pool: str = "mean"
    pixels: bool = True
    debiased: bool = False
    cka_batch_size: Optional[int] = None
    mknn_k: int = 10
    ii_k: int = 1
    data: Optional[dict[str, Any]] = None


@dataclass
class AtlasStudies:
    """A study set to null is left out."""

    invert: Optional[InvertStudy] = field(default_factory=InvertStudy)
    decode: Optional[DecodeStudy] = field(default_factory=DecodeStudy)
    probe: Optional[ProbeStudy] = field(default_factory=ProbeStudy)
    similarity: Optional[SimilarityStudy] = field(default_factory=SimilarityStudy)


MODEL_SCHEMAS = {"base": Model, "timm_base": TimmModel, "mlp_base": MLPModel, "module_base": ModuleModel}


def known_keys(path: str, choice: str | None = None) -> list[str] | None:
    """The keys a schema'd config node takes (`inversion`, `model`, `studies`, ...), None if it has no schema.
    The model's are those of the chosen model config's schema (`choice`: model=module takes target, ...), or
    every family's when it is not known."""
    model = model_schema(choice)
    nodes = dict(inversion=[Inversion], decode=[Decode], probe=[Probe], tradeoff=[Tradeoff], net=[TradeoffNet],
                 studies=[AtlasStudies], model=[model] if model else list(MODEL_SCHEMAS.values()))
    if path not in nodes:
        return None
    return sorted({f.name for node in nodes[path] for f in fields(node)})


def model_schema(choice: str | None):
    """The schema conf/model/<choice>.yaml extends (through the presets it builds on), or None."""
    from representation_probe.config.presets import CONF

    seen = set()
    while choice and choice not in seen and (CONF / "model" / f"{choice}.yaml").is_file():
        seen.add(choice)
        entries = yaml.safe_load((CONF / "model" / f"{choice}.yaml").read_text()).get("defaults", [])
        names = [entry for entry in entries if isinstance(entry, str) and entry != "_self_"]
        schema = next((MODEL_SCHEMAS[name] for name in names if name in MODEL_SCHEMAS), None)
        if schema is not None:
            return schema
        choice = names[0] if names else None
    return None


def register() -> None:
    """Put the schemas in Hydra's ConfigStore (`<group>/<name>` as the YAML files' defaults lists name them)."""
    store = ConfigStore.instance()
    for name, node in (("base", Model), ("timm_base", TimmModel), ("mlp_base", MLPModel), ("module_base", ModuleModel)):
        store.store(group="model", name=name, node=node)
    store.store(group="net", name="base", node=TradeoffNet)
    store.store(group="inversion", name="base", node=Inversion)
    store.store(name="decode_base", node=dict(decode=Decode))
    store.store(name="probe_base", node=dict(probe=Probe))
    store.store(name="tradeoff_base", node=dict(tradeoff=Tradeoff))
    store.store(name="atlas_base", node=dict(studies=AtlasStudies))


register()  # on import: every entry point that composes a config imports this module first
