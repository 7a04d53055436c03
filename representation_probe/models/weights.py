"""Weights from files: our checkpoints, plain state_dicts, and torchvision's ImageNet files in the hub cache."""

from __future__ import annotations

import socket
from pathlib import Path

import torch
import torchvision
from torch import nn

from representation_probe.errors import ConfigError

# Classifier-head weights: torchvision ResNets ('fc'), torchvision ViTs ('heads.head') and most timm models.
HEAD_KEYS = ("fc.weight", "heads.head.weight", "head.weight", "head.fc.weight", "classifier.weight")


def is_named(weights: str) -> bool:
    """'none', 'imagenet', a torchvision version such as IMAGENET1K_V1, or 'pretrained' (a Hugging Face
    model's own); anything else is a file path."""
    return weights in ("none", "imagenet", "pretrained") or weights.startswith("IMAGENET1K_")


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


def head_classes(state: dict | None) -> int | None:
    """Number of classes of the head stored in a weights file (e.g. 100 for the noise task)."""
    for key in HEAD_KEYS if state else ():
        if key in state:
            return int(state[key].shape[0])
    return None


def load_state(net: nn.Module, state: dict, path: str, name: str) -> None:
    """load_state_dict with one line saying what does not fit, instead of torch's key listing."""
    problems = mismatch(net.state_dict(), state)
    if problems:
        raise ConfigError(f"weights in {path} do not fit {name}: {problems}; "
                          "was the file saved from another architecture?")
    net.load_state_dict(state)


def mismatch(expected: dict, state: dict) -> str | None:
    """What keeps `state` from loading where `expected` is, in a few words; None when it fits."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    problems = [f"{len(keys)} {what} (e.g. {keys[0]})" for what, keys in
                (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", wrong)) if keys]
    return ", ".join(problems) or None


def torchvision_imagenet(name: str, weights: str):
    """The weight enum `weights` names for torchvision model `name`: 'imagenet' is its DEFAULT."""
    versions = torchvision.models.get_model_weights(name)
    if weights != "imagenet" and weights not in versions.__members__:
        raise ConfigError(f"unknown weights '{weights}' for {name}; allowed: none, imagenet (= {versions.DEFAULT.name}), "
                          f"{', '.join(m for m in versions.__members__ if m != 'DEFAULT')}, or a checkpoint path")
    return versions.DEFAULT if weights == "imagenet" else versions[weights]


def cached_state_dict(enum) -> dict:
    """torchvision's weights from the hub cache; downloading is tried once, briefly."""
    url = enum.url
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name
    if cached.exists():
        try:
            return torch.load(cached, map_location="cpu", weights_only=True)
        except Exception as err:  # truncated download, disk error: torch says KeyError(242) or worse
            raise ConfigError(f"the cached ImageNet weights {cached} are unreadable ({type(err).__name__}: "
                              f"{str(err).splitlines()[0] if str(err) else 'corrupt file'}); delete the file and "
                              f"put a good copy there (from {url})") from None
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(10)
    try:
        return enum.get_state_dict(progress=False)
    except Exception as err:  # offline, proxy, refused: all mean the same to the user
        raise ConfigError(f"ImageNet weights {enum} are not cached and could not be downloaded "
                          f"({type(err).__name__}); put {Path(url).name} (from {url}) at {cached}") from None
    finally:
        socket.setdefaulttimeout(previous)
