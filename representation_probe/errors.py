"""The one exception type a user sees as a single line instead of a traceback."""


class ConfigError(Exception):
    """Bad user input: says what was wrong and what is allowed."""
