"""The one exception type that the CLI turns into a single clear line."""


class VinError(Exception):
    """A user-facing error: the message says what is wrong and how to fix it."""
