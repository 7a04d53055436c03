"""Any timm model by name; its probe points are timm's own feature_info (ViT/DeiT/Mixer blocks,
ConvNeXt and Swin stages, ResNet layers)."""

from __future__ import annotations

import difflib

from torch import nn

from representation_probe.errors import ConfigError
from representation_probe.models.family import Family, register


@register
class Timm(Family):
    """Extra `model.<key>` options go to timm.create_model (e.g. patch_size, depth, embed_dim, num_heads)."""

    name = "timm"

    def build(self, name: str, weights: str, num_classes: int | None, image_size: int, **options) -> nn.Module:
        import timm

        names = timm.list_models()
        if name not in names:
            close = difflib.get_close_matches(name, names, n=8, cutoff=0.6)
            raise ConfigError(f"unknown timm model '{name}'; similar names: {', '.join(close) or 'none'} "
                              "(all: timm.list_models())")
        if weights not in ("none", "imagenet"):
            raise ConfigError(f"model.weights={weights} names a torchvision weight version; timm models take "
                              "none, imagenet or a checkpoint path")
        if weights == "none":
            options["num_classes"] = num_classes or 1000
        try:  # transformers fix their input size at construction; convolutional models take any size
            net = _create(name, weights == "imagenet", img_size=image_size, **options)
        except TypeError:  # raised by the constructor, before any weights are looked for
            try:
                net = _create(name, weights == "imagenet", **options)
            except TypeError as err:
                raise ConfigError(f"timm model '{name}' does not take these options {options}: {err}") from None
        patch = max(getattr(getattr(net, "patch_embed", None), "patch_size", None) or (1,))
        if image_size < patch:
            raise ConfigError(f"model.image_size must be at least {patch} for {name} (its patch size), got {image_size}")
        return net

    def probe_points(self, net: nn.Module) -> list[str]:
        return [info["module"] for info in getattr(net, "feature_info", [])]

    def prefix_tokens(self, net: nn.Module) -> int:
        return getattr(net, "num_prefix_tokens", 0)  # class and register tokens of timm's ViTs

    def graph_functions(self):
        from timm.models import create_feature_extractor, get_graph_node_names

        return create_feature_extractor, get_graph_node_names


def _create(name: str, pretrained: bool, **options) -> nn.Module:
    import timm

    if not pretrained:
        return timm.create_model(name, pretrained=False, **options)
    try:
        return timm.create_model(name, pretrained=True, **options)
    except TypeError:
        raise
    except Exception as err:
        raise ConfigError(f"pretrained weights for timm model '{name}' are not available offline "
                          f"({type(err).__name__}); put them in the Hugging Face cache or pass "
                          "model.weights=<path to a state_dict>") from None
