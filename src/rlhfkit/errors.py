"""Errors a user can act on. The CLI prints their message (no traceback) and exits with `exit_code`."""


class RlhfkitError(Exception):
    """A problem with the user's input or environment, explained in the message."""

    exit_code = 2


class DataError(RlhfkitError):
    """A data file that cannot be read or used as asked (the message names file, line and field)."""

    exit_code = 2


class ModelNotFoundError(RlhfkitError):
    """A model name that resolves to nothing we can load."""

    exit_code = 2
