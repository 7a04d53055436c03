"""The library: every study as a function on any model, returning a result object (tensors, `.to_frame()`,
`.history`, `.save(dir)`). It imports neither Hydra nor a logger; the command line is a thin caller."""

from representation_probe.api.atlas import Atlas, atlas
from representation_probe.api.data import dataset
from representation_probe.api.decode import Decoding, decode
from representation_probe.api.extract import Features, extract, layers
from representation_probe.api.invert import Inversion, invert
from representation_probe.api.probe import Probing, probe
from representation_probe.api.results import Result, open
from representation_probe.api.similarity import Comparison, similarity
from representation_probe.api.tradeoff import Tradeoff, tradeoff
from representation_probe.models import Backbone as Model
from representation_probe.models.load import load

__all__ = ["Atlas", "Comparison", "Decoding", "Features", "Inversion", "Model", "Probing", "Result", "Tradeoff",
           "atlas", "dataset", "decode", "extract", "invert", "layers", "load", "open", "probe", "similarity",
           "tradeoff"]
