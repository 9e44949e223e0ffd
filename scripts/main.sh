#!/usr/bin/env bash
# The main job (creates .venv on first use): train an LSTM on the adding problem with T = 100
# (Hochreiter & Schmidhuber 1997, Experiment 4) until it meets the paper's success criterion,
# print the result beside the paper's (Table 7: 74,000 training sequences), and save the
# learning curve and pictures of the gates in runs/adding-T100/. Safe to run again (it retrains).
# Extra arguments go to `lstmkit train` (e.g. --seed 1, --hidden 64).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/env.sh"
cd "$root"
run="runs/adding-T100"
python -m lstmkit train adding --seq-len 100 --out "$run" --overwrite --threads 1 "$@"
python -m lstmkit eval "$run" > "$run/eval.json"
python -m lstmkit inspect "$run" --out "$run/gates" --max-sequences 64 > /dev/null
echo "learning curve: $run/curve.png; gate pictures: $run/gates/; test metrics: $run/eval.json"
