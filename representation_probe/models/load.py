"""`rp.load`: a model from a preset, a timm, torchvision or Hugging Face name, or any nn.Module."""

from __future__ import annotations

import functools
import importlib
import os
import sys
from collections.abc import Mapping
from pathlib import Path

import torch
import torchvision
from torch import nn
from torch.nn.parameter import is_lazy

from representation_probe.config import presets
from representation_probe.errors import ConfigError, KeywordError
from representation_probe.models.backbone import Backbone, as_pair, create_model, freeze
from representation_probe.models.families import resnet, vit
from representation_probe.models.families.hf import default_size
from representation_probe.models.family import get_family
from representation_probe.models.layers import resolve_layers, select_layers
from representation_probe.models.normalization import check_normalize

SOURCES = ("timm", "torchvision", "hf")
FORMS = ("a preset ({}), 'timm/<name>', 'torchvision/<name>', 'hf/<repository or local directory>', "
         "a transformers config, or an nn.Module")


def load(spec, *, weights: str | None = None, image_size: int | tuple[int, int] | None = None, normalize="auto",
         name: str | None = None, probe_points: list | None = None, init_seed: int = 0,
         num_classes: int | None = None, **options) -> Backbone:
    """A model ready to probe: frozen (eval, no weight gradients, no in-place ops), its normalisation inside
    the forward map.

    Args:
        spec: a preset of conf/model ('resnet50', 'vit_tiny', 'mlp', ...: the paper's aliases and probe
            points), 'timm/<name>', 'torchvision/<name>', 'hf/<repository id or local directory>' (offline:
            a local directory or the Hugging Face cache), a transformers config (random weights), or any
            nn.Module (its layers: FX nodes if torch.fx traces it, else its dotted module names).
        weights: none (random, from init_seed), imagenet or a torchvision version (IMAGENET1K_V1), a file
            (a state_dict or one of our checkpoints); Hugging Face: pretrained (its default) or none. None:
            the preset's, else none; an nn.Module keeps its own.
        image_size: a side or (height, width) that every study brings its images to (a resize is said once,
            as an rp.InputWarning). None: each study follows its data (tensors at their own size, non-square
            ones too; a dataset at its own), and named images or files come at the preset's size, the Hugging
            Face config's, else 224; a network that takes one size only (a ViT) takes that one.
        normalize: 'auto' (a preset's own; else what the architecture expects, however it is passed: ImageNet
            statistics for torchvision's and timm's classifiers, a Hugging Face image processor's; else none),
            'none', 'imagenet' or (mean, std): applied inside the forward map, never to your images.
        name: the label results carry (default: the model's name).
        probe_points: the layers a study walks (names or modules); default: the family's, or for any
            module its blocks or stages (a ModuleList named blocks, layers, layer or stages), else its
            top-level parts that hold weights.
        An nn.Module is used as it is, not copied: each study freezes it while it runs (eval, no weight
        gradients, no in-place ops) and gives it back as it was; nothing stays registered on it.
        options: the family's own (an MLP's widths, timm.create_model's keywords, ...).
    """
    if isinstance(spec, Mapping):
        return from_config(dict(spec), name=name, probe_points=probe_points)
    if isinstance(spec, Backbone):
        if any(v is not None for v in (weights, image_size, name, probe_points, num_classes)) or options:
            raise ConfigError("this model is loaded already; pass its spec to rp.load to change it")
        return spec
    if isinstance(spec, nn.Module):
        if options or weights is not None or num_classes is not None:
            given = ", ".join([*options, *(["weights"] if weights is not None else []),
                               *(["num_classes"] if num_classes is not None else [])])
            raise KeywordError(f"rp.load of a module takes it as it is, with its own weights and head; it takes no "
                               f"{given} (image_size, normalize, name and probe_points apply)")
        return _from_module(spec, image_size, normalize, name, probe_points)
    if type(spec).__name__.endswith("Config") and hasattr(spec, "to_dict"):  # a transformers config
        from transformers import AutoModel

        return _from_module(freeze(AutoModel.from_config(spec)), image_size, normalize, name, probe_points,
                            borrowed=False)
    if not isinstance(spec, str):
        raise ConfigError(f"rp.load takes {FORMS.format('resnet50, vit_tiny, mlp, ...')}; got a {type(spec).__name__}")
    fields = model_config(spec)
    if weights is not None:
        fields["weights"] = weights
    preset_size, preset_normalize = fields.pop("image_size", None), fields.pop("normalize", None)
    natural = preset_size or (_hf_size(fields["name"]) if fields["family"] == "hf" else 224)
    pinned = as_pair(image_size) if image_size is not None else None
    built = (pinned[0] if pinned[0] == pinned[1] else pinned) if pinned else natural  # a ViT's grid is built in
    fields |= dict(init_seed=init_seed, num_classes=num_classes, image_size=built) | options
    backbone = create_model(normalize="none", **fields)
    backbone.image_size, backbone.natural_size = pinned, as_pair(natural)
    backbone.normalize = _normalization(backbone, normalize, preset_normalize)
    if name is not None or fields["family"] == "hf" or "/" not in spec:  # a preset: its name ("vit_tiny")
        backbone.name = name or (Path(fields["name"]).name if fields["family"] == "hf" else spec)
    if probe_points is not None:
        backbone.points = _named(backbone, probe_points)
    return backbone


