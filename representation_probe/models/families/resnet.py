"""torchvision ResNets, with the paper's layer names (He et al. 2016)."""

from __future__ import annotations

import torchvision
from torch import nn

from representation_probe.errors import ConfigError
from representation_probe.models.family import Family, register
from representation_probe.models.weights import cached_state_dict, torchvision_imagenet

NAMES = ("resnet10", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152")

# These aliases win over FX nodes of the same name: in torchvision the node 'conv1' is the bare 7x7
# convolution, which stays reachable as 'conv1_raw'.
ALIASES = {
    "conv1_raw": "conv1",
    "conv1": "relu",
    "conv1_pool": "maxpool",
    "conv2": "layer1",
    "conv3": "layer2",
    "conv4": "layer3",
    "conv5": "layer4",
}


@register
class ResNet(Family):
    """resnet18..resnet152 from torchvision, and resnet10 (one BasicBlock per stage) for CPU tests."""

    name = "resnet"

    def build(self, name: str, weights: str, num_classes: int | None, image_size: int) -> nn.Module:
        if name not in NAMES:
            raise ConfigError(f"unknown torchvision ResNet '{name}'; allowed: {', '.join(NAMES)} "
                              "(model=vit_b_16 for torchvision's ViT, model=timm model.name=<any timm model>)")
        if name == "resnet10":
            if weights != "none":
                raise ConfigError("resnet10 has no ImageNet weights; use none or a checkpoint path")
            return torchvision.models.resnet.ResNet(torchvision.models.resnet.BasicBlock, [1, 1, 1, 1],
                                                    num_classes=num_classes or 1000)
        if weights == "none":
            return torchvision.models.get_model(name, weights=None, num_classes=num_classes or 1000)
        state = cached_state_dict(torchvision_imagenet(name, weights))
        net = torchvision.models.get_model(name, weights=None)
        net.load_state_dict(state)
        return net

    def aliases(self, net: nn.Module) -> dict[str, str]:
        return ALIASES

    def probe_points(self, net: nn.Module) -> list[str]:
        return ["conv1", "conv2", "conv3", "conv4", "conv5"]

    def default_layer(self, net: nn.Module) -> str:
        return "conv4"  # the paper's running example

    def expected_normalize(self, net: nn.Module) -> str:
        return "imagenet"  # torchvision's classifiers read ImageNet-normalised images, trained or not
