"""The one exception type a user sees as a single line instead of a traceback."""

WORKER = "in DataLoader worker process"


class ConfigError(ValueError):
    """Bad user input: says what was wrong and what is allowed (a ValueError to Python callers)."""

    def __init__(self, message: str):
        # A DataLoader worker's exception is re-raised in the main process as the same type, with the
        # worker's whole traceback as message; its last line holds ours.
        if message.startswith("Caught ") and WORKER in message.split("\n", 1)[0]:
            message = message.rstrip().splitlines()[-1].split(f"{__name__}.{type(self).__name__}: ", 1)[-1]
        super().__init__(message)
