#!/usr/bin/env bash
# The main job (creates .venv on first use): train an LSTM on the adding problem with T = 1000
# (Hochreiter & Schmidhuber 1997, Experiment 4: two marked values among 1000-1100 steps, output
# their sum at the end) with the task's default settings (chrono initialisation, Tallec &
# Ollivier 2018, T_max from the task's length) until it meets the paper's success criterion,
# print the result beside the paper's (Table 7: 853,000 training sequences at T = 1000), and
# save the learning curve and pictures of the gates in runs/adding-T1000/. About two to three
# minutes of training on one thread. Safe to run again (it retrains).
# Extra arguments go to `lstmkit train` (e.g. --seed 1, --seq-len 500).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/env.sh"
cd "$root"
run="runs/adding-T1000"
mkdir -p "$run"
python -m lstmkit train adding --seq-len 1000 --out "$run" --overwrite --threads 1 "$@" > "$run/report.json"
python -m lstmkit eval "$run" > "$run/eval.json"
python -m lstmkit inspect "$run" --out "$run/gates" --max-sequences 16 > /dev/null
python - "$run/report.json" <<'PY'
import json, sys

r = json.load(open(sys.argv[1]))
paper = r.get("paper", {}).get("sequences_to_criterion")
T = r["task_args"].get("T")
if r["solved"]:
    ours = r["sequences_to_criterion"]
    ratio = f", {paper / ours:.0f}x fewer" if paper else ""
    print(f"adding problem, T = {T}: criterion met after {ours:,} training sequences in {r['seconds']} s "
          f"(paper, Table 7: {paper:,}{ratio})" if paper else f"adding problem, T = {T}: met after {ours:,}")
else:
    print(f"adding problem, T = {T}: criterion NOT met in {r['sequences']:,} training sequences "
          f"(paper, Table 7: {paper:,})" if paper else f"adding problem, T = {T}: criterion not met")
print(f"test: MSE {r['test']['mse']:.2g}, {r['test']['accuracy']:.1%} of 2560 test sequences within 0.04")
PY
echo "learning curve: $run/curve.png; gate pictures: $run/gates/; test metrics: $run/eval.json"
