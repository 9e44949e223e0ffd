"""Arguments every subcommand that reads a trained run shares, named and described one way."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def add_run_argument(parser: Any) -> None:
    """The positional ``RUN``: a run directory written by ``lstmkit train``, or its checkpoint file."""
    parser.add_argument("run", metavar="RUN", help="run directory written by lstmkit train (or its checkpoint file)")


def run_folder(run: str | Path) -> Path:
    """The run directory of ``RUN`` (the folder itself, or the folder holding the checkpoint file), where
    commands put what they write unless told otherwise."""
    path = Path(run)
    return path.parent if path.suffix else path
