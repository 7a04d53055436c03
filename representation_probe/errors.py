"""What a user catches or filters: ConfigError (bad input, one line; exit code 2 on the command line) and the
warning classes the library says its doubts and its changes of the input with."""

WORKER = "in DataLoader worker process"


class ConfigError(ValueError):
    """Bad user input: says what was wrong and what is allowed (a ValueError to Python callers)."""

    def __init__(self, message: str):
        # A DataLoader worker's exception is re-raised in the main process as the same type, with the
        # worker's whole traceback as message; its last line holds ours.
        if message.startswith("Caught ") and WORKER in message.split("\n", 1)[0]:
            message = message.rstrip().splitlines()[-1].split(f"{__name__}.{type(self).__name__}: ", 1)[-1]
        super().__init__(message)


class KeywordError(ConfigError, TypeError):
    """A keyword a library function does not take: one line naming the closest and what it takes (a TypeError,
    as Python's own, and a ConfigError, as the command line's unknown keys)."""


class ResultWarning(UserWarning):
    """A result that should not be trusted as it is: it is returned, and this says why (filter the class, or one
    of its subclasses, with Python's `warnings`). Each also lands in the row's `warnings`, `.to_frame()`,
    `.warnings`, the log, the report and W&B."""


class DegenerateWarning(ResultWarning):
    """A trained study collapsed: a classifier at chance, a loss that never left its start, a reconstruction no
    better than the mean image, dead units."""


class InversionWarning(ResultWarning):
    """An inversion that did not move, a gradient the optimiser cannot follow, a target embedding that is
    constant or ~0, or a descent that ran away."""


class InputWarning(UserWarning):
    """The input was changed to fit the model (resized, its channels converted): said once per call."""


def warn(message: str, category: type[UserWarning]) -> None:
    """Issue a warning of the library's, attributed to the first frame outside representation_probe (the user's
    line in a notebook or script), so that Python's filters and its once-per-line rule apply there."""
    import sys
    import warnings

    frame, level = sys._getframe(1), 2  # the caller of warn is stacklevel 2
    while frame is not None and frame.f_globals.get("__name__", "").startswith("representation_probe"):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
