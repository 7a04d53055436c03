"""Datamodules and inversion targets."""

from representation_probe.data.targets import SAMPLES, image_name, load_target

__all__ = ["SAMPLES", "image_name", "load_target"]
