"""The library: every study as a function on any model, returning a result object (tensors, `.to_frame()`,
`.history`, `.save(dir)`). It imports neither Hydra nor a logger; the command line is a thin caller."""

from representation_probe.api.invert import Inversion, invert
from representation_probe.api.results import Result, open
from representation_probe.models.layers import layer_table as layers
from representation_probe.models.load import load

__all__ = ["Inversion", "Result", "invert", "layers", "load", "open"]
