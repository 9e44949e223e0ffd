"""``lstmkit bench``: the repository's speed benchmark (``benchmarks/``), the same as ``python -m benchmarks``.

Example::

    $ lstmkit bench --quick --out /tmp/bench
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Any

from .errors import CLIError


def register(subparsers: Any) -> None:
    """Add the ``bench`` subcommand."""
    p = subparsers.add_parser(
        "bench",
        help="time lstmkit's kernels against torch.nn.LSTM (needs a source checkout)",
        description="Run the benchmark harness of the repository (benchmarks/): forward and training "
        "steps of torch.nn.LSTM, lstmkit's kernels and hand-written loops, with ratios to torch.nn.LSTM "
        "measured in the same run. Writes results.json and results.md to --out.",
    )
    p.add_argument("--quick", action="store_true", help="a small subset (under a minute)")
    p.add_argument("--out", default="runs/bench", help="folder for results.json and results.md")
    p.add_argument("--reps", type=int, help="repetitions per case")
    p.add_argument("--threads", type=int, help="torch.set_num_threads")
    p.set_defaults(func=run)


def _harness() -> Any:
    """``benchmarks.run`` from the current directory or the checkout this lstmkit was installed from."""
    for root in (Path.cwd(), Path(__file__).resolve().parents[3]):
        if (root / "benchmarks" / "run.py").is_file():
            if str(root) not in sys.path:
                sys.path.insert(0, str(root))
            return importlib.import_module("benchmarks.run")
    raise CLIError(
        "the benchmark harness (benchmarks/) ships with the source repository, not the package; "
        "run this from a checkout of lstmkit"
    )


def run(args: argparse.Namespace) -> int:
    """Run the harness with the parsed options; returns its exit code."""
    if args.reps is not None and args.reps < 1:
        raise CLIError(f"--reps must be at least 1; got {args.reps}")
    if args.threads is not None and args.threads < 1:
        raise CLIError(f"--threads must be at least 1; got {args.threads}")
    argv = ["--out", str(args.out)]
    if args.quick:
        argv.append("--quick")
    if args.reps:
        argv += ["--reps", str(args.reps)]
    if args.threads:
        argv += ["--threads", str(args.threads)]
    return int(_harness().main(argv))
