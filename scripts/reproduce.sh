#!/usr/bin/env bash
# Regenerate the README's results table from scratch (creates .venv on first use): every row's
# default `lstmkit train` command for its seeds, one run at a time on one thread, each capped in
# wall time. Writes results/results.md (the table), results/results.json (every run, the machine,
# the date, load averages) and results/runs/. Takes about an hour on a quiet 2-core CPU.
# Extra arguments go to `lstmkit reproduce` (e.g. --only adding1000,reber --seeds 1 --out DIR).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/env.sh"
cd "$root"
python -m lstmkit reproduce "$@"
