"""Model families, the backbone factory, layer naming and feature extraction."""

from representation_probe.models.backbone import Backbone, create_model, freeze
from representation_probe.models.family import Family, get_family, register
from representation_probe.models.layers import LayerEmbedder, layer_shapes, resolve_layers
from representation_probe.models.normalization import Normalize

__all__ = ["Backbone", "Family", "LayerEmbedder", "Normalize", "create_model", "freeze", "get_family",
           "layer_shapes", "register", "resolve_layers"]
