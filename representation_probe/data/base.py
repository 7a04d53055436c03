"""What every training datamodule shares: a train, a val and (where the data has one) a test set, and
how they are loaded."""

import lightning as L
from torch.utils.data import DataLoader, Dataset

from representation_probe.errors import ConfigError


class TrainValDataModule(L.LightningDataModule):
    """Subclasses build `self.train_set`, `self.val_set` and, if they have one, `self.test_set` in `setup`;
    hparams hold batch_size and workers.

    The test set is for final numbers only: never shuffled, never truncated (its last batch may be short).
    Under DDP Lightning wraps these loaders in a DistributedSampler: each rank sees its own shard.
    """

    train_set: Dataset
    val_set: Dataset
    test_set: Dataset | None = None

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.require_test_set(), shuffle=False)

    def require_test_set(self) -> Dataset:
        """The test set, or one line saying this dataset has none (call after `setup`)."""
        if self.test_set is None:
            raise ConfigError(f"{type(self).__name__} has no test split; the final numbers need one "
                              "(digits, mnist, fashion_mnist, cifar10, patches, noise, or a folder with <root>/test)")
        return self.test_set

    def _loader(self, dataset: Dataset, shuffle: bool) -> DataLoader:
        workers = self.hparams.workers
        return DataLoader(dataset, batch_size=self.hparams.batch_size, shuffle=shuffle, num_workers=workers,
                          persistent_workers=workers > 0)
