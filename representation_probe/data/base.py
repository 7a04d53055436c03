"""What every training datamodule shares: a train and a val set, and how they are loaded."""

import lightning as L
from torch.utils.data import DataLoader, Dataset


class TrainValDataModule(L.LightningDataModule):
    """Subclasses build `self.train_set` and `self.val_set` in `setup`; hparams hold batch_size and workers.

    Under DDP Lightning wraps these loaders in a DistributedSampler: each rank sees its own shard.
    """

    train_set: Dataset
    val_set: Dataset

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)

    def _loader(self, dataset: Dataset, shuffle: bool) -> DataLoader:
        workers = self.hparams.workers
        return DataLoader(dataset, batch_size=self.hparams.batch_size, shuffle=shuffle, num_workers=workers,
                          persistent_workers=workers > 0)
