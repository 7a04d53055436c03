"""representation_probe: what does each layer of a vision model still know about its input?

    import representation_probe as rp
    model = rp.load("resnet50")                       # or timm/..., torchvision/..., hf/..., any nn.Module
    result = rp.invert(model, "chelsea", layer="conv3")
    result.to_frame()                                 # long-form pandas rows; result.a_g the images

The library is imported on first use of one of its names, so that `python -m representation_probe --help`
stays instant.
"""

from representation_probe.errors import ConfigError

__all__ = ["ConfigError", "Inversion", "Result", "invert", "layers", "load", "metrics", "open"]


def __getattr__(name: str):
    import importlib

    if name == "metrics":
        return importlib.import_module("representation_probe.metrics")
    if name in __all__:
        return getattr(importlib.import_module("representation_probe.api"), name)
    raise AttributeError(f"module 'representation_probe' has no attribute {name!r}")
