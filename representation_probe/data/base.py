"""What every training datamodule shares: a train, a val and (where the data has one) a test set, and
how they are loaded.

Everything random about the data is a function of the run's seed, the epoch and the index: the
order of epoch e is a permutation drawn from (seed, e), and item i of it is made with the random
number generator seeded from (seed, e, i), so random augmentation does not depend on the number of
workers nor on what was drawn before. A resumed run therefore sees exactly the batches an
uninterrupted one does (resuming from a checkpoint saved at the end of an epoch, as ours are).
"""

from __future__ import annotations

import os

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from representation_probe.errors import ConfigError


def seed_for(*key: int) -> int:
    """A 63-bit seed mixed from integers by numpy's SeedSequence: no two keys share a stream."""
    return int(np.random.SeedSequence(key).generate_state(1, np.uint64)[0] >> np.uint64(1))


def run_seed() -> int:
    """The run's seed, as `lightning.seed_everything` recorded it (Lightning's own samplers read it too)."""
    return int(os.environ.get("PL_GLOBAL_SEED", 0))


class EpochSampler(DistributedSampler):
    """This rank's share of a permutation drawn from (seed, epoch); each index goes out with its epoch.

    A DistributedSampler already, so Lightning leaves it in place under DDP. Lightning calls
    `set_epoch` before each epoch, but creates the first iterator of a run (and with workers draws
    its first batches) before that call: the datamodule sets the epoch when it makes the loader.
    """

    def __iter__(self):
        epoch = self.epoch
        return iter([(epoch, index) for index in super().__iter__()])


class Seeded(Dataset):
    """`dataset[(epoch, i)]` is made with torch's generator seeded from (seed, epoch, i); `dataset[i]` as is.
    A dataset whose items draw nothing at random (`draws=False`) is served a batch at a time."""

    def __init__(self, dataset: Dataset, seed: int, draws: bool = True):
        self.dataset, self.seed, self.draws = dataset, seed, draws

    def __getitems__(self, keys: list) -> list:
        if self.draws:
            return [self[key] for key in keys]
        indices = [key[1] if isinstance(key, tuple) else key for key in keys]
        batch = getattr(self.dataset, "__getitems__", None)  # in-memory sets index a whole batch at once
        return batch(indices) if batch else [self.dataset[index] for index in indices]

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        if not isinstance(key, tuple):
            return self.dataset[key]
        epoch, index = key
        with torch.random.fork_rng(devices=[]):
            # the CPU generator only: torch.manual_seed also queues a CUDA seeding with its stack trace
            # (a CUDA build), ~2 ms an item
            torch.default_generator.manual_seed(seed_for(self.seed, epoch, index))
            return self.dataset[index]


class TrainValDataModule(L.LightningDataModule):
    """Subclasses build `self.train_set`, `self.val_set` and, if they have one, `self.test_set` in `setup`;
    hparams hold batch_size and workers.

    Under DDP each rank reads its own shard of the training set (EpochSampler) and Lightning shards
    the validation set.
    The test set is for final numbers only: never shuffled, never truncated (its last batch may be short).
    """

    train_set: Dataset
    val_set: Dataset
    test_set: Dataset | None = None
    collate_fn = None  # the loaders' collate function (None: PyTorch's)
    augmented = False  # True: a training item differs from epoch to epoch (random augmentation), so
                       # embeddings computed once would not be what training sees (decode.cache refuses)

    def train_dataloader(self) -> DataLoader:
        return self.epoch_loader(self.train_set, self.hparams.workers)

    def epoch_loader(self, dataset: Dataset, workers: int) -> DataLoader:
        """Training batches of any dataset indexed like `train_set` (such as its cached embeddings): the
        same order of indices per (seed, epoch) and the same share of them per rank as `train_dataloader`.
        Set `self.trainer` first when a command passes the loader to `fit` itself (DDP: this rank's share)."""
        trainer, seed = self.trainer, run_seed()
        if len(dataset) < 2:
            raise ConfigError(f"the training split holds {len(dataset)} image(s); training needs at least 2")
        dataset = Seeded(dataset, seed, draws=self.augmented)
        sampler = EpochSampler(dataset, num_replicas=trainer.world_size if trainer else 1,
                               rank=trainer.global_rank if trainer else 0, seed=seed)
        if trainer:  # the epoch whose batches come next, also when resuming from the end of an epoch
            sampler.set_epoch(trainer.fit_loop.epoch_progress.current.processed)
        return self._loader(dataset, sampler=sampler, workers=workers)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.require_test_set())

    def require_test_set(self) -> Dataset:
        """The test set, or one line saying this dataset has none (call after `setup`)."""
        if self.test_set is None:
            raise ConfigError(f"{type(self).__name__} has no test split; the final numbers need one "
                              "(digits, mnist, fashion_mnist, cifar10, patches, noise, or a folder with <root>/test)")
        return self.test_set

    def _loader(self, dataset: Dataset, sampler: EpochSampler | None = None,
                workers: int | None = None) -> DataLoader:
        workers = self.hparams.workers if workers is None else workers
        # a last training batch of one image is dropped: BatchNorm cannot normalise a single image
        single = sampler is not None and len(sampler) % self.hparams.batch_size == 1
        return DataLoader(dataset, batch_size=self.hparams.batch_size, sampler=sampler, num_workers=workers,
                          persistent_workers=workers > 0, drop_last=single, collate_fn=self.collate_fn)
