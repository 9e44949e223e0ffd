"""The one error type the command line turns into a one-line message and exit status 2."""


class CLIError(Exception):
    """A user-facing error: bad arguments, unreadable or malformed files, refused checkpoints."""


def os_error_line(err: OSError, doing: str = "write") -> str:
    """One line for a failed file operation, naming the file: ``cannot write out/m.onnx: No such file or
    directory``."""
    where = f" {err.filename}" if err.filename else ""
    return f"cannot {doing}{where}: {err.strerror or err}"
