#!/usr/bin/env bash
# Build the documentation site (mkdocs + mkdocstrings, warnings are errors) into site/,
# or into the folder given as the first argument. Creates .venv on first use.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/env.sh"
cd "$root"
NO_MKDOCS_2_WARNING=1 mkdocs build --strict --quiet --site-dir "${1:-site}"
echo "documentation built in ${1:-site}/index.html"
