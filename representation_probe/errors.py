"""The one exception type a user sees as a single line instead of a traceback."""


class ConfigError(ValueError):
    """Bad user input: says what was wrong and what is allowed (a ValueError to Python callers)."""
