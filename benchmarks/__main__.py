"""Entry point of ``python -m benchmarks`` (the same as ``lstmkit bench``)."""

from lstmkit.bench.run import main

if __name__ == "__main__":
    raise SystemExit(main())
