"""What every study function shares: the model it is given, a Lightning Trainer that says nothing unless
asked, and progress reported to a callback."""

from __future__ import annotations

import contextlib
import ctypes
import difflib
import functools
import gc
import inspect
import logging
import warnings
from collections.abc import Callable, Iterator, Mapping

import lightning as L

from representation_probe.api.progress import ProgressBar, ProgressCallback
from representation_probe.errors import KeywordError
from representation_probe.models import Backbone
from representation_probe.models.load import load
from representation_probe.runs import interrupts

Progress = bool | Callable[..., None]  # True: a progress bar (progress.py); a function: called after each batch
LIGHTNING_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning_fabric")


def as_model(model) -> Backbone:
    """A loaded model as it is; anything else through rp.load (its size then follows each call's data)."""
    return model if isinstance(model, Backbone) else load(model)


def make_trainer(trainer: Mapping | Callable | None, *, progress: Progress = False, loggers=(), callbacks=(),
                 **fixed) -> L.Trainer:
    """A Lightning Trainer: `trainer` is a mapping of Trainer arguments or a callable taking them (the
    CLI's configured trainer); the study's `fixed` arguments win; a CPU by default."""
    shown = [ProgressBar()] if progress is True else [ProgressCallback(progress)] if callable(progress) else []
    own = [*callbacks, StepRecorder(), *shown]
    arguments = dict(fixed, logger=list(loggers) or False, enable_progress_bar=False, callbacks=own)
    if callable(trainer):
        return trainer(**arguments)
    given = {key: value for key, value in (trainer or {}).items() if key != "_target_"}
    return L.Trainer(**dict(accelerator="cpu", devices=1, enable_model_summary=False) | given | arguments)


class StepRecorder(L.Callback):
    """Keeps the step and epoch the trainer reached, for the record of a run a signal stops (runs/interrupts.py)."""

    def on_train_batch_end(self, trainer: L.Trainer, *args) -> None:
        interrupts.progress.update(step=trainer.global_step, epoch=trainer.current_epoch)


VERBOSE = False  # the command line sets it: Lightning's lines go to the run's log (resumed from, stopped at)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Lightning's info lines (its accelerator banner, tips, why a fit stopped) and its advice and deprecation
    warnings silenced for the call: a library prints nothing unasked (a progress bar, where asked, is ours);
    the command line keeps Lightning's lines in its run's log (VERBOSE)."""
    if VERBOSE:
        yield
        return
    saved = {name: logging.getLogger(name).level for name in LIGHTNING_LOGGERS}
    for name in LIGHTNING_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module=r"lightning\.")
            warnings.filterwarnings("ignore", message=r".*(does not have many workers|LeafSpec|treespec).*")
            yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def checkpointing(callbacks, directory) -> dict:
    """Trainer arguments: checkpoints only where the caller passes checkpoint callbacks (the CLI, into its run
    directory): Lightning would otherwise write its own into the working directory."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    wanted = any(isinstance(callback, ModelCheckpoint) for callback in callbacks)
    return dict(enable_checkpointing=wanted, **({"default_root_dir": str(directory)} if directory else {}))


def public(function):
    """What every public rp.* function gets: its keywords checked as the command line checks its keys (an unknown
    one is a KeywordError naming the closest), and its memory given back when it ends (`returns_memory`)."""
    parameters = inspect.signature(function).parameters
    names = [name for name, p in parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    measured = returns_memory(function)

    @functools.wraps(function)
    def checked(*args, **kwargs):
        for key in kwargs:
            if key not in names:
                close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise KeywordError(f"rp.{function.__name__} takes no keyword {key!r}{hint}; it takes "
                                   f"{', '.join(names)}")
        return measured(*args, **kwargs)

    return checked


def returns_memory(study):
    """Give the memory a study used back to the system when it ends: its traced graphs hold BatchNorm-folded
    copies of the weights in reference cycles, which Python's collector reaches late in a process with many
    objects, and glibc keeps freed heap memory. Without this, each call added ~15 MB (ResNet18) to a
    notebook's process, for good. Costs one full collection (~0.2 s with torch and transformers loaded)."""

    @functools.wraps(study)
    def wrapper(*args, **kwargs):
        try:
            return study(*args, **kwargs)
        finally:
            gc.collect()  # traced graphs hold their folded weights in reference cycles
            if _LIBC is not None:
                _LIBC.malloc_trim(0)

    return wrapper


def _glibc():
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


_LIBC = _glibc()
