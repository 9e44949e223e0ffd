"""``lstmkit bench``: lstmkit's speed benchmark (:mod:`lstmkit.bench`), the same as ``python -m benchmarks``.

Example::

    $ lstmkit bench --quick --out /tmp/bench
"""

from __future__ import annotations

import argparse
from typing import Any

from .errors import CLIError


def register(subparsers: Any) -> None:
    """Add the ``bench`` subcommand."""
    from ..bench.run import add_arguments

    p = subparsers.add_parser(
        "bench",
        help="time lstmkit's kernels against torch.nn.LSTM",
        description="Forward and training steps of torch.nn.LSTM, lstmkit's kernels for every spec family "
        "and hand-written loops (TorchScript, Python), at torch's default thread count and at one thread, "
        "as ratios to torch.nn.LSTM measured in the same run. Writes results.json and results.md to --out.",
    )
    add_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the harness with the parsed options; returns its exit code."""
    from ..bench.run import execute, plan_name

    if args.reps is not None and args.reps < 1:
        raise CLIError(f"--reps must be at least 1; got {args.reps}")
    if args.threads is not None and args.threads < 1:
        raise CLIError(f"--threads must be at least 1; got {args.threads}")
    try:
        plan = plan_name(args)
    except ValueError as err:
        raise CLIError(str(err)) from None
    return execute(args.quick, args.out, args.reps, args.threads, plan=plan)
