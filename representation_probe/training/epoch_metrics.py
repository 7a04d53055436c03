"""The per-epoch record of a training run in its run directory, whatever loggers are configured."""

from __future__ import annotations

import lightning as L

from representation_probe.runs.rundir import RunDir


class EpochMetrics(L.Callback):
    """One row per epoch in <run dir>/metrics.csv: epoch, step and every logged metric (train/loss,
    train/acc, val/loss, val/acc, val/acc5), and one more after a validation or a test of its own
    (`stage`: fit, validate, test).

    Rewritten atomically at the end of each epoch, so a killed run keeps its curves; a resumed run
    keeps the rows of the epochs before its checkpoint and writes the others anew. Without a run
    directory (a library call that writes nothing), the rows are kept in `rows` only.
    """

    def __init__(self, run_dir: RunDir | None = None):
        self.run_dir = run_dir
        self.rows: list[dict] = []

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero and self.run_dir is not None:
            self.rows = [row for row in self.run_dir.read_metrics() if row["epoch"] < trainer.current_epoch]

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._record(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn.value == "validate":  # a validation of its own (the selected epoch's), not fit's
            self._record(trainer)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._record(trainer)  # the final numbers, as the last row

    def _record(self, trainer: L.Trainer) -> None:
        if not trainer.is_global_zero:
            return
        metrics = {key: float(value) for key, value in sorted(trainer.callback_metrics.items())}
        self.rows.append(dict(stage=trainer.state.fn.value, epoch=trainer.current_epoch, step=trainer.global_step,
                              **metrics))
        if self.run_dir is not None:
            self.run_dir.write_metrics(self.rows)
