"""The ``lstmkit`` command line. argparse lives here only; each subcommand is a thin call.

Every module in this package that defines ``register(subparsers)`` adds its subcommands;
``register`` sets ``func`` (taking the parsed namespace, returning an exit code) on each parser.
A :class:`CLIError` (bad arguments, bad files) prints one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from .errors import CLIError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lstmkit", description="Train, inspect and export glass-box LSTMs.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if callable(register):
            register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except CLIError as err:
        print(f"lstmkit {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
