"""InversionModule (input is the only parameter), its schedules and the eq. 5 smoothing."""

from representation_probe.inversion.module import InversionModule, Sample, scheduled
from representation_probe.inversion.smoothing import smooth

__all__ = ["InversionModule", "Sample", "scheduled", "smooth"]
