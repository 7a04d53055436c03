"""Datamodules (noise, image folders, photo patches, digits, torchvision sets) and inversion targets."""

from representation_probe.data.arrays import ArrayDataset, DigitsDataModule, TorchvisionDataModule
from representation_probe.data.folder import FolderDataModule, PatchDataModule
from representation_probe.data.noise import NoiseDataModule, NoiseDataset
from representation_probe.data.targets import SAMPLES, image_name, load_target

__all__ = ["ArrayDataset", "DigitsDataModule", "FolderDataModule", "NoiseDataModule", "NoiseDataset", "PatchDataModule",
           "SAMPLES", "TorchvisionDataModule", "image_name", "load_target"]
