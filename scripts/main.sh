#!/usr/bin/env bash
# The main job (creates .venv on first use). Extra arguments go to the demo.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/env.sh"
cd "$root"
python -m lstmkit.demo "$@"
