"""The per-epoch record of a training run in its run directory, whatever the loggers."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import Callback

from representation_probe.rundir import RunDir


class EpochMetrics(Callback):
    """metrics.csv: one row per epoch with every value logged for it (train and val), rewritten
    atomically after each epoch. The rows travel in the checkpoints, so a resumed run keeps the
    earlier epochs' rows exactly once."""

    def __init__(self, run_dir: str):
        self.run_dir = RunDir(run_dir)
        self.rows: list[dict] = []

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        values = {key: float(value) for key, value in trainer.callback_metrics.items() if value.numel() == 1}
        self.rows.append(dict(epoch=trainer.current_epoch, step=trainer.global_step, **values))
        self.run_dir.write_metrics(self.rows)

    def state_dict(self) -> dict:
        return {"rows": self.rows}

    def load_state_dict(self, state: dict) -> None:
        self.rows = list(state["rows"])
