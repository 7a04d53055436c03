"""torchvision's Vision Transformers (vit_b_16, vit_b_32, vit_l_16, vit_l_32, vit_h_14)."""

from __future__ import annotations

import torchvision
from torch import nn
from torchvision.models.vision_transformer import VisionTransformer, interpolate_embeddings

from representation_probe.errors import ConfigError
from representation_probe.models.family import Family, register
from representation_probe.models.weights import cached_state_dict, torchvision_imagenet

NAMES = ("vit_b_16", "vit_b_32", "vit_l_16", "vit_l_32", "vit_h_14")


@register
class ViT(Family):
    """Probe points `blocks.0`..`blocks.{N-1}`: the residual stream (tokens, class token first) after each
    encoder block, as timm names them."""

    name = "vit"

    def build(self, name: str, weights: str, num_classes: int | None, image_size: int) -> nn.Module:
        if name not in NAMES:
            raise ConfigError(f"unknown torchvision ViT '{name}'; allowed: {', '.join(NAMES)}")
        patch = int(name.rsplit("_", 1)[1])
        if image_size % patch:
            raise ConfigError(f"model.image_size must be a multiple of {patch} for {name} (its patch size), "
                              f"got {image_size}")
        if weights == "none":
            return torchvision.models.get_model(name, weights=None, image_size=image_size,
                                                num_classes=num_classes or 1000)
        enum = torchvision_imagenet(name, weights)
        state = cached_state_dict(enum)
        net = torchvision.models.get_model(name, weights=None, image_size=image_size)
        if image_size != enum.meta["min_size"][0]:  # the position embeddings, resampled to this grid
            state = interpolate_embeddings(image_size, net.patch_size, state)
        net.load_state_dict(state)
        return net

    def aliases(self, net: VisionTransformer) -> dict[str, str]:
        return {f"blocks.{i}": f"encoder.layers.encoder_layer_{i}" for i in range(len(net.encoder.layers))}

    def probe_points(self, net: VisionTransformer) -> list[str]:
        return list(self.aliases(net))

    def fixed_size(self, net: VisionTransformer) -> tuple[int, int]:
        return (net.image_size, net.image_size)  # its position embeddings are for this grid

    def prefix_tokens(self, net: VisionTransformer) -> int:
        return 1  # the class token

    def expected_normalize(self, net: nn.Module) -> str:
        return "imagenet"  # torchvision's classifiers read ImageNet-normalised images, trained or not
