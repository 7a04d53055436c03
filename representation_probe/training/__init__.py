"""Training: the classifier LightningModule."""

from representation_probe.training.classifier import ClassifierModule

__all__ = ["ClassifierModule"]