def from_config(fields: dict, **extra) -> Backbone:
    """A model config as conf/model/<name>.yaml holds it: create_model's arguments for a registered family;
    for family `module`, `target` names an importable callable that returns the nn.Module
    (`package.module:function` or `package.module.Class`)."""
    fields = {key: value for key, value in fields.items() if not key.startswith("_")}
    extra = {key: value for key, value in extra.items() if value is not None}
    if fields.get("family") != "module":
        backbone = create_model(**fields)
        backbone.name = extra.get("name", backbone.name)
        if "probe_points" in extra:
            backbone.points = _named(backbone, extra["probe_points"])
        return backbone
    target = fields.pop("target", None)
    if not target:
        raise ConfigError("model=module needs model.target=<importable callable that returns the nn.Module>")
    net = importable(target)()
    if not isinstance(net, nn.Module):
        raise ConfigError(f"model.target={target} returned a {type(net).__name__}, not an nn.Module; give a "
                          "callable that returns the network")
    size = materialized(net, fields.get("image_size"))
    net = freeze(net)  # built for this run: frozen for good
    return _from_module(net, size or fields.get("image_size"), fields.get("normalize", "none"),
                        extra.get("name", fields.get("name")), extra.get("probe_points", fields.get("probe_points")),
                        borrowed=False)


def importable(target: str):
    """`package.module:attribute` or `package.module.attribute`, importable from the working directory too."""
    module, _, attribute = target.partition(":") if ":" in target else target.rpartition(".")
    if os.getcwd() not in sys.path:  # a module beside the user, also under the console script
        sys.path.append(os.getcwd())
    try:
        return getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError, ValueError) as err:
        raise ConfigError(f"cannot import model.target={target} ({type(err).__name__}: {err}); give an importable "
                          "callable that returns the nn.Module, e.g. my_package.models:build") from None


def model_config(spec: str) -> dict:
    """create_model's arguments for a preset or a '<source>/<name>' spec."""
    source, _, rest = spec.partition("/")
    if source in SOURCES and rest:
        if source == "hf":
            return dict(family="hf", name=rest, weights="pretrained")
        family = source if source == "timm" else "resnet" if rest in resnet.NAMES else "vit" if rest in vit.NAMES \
            else "torchvision"
        return dict(family=family, name=rest)
    backbones = [n for n in presets.names("model") if "family" in (found := presets.preset("model", n))
                 and "???" not in found.values()]  # not those that need a name or target
    if spec not in backbones:
        raise ConfigError(f"unknown model '{spec}'; rp.load takes {FORMS.format(', '.join(backbones))}")
    return {key: value for key, value in presets.preset("model", spec).items() if key != "_target_"}


def _hf_size(name: str) -> int:
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(name, local_files_only=True)
    except (OSError, ValueError):
        return 224  # the build says what is missing
    size = getattr(config, "image_size", None)
    return size if isinstance(size, int) else 224


def _normalization(backbone: Backbone, normalize, preset=None):
    """`normalize` as given; 'auto': a preset's own (the paper's ResNets read raw pixels), else what the
    architecture expects (its family says: the same however the model was passed), else none."""
    if normalize != "auto":
        return check_normalize(normalize)
    expected = preset if preset is not None else backbone.family.expected_normalize(backbone.net)
    return check_normalize(expected if expected is not None else "none")


