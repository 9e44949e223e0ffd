#!/usr/bin/env bash
# Run the whole test suite (creates .venv on first use). Extra arguments go to pytest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/env.sh"
cd "$root"
ruff check src tests benchmarks
ruff format --check src tests benchmarks
# the documentation site must build without a warning (scripts/docs.sh builds it to look at)
NO_MKDOCS_2_WARNING=1 mkdocs build --strict --quiet --site-dir "$(mktemp -d)"
python -m pytest -q "$@"
