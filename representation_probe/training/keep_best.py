"""The weights of a module at its best validation, kept in memory (and in its checkpoints, for a resume)."""

from __future__ import annotations

import copy
import math

import lightning as L


class KeepBest(L.Callback):
    """After every validation of `fit`, a copy of the module's state_dict when `monitor` improved strictly on
    its best (as ModelCheckpoint decides, so both pick the same epoch); `restore` loads it back."""

    def __init__(self, monitor: str, mode: str = "min"):
        self.monitor, self.sign = monitor, 1.0 if mode == "min" else -1.0
        self.best, self.epoch, self.state = math.inf, None, None

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn.value != "fit" or self.monitor not in trainer.callback_metrics:
            return
        value = self.sign * float(trainer.callback_metrics[self.monitor])
        if value < self.best:
            self.best, self.epoch = value, trainer.current_epoch
            self.state = copy.deepcopy(pl_module.state_dict())

    def restore(self, module: L.LightningModule) -> bool:
        """The best weights back into `module`; False when no validation was seen (the weights stay)."""
        if self.state is not None:
            module.load_state_dict(self.state)
        return self.state is not None

    def state_dict(self) -> dict:
        return dict(best=self.best, epoch=self.epoch, state=self.state)

    def load_state_dict(self, state_dict: dict) -> None:
        self.best, self.epoch, self.state = state_dict["best"], state_dict["epoch"], state_dict["state"]
