"""``lstmkit build-kernel``: compile the C++ kernel now (for images and CI), so no later command waits.

Builds once per environment, torch version, sources and flags (see
:mod:`lstmkit.kernels.compiled.build`); run again, it only reports where the build lives.

Example::

    $ lstmkit build-kernel
    lstmkit build-kernel: built in 41.2 s: /root/.cache/lstmkit/kernel/lstmkit_lstm_7bb423300f704bf8
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from .errors import CLIError


def register(subparsers: Any) -> None:
    """Add the ``build-kernel`` subcommand."""
    p = subparsers.add_parser(
        "build-kernel",
        help="compile the C++ kernel ahead of use (once per environment)",
        description="Compile lstmkit's C++ LSTM kernel into its build folder ($LSTMKIT_BUILD_DIR or "
        "~/.cache/lstmkit/kernel), once per environment, torch version, sources and flags. "
        "Prints the folder; does nothing more when it is already built.",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build (or find) the kernel and print one line saying where it is."""
    from ..kernels.compiled import build

    folder = build.KERNEL.directory()
    was_built = (folder / build.BUILT).is_file()
    start = time.perf_counter()
    try:
        build.load()
    except Exception as exc:  # compiler, headers, loader: one line, no traceback
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise CLIError(f"the kernel did not build in {folder}: {reason}") from None
    if was_built:
        print(f"lstmkit build-kernel: already built: {folder}")
    else:
        seconds = json.loads((folder / build.BUILT).read_text()).get("seconds", time.perf_counter() - start)
        print(f"lstmkit build-kernel: built in {seconds} s: {folder}")
    return 0
