"""Model families, the backbone factory, layer naming and feature extraction."""

from representation_probe.models.backbone import Backbone, create_model, freeze
from representation_probe.models.family import Family, get_family, register
from representation_probe.models.features import FeatureExtractor, LayerEmbedder, cache_features, pool
from representation_probe.models.layers import layer_shapes, prefix_tokens, resolve_layers
from representation_probe.models.normalization import Normalize

__all__ = ["Backbone", "Family", "FeatureExtractor", "LayerEmbedder", "Normalize", "cache_features", "create_model",
           "freeze", "get_family", "layer_shapes", "pool", "prefix_tokens", "register", "resolve_layers"]
