"""Hugging Face `transformers` vision backbones (ViT, DeiT, DINOv2, BEiT, ConvNeXt, Swin, CLIP's vision tower,
...), read offline: from a local directory, from the Hugging Face cache, or built from a config.

torch.fx does not trace them; their layers are their dotted module names, read with forward hooks, and a
block's output is the first tensor of what it returns: the same tensor as `output_hidden_states` gives.
"""

from __future__ import annotations

import json
from pathlib import Path

from torch import nn

from representation_probe.errors import ConfigError
from representation_probe.models.families.module import block_names
from representation_probe.models.family import Family, register

PROCESSOR = "preprocessor_config.json"


@register
class HuggingFace(Family):
    """`name` is a Hub repository id (found in the local cache) or a local directory; weights 'pretrained'
    loads its weights, 'none' builds the same architecture with random weights from its config."""

    name = "hf"
    tracer = "hooks"
    finds_stages = True

    def build(self, name: str, weights: str, num_classes: int | None, image_size: int) -> nn.Module:
        try:
            from transformers import AutoConfig, AutoModel
        except ImportError:
            raise ConfigError("Hugging Face models need the transformers package: pip install "
                              "'representation_probe[hf]'") from None
        if weights not in ("none", "pretrained"):
            raise ConfigError(f"a Hugging Face model takes weights pretrained (its own) or none (random, from its "
                              f"config), got {weights!r}")
        try:
            if weights == "pretrained":
                return AutoModel.from_pretrained(name, local_files_only=True)
            config = AutoConfig.from_pretrained(name, local_files_only=True)
            if isinstance(getattr(config, "image_size", None), int):
                config.image_size = image_size
            return AutoModel.from_config(config)
        except (OSError, ValueError) as err:
            raise ConfigError(f"Hugging Face model '{name}' could not be read offline ({type(err).__name__}: "
                              f"{str(err).splitlines()[0][:200]}); put it in a local directory "
                              f"(rp.load('hf/<dir>')), or fill the cache where the Hub is reachable: "
                              f"hf download {name}") from None

    def probe_points(self, net: nn.Module) -> list[str]:
        return block_names(net)  # the blocks whose outputs are hidden_states[1:]

    def prefix_tokens(self, net: nn.Module) -> None:
        return None  # read off the layer shapes: a class token, registers, or none (ConvNeXt)

    def fixed_size(self, net: nn.Module) -> tuple[int, int] | None:
        """A transformer whose position embeddings are for the config's grid (ViT, DeiT, BEiT) takes that size."""
        if not any("position_embedding" in name for name, _ in net.named_parameters()):
            return None
        size = default_size(net)
        return (size, size) if size else None

    def channels(self, net: nn.Module) -> int | None:
        return getattr(getattr(net, "config", None), "num_channels", None)

    def expected_normalize(self, net: nn.Module):
        """The mean and std of the model's image processor, where its preprocessor_config.json is at hand."""
        config = _processor_config(getattr(net, "name_or_path", "") or "")
        if config and "image_mean" in config and "image_std" in config:
            return (tuple(config["image_mean"]), tuple(config["image_std"]))
        return None


def default_size(net: nn.Module) -> int | None:
    """The square input size the model's config names, if one."""
    size = getattr(getattr(net, "config", None), "image_size", None)
    return size if isinstance(size, int) else size[0] if isinstance(size, (list, tuple)) and size else None


def _processor_config(source: str) -> dict | None:
    path = Path(source).expanduser() / PROCESSOR
    if not path.is_file() and source:
        try:
            from huggingface_hub import try_to_load_from_cache

            found = try_to_load_from_cache(source, PROCESSOR)
            path = Path(found) if isinstance(found, str) else path
        except Exception:  # not a repository id
            return None
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError):
        return None
