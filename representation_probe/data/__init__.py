"""Datamodules (noise, image folders, photo patches) and inversion targets."""

from representation_probe.data.folder import FolderDataModule, PatchDataModule
from representation_probe.data.noise import NoiseDataModule, NoiseDataset
from representation_probe.data.targets import SAMPLES, image_name, load_target, load_targets

__all__ = ["FolderDataModule", "NoiseDataModule", "NoiseDataset", "PatchDataModule", "SAMPLES", "image_name",
           "load_target", "load_targets"]
