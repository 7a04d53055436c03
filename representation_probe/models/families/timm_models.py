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

        options = {key: value for key, value in options.items() if value is not None}  # null: timm's own
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

    def fixed_size(self, net: nn.Module) -> tuple[int, int] | None:
        """A transformer built for one grid (its patch embedding checks the size) takes that size only."""
        embed = getattr(net, "patch_embed", None)
        size = getattr(embed, "img_size", None)
        if size is None or not getattr(embed, "strict_img_size", False) or getattr(embed, "dynamic_img_pad", False):
            return None
        return tuple(size) if isinstance(size, (tuple, list)) else (size, size)

    def prefix_tokens(self, net: nn.Module) -> int:
        return getattr(net, "num_prefix_tokens", 0)  # class and register tokens of timm's ViTs

    def expected_normalize(self, net: nn.Module):
        """The mean and std of the model's pretrained config (timm keeps one for untrained models too)."""
        cfg = getattr(net, "pretrained_cfg", None) or {}
        return (tuple(cfg["mean"]), tuple(cfg["std"])) if "mean" in cfg else None

    def tracer_kwargs(self) -> dict:
        """timm's own leaf modules and functions not to trace (what timm.models.create_feature_extractor uses)."""
        from timm.models import get_notrace_functions, get_notrace_modules

        return dict(leaf_modules=get_notrace_modules(), autowrap_functions=get_notrace_functions())


def _create(name: str, pretrained: bool, **options) -> nn.Module:
    import timm

    if not pretrained:
        return timm.create_model(name, pretrained=False, **options)
    hub = _hub_cfg(name)
    file = hub and (hub.hf_hub_filename or "model.safetensors")
    where = hub and f"https://huggingface.co/{hub.hf_hub_id}/resolve/main/{file}"
    if "pretrained_cfg_overlay" not in options:
        local = hub and _cached_weights(hub)
        if local:  # load the cached file directly: no request to the Hub, no retries when offline
            # a state_dict; timm before 1.0.31 would read an augreg ViT's as Google's .npz (custom_load)
            options["pretrained_cfg_overlay"] = {"file": local, "custom_load": False}
        elif where and not _reachable("huggingface.co"):  # else huggingface_hub retries ~25 s, then fails
            raise ConfigError(f"pretrained weights for timm model '{name}' are not cached and the Hugging Face "
                              f"Hub is unreachable; download {where} and pass '+model.pretrained_cfg_overlay="
                              "{file:<that file>}' (or fill the cache with `hf download` where the Hub is reachable)")
    source = options.get("pretrained_cfg_overlay", {}).get("file") or where or "timm's source"
    try:
        return timm.create_model(name, pretrained=True, **options)
    except TypeError:
        raise
    except Exception as err:
        why = f"{type(err).__name__}: {' '.join(str(err).split())}"  # one line; a state_dict mismatch is long
        raise ConfigError(f"pretrained weights for timm model '{name}' could not be loaded from {source} "
                          f"({why[:300]})") from None


def _hub_cfg(name: str):
    """timm's pretrained config of the model when it takes its weights from the Hugging Face Hub, else None."""
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name)
    return cfg if cfg is not None and cfg.hf_hub_id else None


def _cached_weights(hub) -> str | None:
    """The model's weights file in the Hugging Face cache, if downloaded before."""
    from huggingface_hub import try_to_load_from_cache

    for filename in filter(None, (hub.hf_hub_filename, "model.safetensors", "pytorch_model.bin")):
        found = try_to_load_from_cache(hub.hf_hub_id, filename)
        if isinstance(found, str):
            return found
    return None


def _reachable(host: str, timeout: float = 3.0) -> bool:
    import socket

    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False
