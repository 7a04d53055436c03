"""Model registry, layer naming and feature extraction."""

from representation_probe.models.layers import LayerEmbedder, layer_shapes, resolve_layer, valid_layers
from representation_probe.models.registry import Backbone, create_model

__all__ = ["Backbone", "LayerEmbedder", "create_model", "layer_shapes", "resolve_layer", "valid_layers"]
