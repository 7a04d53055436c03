"""The metrics.csv record of a Lightning run, written whatever loggers are configured."""

from __future__ import annotations

import lightning as L


class MetricsHistory(L.Callback):
    """One row per validation (sanity check excluded) and per test: the stage, step, epoch and every
    logged metric at that point (`trainer.callback_metrics`), for `RunDir.write_metrics`."""

    def __init__(self):
        self.rows: list[dict] = []

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._record(trainer)

    def on_test_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._record(trainer)

    def _record(self, trainer: L.Trainer) -> None:
        metrics = {name: float(value) for name, value in sorted(trainer.callback_metrics.items())}
        self.rows.append(dict(stage=trainer.state.fn.value, step=trainer.global_step, epoch=trainer.current_epoch,
                              **metrics))
