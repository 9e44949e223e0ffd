"""``python -m benchmarks``: a thin entry to lstmkit's benchmark harness, which lives in :mod:`lstmkit.bench`
(so that ``lstmkit bench`` works from an installed package). See ``benchmarks/README.md``."""
