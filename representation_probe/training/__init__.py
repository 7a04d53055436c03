"""Training: the classifier LightningModule and the metrics record."""

from representation_probe.training.classifier import ClassifierModule
from representation_probe.training.history import MetricsHistory

__all__ = ["ClassifierModule", "MetricsHistory"]
