"""Any nn.Module a user holds: its layers are FX nodes if torch.fx traces it, else its named modules; its
probe points are its stages (models/points.py) among its blocks when it has them, else among its top-level parts,
unless the user names them."""

from __future__ import annotations

from torch import nn

from representation_probe.errors import ConfigError
from representation_probe.models.family import Family, register

BLOCK_LISTS = ("blocks", "layers", "layer", "stages", "features")  # what models call their sequence of blocks
TRUNK = 3  # a top-level Sequential with at least this many parts that hold weights is walked part by part


@register
class Module(Family):
    """Built by `rp.load(module)` from the user's module, not from a name."""

    name = "module"
    tracer = "auto"
    finds_stages = True

    def build(self, name: str, weights: str, num_classes: int | None, image_size: int):
        raise ConfigError("a module model is the nn.Module you pass: rp.load(my_module), or on the command line "
                          "model=module model.target=<importable callable that returns it>")

    def probe_points(self, net: nn.Module) -> list[str]:
        return block_names(net)

    def prefix_tokens(self, net: nn.Module) -> None:
        return None  # read off the layer shapes


def block_names(net: nn.Module) -> list[str]:
    """The network's main sequence of blocks: the children of its (shallowest, then longest) ModuleList or
    Sequential named blocks, layers, layer, stages or features (timm, Hugging Face, most transformers,
    torchvision's ConvNeXt, EfficientNet, VGG); else its top-level children that hold weights, a long Sequential
    among them walked part by part. points.py keeps the stages among them."""
    lists = [(name.count("."), -len(module), name) for name, module in net.named_modules()
             if isinstance(module, (nn.ModuleList, nn.Sequential)) and name.rsplit(".", 1)[-1] in BLOCK_LISTS
             and len(module) >= 2]
    if lists:
        prefix = min(lists)[2]
        return [f"{prefix}.{child}" for child, _ in net.get_submodule(prefix).named_children()]
    names = []
    for child, module in net.named_children():
        parts = [part for part, inner in module.named_children() if _has_weights(inner)]
        if isinstance(module, nn.Sequential) and len(parts) >= TRUNK:
            names += [f"{child}.{part}" for part in parts]
        elif _has_weights(module):
            names.append(child)
    return names


def _has_weights(module: nn.Module) -> bool:
    return next(module.parameters(), None) is not None
