"""One factory for every backbone: torchvision ResNets and any timm model, with their weights."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torchvision
from torch import nn

from representation_probe.errors import ConfigError
from representation_probe.models.mlp import build_mlp, last_layer, mlp_widths

RESNETS = ("resnet10", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
NORMALIZATIONS = {"none": None, "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))}


@dataclass
class Backbone:
    """A frozen network plus what the probe needs to know about its input."""

    name: str
    net: nn.Module
    image_size: int
    normalize: str  # 'none' (raw [0, 1] pixels, as in the paper) or 'imagenet'
    family: str  # 'resnet', 'timm' or 'mlp': decides the layer aliases
    default_layer: str | None = None  # what `invert` reads when `layer` is null (conv4; an MLP's last layer)
    details: dict = field(default_factory=dict)  # architecture facts for summary.json (an MLP's widths)


def create_model(
    name: str,
    source: str = "torchvision",
    weights: str = "none",
    normalize: str = "none",
    image_size: int = 224,
    init_seed: int = 0,
    num_classes: int | None = None,
    trainable: bool = False,
    widths: list[int] | None = None,
    width: int | None = None,
    depth: int | None = None,
    activation: str = "none",
) -> Backbone:
    """Build a backbone, frozen for probing unless `trainable`.

    Args:
        name: torchvision ResNet name (resnet18..resnet152), any timm model name, or a label for an MLP.
        source: 'torchvision', 'timm' or 'mlp' (the paper's fully connected models, section 4).
        weights: 'none' (random init from init_seed), 'imagenet', or a path to a state_dict or to a
            Lightning checkpoint of ours.
        normalize: input normalisation applied inside the forward map: 'none' or 'imagenet'.
        image_size: side of the square input in pixels.
        init_seed: seed of the random initialisation, so untrained models are reproducible.
        num_classes: size of the classifier head; None takes it from the weights file, else 1000.
        trainable: leave the weights trainable (training) instead of frozen (probing).
        widths: MLP only: output size of each Linear layer, e.g. [1000]; or give width and depth.
        width: MLP only: one width for every layer (null: the input size, square layers).
        depth: MLP only: number of Linear layers (null: 3).
        activation: MLP only: none (the paper's default), relu, tanh or sigmoid after every layer.
    """
    if normalize not in NORMALIZATIONS:
        raise ConfigError(f"unknown normalize '{normalize}'; allowed: {', '.join(NORMALIZATIONS)}")
    if int(image_size) <= 0:
        raise ConfigError(f"model.image_size must be a positive integer, got {image_size}")
    if source not in ("torchvision", "timm", "mlp"):
        raise ConfigError(f"unknown model source '{source}'; allowed: torchvision, timm, mlp")
    if source == "mlp":
        return _mlp(name, weights, normalize, int(image_size), init_seed, num_classes, trainable,
                    mlp_widths(widths, width, depth, 3 * int(image_size) ** 2), activation)
    if (widths, width, depth, activation) != (None, None, None, "none"):
        raise ConfigError("model.widths, width, depth and activation apply to model=mlp (source: mlp) only")
    weights = str(weights)
    state = None if weights == "none" or _is_imagenet(weights) else read_weights(weights)
    if num_classes is None:
        num_classes = _head_classes(state) or 1000
    torch.manual_seed(init_seed)
    if source == "torchvision":
        net, family = _torchvision_resnet(name, weights, num_classes), "resnet"
    else:
        net, family = _timm_model(name, weights, num_classes, int(image_size)), "timm"
    if state is not None:
        _load_state(net, state, weights, name)
    net = net if trainable else freeze(net)
    return Backbone(name, net, int(image_size), normalize, family,
                    default_layer="conv4" if family == "resnet" else None)


def _mlp(name: str, weights, normalize: str, image_size: int, init_seed: int, num_classes: int | None,
         trainable: bool, widths: list[int], activation: str) -> Backbone:
    """An MLP on the flattened 3 x image_size x image_size input, seeded like the other families."""
    if num_classes is not None:
        raise ConfigError("model=mlp has no classifier head: it is the paper's untrained probe of section 4 "
                          "(train a ResNet or timm model instead)")
    weights = str(weights)
    if weights == "imagenet":
        raise ConfigError("model=mlp has no ImageNet weights; use model.weights=none or a state_dict path")
    torch.manual_seed(init_seed)
    net = build_mlp(image_size, widths, activation)
    if weights != "none":
        _load_state(net, read_weights(weights), weights, f"{name} with widths {widths}")
    net = net if trainable else freeze(net)
    return Backbone(name, net, image_size, normalize, "mlp", default_layer=last_layer(net),
                    details=dict(widths=widths, activation=activation, input_size=3 * image_size**2))


def freeze(net: nn.Module) -> nn.Module:
    """eval(), no weight gradients, and no in-place ops that would overwrite read activations."""
    for module in net.modules():
        if getattr(module, "inplace", False):
            module.inplace = False
    return net.eval().requires_grad_(False)


def _torchvision_resnet(name: str, weights: str, num_classes: int) -> nn.Module:
    if name not in RESNETS:
        raise ConfigError(f"unknown torchvision model '{name}'; allowed: {', '.join(RESNETS)} "
                          "(or model=timm model.name=<any timm model>)")
    if name == "resnet10":  # one BasicBlock per stage: a small ResNet for CPU tests and quick studies
        if weights == "imagenet":
            raise ConfigError("resnet10 has no ImageNet weights; use none or a checkpoint path")
        return torchvision.models.resnet.ResNet(torchvision.models.resnet.BasicBlock, [1, 1, 1, 1],
                                                num_classes=num_classes)
    if not _is_imagenet(weights):
        return torchvision.models.get_model(name, weights=None, num_classes=num_classes)
    versions = torchvision.models.get_model_weights(name)
    if weights != "imagenet" and weights not in versions.__members__:
        raise ConfigError(f"unknown weights '{weights}' for {name}; allowed: none, imagenet (= {versions.DEFAULT.name}), "
                          f"{', '.join(m for m in versions.__members__ if m != 'DEFAULT')}, or a checkpoint path")
    enum = versions.DEFAULT if weights == "imagenet" else versions[weights]
    net = torchvision.models.get_model(name, weights=None)
    net.load_state_dict(_imagenet_state_dict(enum))
    return net


def _is_imagenet(weights: str) -> bool:
    """'imagenet' (torchvision's default, e.g. IMAGENET1K_V2) or a named version such as IMAGENET1K_V1."""
    return weights == "imagenet" or weights.startswith("IMAGENET1K_")


def _imagenet_state_dict(enum) -> dict:
    """torchvision's ImageNet weights from the hub cache; downloading is tried once, briefly."""
    url = enum.url
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name
    if cached.exists():
        return torch.load(cached, map_location="cpu", weights_only=True)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(10)
    try:
        return enum.get_state_dict(progress=False)
    except Exception as err:  # offline, proxy, refused: all mean the same to the user
        raise ConfigError(f"ImageNet weights {enum} are not cached and could not be downloaded "
                          f"({type(err).__name__}); put {Path(url).name} (from {url}) at {cached}") from None
    finally:
        socket.setdefaulttimeout(previous)


def _timm_model(name: str, weights: str, num_classes: int, image_size: int) -> nn.Module:
    import timm

    if name not in timm.list_models():
        close = timm.list_models(f"*{name[:6]}*")[:10]
        raise ConfigError(f"unknown timm model '{name}'; similar names: {', '.join(close) or 'none'}")
    if weights != "imagenet" and _is_imagenet(weights):
        raise ConfigError(f"model.weights={weights} names a torchvision weight version; timm models take imagenet")
    pretrained = weights == "imagenet"
    try:  # transformers fix their input size at construction; convolutional models take any size
        return _timm_create(name, pretrained, num_classes, img_size=image_size)
    except TypeError:
        return _timm_create(name, pretrained, num_classes)


def _timm_create(name: str, pretrained: bool, num_classes: int, **size) -> nn.Module:
    import timm

    if not pretrained:
        return timm.create_model(name, pretrained=False, num_classes=num_classes, **size)
    try:
        return timm.create_model(name, pretrained=True, **size)
    except Exception as err:
        raise ConfigError(f"pretrained weights for timm model '{name}' are not available offline "
                          f"({type(err).__name__}); put them in the Hugging Face cache or pass "
                          "model.weights=<path to a state_dict>") from None


# Classifier-head weights of the two families: torchvision ResNets ('fc') and most timm models.
HEAD_KEYS = ("fc.weight", "head.weight", "head.fc.weight", "classifier.weight")


def _head_classes(state: dict | None) -> int | None:
    """Number of classes of the head stored in a weights file (e.g. 100 for the noise task)."""
    for key in HEAD_KEYS if state else ():
        if key in state:
            return int(state[key].shape[0])
    return None


def read_weights(path: str) -> dict:
    """A plain state_dict, or the network inside a Lightning checkpoint of ours (keys 'net.*')."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError(f"weights file not found: {file} (model.weights takes none, imagenet or a path)")
    try:
        state = torch.load(file, map_location="cpu", weights_only=False)
    except Exception as err:
        raise ConfigError(f"cannot read weights file {file}: {type(err).__name__}: {err}") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ConfigError(f"{file} holds a {type(state).__name__}, not a state_dict or checkpoint")
    if state and all(key.startswith("net.") for key in state):
        state = {key.removeprefix("net."): value for key, value in state.items()}
    return state


def _load_state(net: nn.Module, state: dict, path: str, name: str) -> None:
    expected = net.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        problems = [f"{len(keys)} {what} (e.g. {keys[0]})" for what, keys in
                    (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", wrong)) if keys]
        raise ConfigError(f"weights in {path} do not fit {name}: {', '.join(problems)}; "
                          "was the file saved from another architecture?")
    net.load_state_dict(state)
