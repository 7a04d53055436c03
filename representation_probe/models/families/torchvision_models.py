"""Any other torchvision classification model by name (convnext_tiny, efficientnet_b0, vgg11, swin_t, ...);
ResNets and ViTs have their own families with the paper's names."""

from __future__ import annotations

import torchvision
from torch import nn

from representation_probe.errors import ConfigError
from representation_probe.models.families.module import block_names
from representation_probe.models.family import Family, register
from representation_probe.models.weights import cached_state_dict, torchvision_imagenet


@register
class Torchvision(Family):
    """Probe points: the stages among its blocks, as for any module (models/points.py: convnext_tiny's
    features.1, .3, .5, .7)."""

    name = "torchvision"
    finds_stages = True

    def build(self, name: str, weights: str, num_classes: int | None, image_size: int) -> nn.Module:
        names = torchvision.models.list_models(module=torchvision.models)
        if name not in names:
            raise ConfigError(f"unknown torchvision classification model '{name}'; allowed: {', '.join(names)}")
        if weights == "none":
            return torchvision.models.get_model(name, weights=None, num_classes=num_classes or 1000)
        net = torchvision.models.get_model(name, weights=None)
        net.load_state_dict(cached_state_dict(torchvision_imagenet(name, weights)))
        return net

    def probe_points(self, net: nn.Module) -> list[str]:
        return block_names(net)

    def expected_normalize(self, net: nn.Module) -> str:
        return "imagenet"  # torchvision's classifiers read ImageNet-normalised images, trained or not
