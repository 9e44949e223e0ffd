"""Kept for imports from the source tree: the timing helpers live in :mod:`lstmkit.bench.timing`."""

from lstmkit.bench.timing import *  # noqa: F403
