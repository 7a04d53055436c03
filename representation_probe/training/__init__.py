"""Training: the classifier LightningModule; checkpoints and the per-epoch record beside it."""

from representation_probe.training.classifier import ClassifierModule

__all__ = ["ClassifierModule"]