def _from_module(module: nn.Module, image_size: int | None, normalize, name: str | None, probe_points,
                 borrowed: bool = True) -> Backbone:
    """Any nn.Module with its own weights, the user's borrowed (frozen while a study runs); a torchvision ResNet
    or ViT, a timm or a transformers model gets its family's layer names and probe points."""
    family = get_family(_family_of(module))
    image_size = materialized(module, image_size) or image_size
    natural = (default_size(module) if family.name == "hf" else None) or 224
    backbone = Backbone(name or module_name(module), family, module, as_pair(image_size) if image_size else None,
                        "none", "given", borrowed=borrowed, natural_size=(natural, natural))
    backbone.normalize = _normalization(backbone, normalize)
    if probe_points is not None:
        backbone.points = _named(backbone, probe_points)
    return backbone


def materialized(module: nn.Module, image_size) -> tuple[int, int] | None:
    """A module with lazy layers (nn.LazyLinear, ...) run once, without gradients and in eval mode, so that they
    take their shapes before anything freezes them: at its pinned size, else 224, the size it then takes
    (returned); None for a module without lazy layers."""
    if not any(is_lazy(p) for p in module.parameters()):
        return None
    size = as_pair(image_size) if image_size else (224, 224)
    first = next((m for m in module.modules() if isinstance(m, nn.Conv2d) and not is_lazy(m.weight)), None)
    modes = [(m, m.training) for m in module.modules()]
    try:
        with torch.no_grad():
            module.eval()(torch.zeros(1, first.in_channels if first is not None else 3, *size))
    except Exception as err:  # noqa: BLE001 - the network's own error for this input
        raise ConfigError(f"{type(module).__name__} has lazy layers, and its first forward, at {size[0]}x{size[1]}, "
                          f"failed ({type(err).__name__}: {str(err).splitlines()[0][:160]}); load it with "
                          "image_size=<its data's size>") from None
    finally:
        for m, training in modes:
            m.training = training
    return size


def module_name(module: nn.Module) -> str:
    """What results call a module: torchvision's builder name (resnet18, not ResNet), timm's architecture, a
    Hugging Face model's repository or directory (else its model type), else its class."""
    if type(module).__module__.startswith("torchvision.models."):
        return _torchvision_name(module) or type(module).__name__
    architecture = (getattr(module, "pretrained_cfg", None) or {}).get("architecture")
    config = getattr(module, "config", None)
    hf = config is not None and (Path(config.name_or_path).name if getattr(config, "name_or_path", "") else
                                 getattr(config, "model_type", None))
    return architecture or hf or type(module).__name__


@functools.cache
def _torchvision_builder(cls: type, shapes: tuple) -> str | None:
    """The torchvision builder of `cls` whose parameters have these shapes (its head may be of another size)."""
    for name in torchvision.models.list_models(module=torchvision.models):
        if torchvision.models.get_model_builder(name).__module__ != cls.__module__:
            continue
        with torch.device("meta"):  # built without memory or initialisation cost
            candidate = torchvision.models.get_model(name, weights=None)
        theirs = tuple((k, tuple(v.shape)) for k, v in candidate.state_dict().items())
        if type(candidate) is cls and [k for k, _ in theirs] == [k for k, _ in shapes] and all(
                a == b or (a[:1] == (1000,) and a[1:] == b[1:]) for (_, a), (_, b) in zip(theirs, shapes)):
            return name
    return None


def _torchvision_name(module: nn.Module) -> str | None:
    return _torchvision_builder(type(module), tuple((k, tuple(v.shape)) for k, v in module.state_dict().items()))


def _family_of(module: nn.Module) -> str:
    if isinstance(module, torchvision.models.ResNet):
        return "resnet"
    if isinstance(module, torchvision.models.VisionTransformer):
        return "vit"
    if type(module).__module__.startswith("timm.") and hasattr(module, "feature_info"):
        return "timm"
    if any(cls.__name__ == "PreTrainedModel" for cls in type(module).__mro__):
        return "hf"
    return "module"


def _named(backbone: Backbone, layers) -> list[str]:
    if any(isinstance(layer, (int, float)) for layer in layers):
        raise ConfigError("probe_points are layer names or modules (an index or a depth needs probe points first)")
    chosen = select_layers(backbone, list(layers))
    resolve_layers(backbone, chosen)  # every one must exist
    return chosen
