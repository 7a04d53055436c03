"""representation_probe: what does each layer of a vision model still know about its input?

    import representation_probe as rp
    model = rp.load("resnet50")                       # or timm/..., torchvision/..., hf/..., any nn.Module
    result = rp.invert(model, "chelsea", layer="conv3")
    result.to_frame()                                 # long-form pandas rows; result.a_g the images

The library is imported on first use of one of its names, so that `python -m representation_probe --help`
stays instant.
"""

import importlib
import importlib.metadata
import sys
import types
import warnings

from representation_probe.errors import (ConfigError, DegenerateWarning, InputWarning, InversionWarning, KeywordError,
                                         ResultWarning)

try:
    __version__ = importlib.metadata.version("representation_probe")
except importlib.metadata.PackageNotFoundError:  # a checkout on the path, not installed
    __version__ = "0+unknown"

LIBRARY = ("Atlas", "Comparison", "Decoding", "Features", "Inversion", "Model", "Probing", "Result", "Tradeoff",
           "atlas", "dataset", "decode", "extract", "invert", "layers", "load", "open", "probe", "similarity",
           "tradeoff")
__all__ = ["ConfigError", "DegenerateWarning", "InputWarning", "InversionWarning", "KeywordError", "ResultWarning",
           "__version__", "metrics", *LIBRARY]


class _Package(types.ModuleType):
    """rp.similarity, rp.tradeoff and rp.atlas are the library's functions, though subpackages of the same
    names exist (`import representation_probe.similarity` still gives the package: imports go through
    sys.modules, and Python's setattr of a loaded subpackage does not change what these names give)."""

    def __getattribute__(self, name: str):
        if name in LIBRARY:
            return getattr(_library(), name)
        return super().__getattribute__(name)

    def __getattr__(self, name: str):
        if name == "metrics":
            return importlib.import_module("representation_probe.metrics")
        raise AttributeError(f"module 'representation_probe' has no attribute {name!r}")

    def __dir__(self) -> list[str]:
        """What completion offers (`rp.<TAB>`): the library's names, though they are imported on first use."""
        return sorted({*__all__, *super().__dir__()})


def _library() -> types.ModuleType:
    """representation_probe.api, imported on first use without tqdm's notebook warning: torchmetrics imports
    transformers, which imports tqdm.auto, which asks for ipywidgets in a notebook that lacks them."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="IProgress not found")
        return importlib.import_module("representation_probe.api")


sys.modules[__name__].__class__ = _Package
