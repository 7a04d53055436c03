"""Learned inverse decoders per layer (direct, chained, cross) and what they recover."""

from representation_probe.decoders.module import MODES, DecoderModule
from representation_probe.decoders.networks import Decoder, to_grid

__all__ = ["MODES", "Decoder", "DecoderModule", "to_grid"]
