"""Linear probes: how much class information each frozen layer holds (Alain & Bengio 2016)."""

from representation_probe.probes.features import PooledFeatures
from representation_probe.probes.module import LinearProbes

__all__ = ["LinearProbes", "PooledFeatures"]
