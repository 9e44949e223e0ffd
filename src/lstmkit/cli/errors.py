"""The one error type the command line turns into a one-line message and exit status 2."""


class CLIError(Exception):
    """A user-facing error: bad arguments, unreadable or malformed files, refused checkpoints."""
