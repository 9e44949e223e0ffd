"""Kept for imports from the source tree: the contenders live in :mod:`lstmkit.bench.contenders`."""

from lstmkit.bench.contenders import *  # noqa: F403
