"""Progress of a study in the unit it counts (an inversion's steps, a trade-off's steps, else epochs) with its
latest values: a bar on stderr for `progress=True`, or report(done, total, values) for a function. Lightning's own
bar is never shown: it counts batches (7/7 for an inversion of 40 steps) and, in a notebook, asks for widgets."""

from __future__ import annotations

import sys
from collections.abc import Callable

import lightning as L

SHOWN = ("val/acc", "val/loss", "train/loss")  # what an epoch study's bar shows, where logged


def counts(trainer: L.Trainer, module: L.LightningModule) -> tuple[int, int | None, dict[str, float]]:
    """(done, total, latest values): the module's own where it counts steps (an inversion), the trainer's steps
    where they bound the fit, else its epochs."""
    if hasattr(module, "progress"):
        return module.progress()
    values = {key: float(value) for key, value in trainer.callback_metrics.items() if key in SHOWN}
    if trainer.max_steps > 0:
        return trainer.global_step, trainer.max_steps, values
    return trainer.current_epoch, trainer.max_epochs if trainer.max_epochs > 0 else None, values


def _by_step(trainer: L.Trainer, module: L.LightningModule) -> bool:
    return hasattr(module, "progress") or trainer.max_steps > 0


class ProgressBar(L.Callback):
    """progress=True: one bar, updated after each batch of steps or each epoch."""

    def __init__(self):
        self.bar = None

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        from tqdm import tqdm  # the plain text bar: it needs no widgets in a notebook

        if not trainer.is_global_zero:  # one bar for a DDP run
            return
        done, total, _ = counts(trainer, module)
        self.bar = tqdm(total=total, initial=done, unit="step" if _by_step(trainer, module) else "epoch",
                        file=sys.stderr, dynamic_ncols=True, leave=True, mininterval=0.5)

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *args) -> None:
        if self.bar is not None and _by_step(trainer, module):
            self._show(trainer, module)

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if self.bar is not None and not _by_step(trainer, module):
            self._show(trainer, module, ended=1)

    def _show(self, trainer: L.Trainer, module: L.LightningModule, ended: int = 0) -> None:
        done, _, values = counts(trainer, module)
        self.bar.n = done + ended  # the epoch that just ended counts
        self.bar.set_postfix({key: f"{value:.4g}" for key, value in values.items()}, refresh=False)
        self.bar.update(0)  # drawn at most every mininterval seconds (a notebook keeps every drawing)

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._close()

    def on_exception(self, trainer: L.Trainer, module: L.LightningModule, exception: BaseException) -> None:
        self._close()

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class ProgressCallback(L.Callback):
    """progress=<function>: report(done, total, values) after every training batch, in the study's unit (total
    None if unknown)."""

    def __init__(self, report: Callable[..., None]):
        self.report = report

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *args) -> None:
        self.report(*counts(trainer, module))
