"""Gradient inversion (InversionModule: the input is the only parameter), its schedules and the eq. 5
smoothing; the exact inversion of MLPs (exact) and the study behind `invertibility`."""

from representation_probe.inversion.module import InversionModule, scheduled
from representation_probe.inversion.objective import Sample
from representation_probe.inversion.smoothing import smooth

__all__ = ["InversionModule", "Sample", "scheduled", "smooth"]
