"""The rows of the README's results table and how one finished run becomes a cell of it (private).

Each row is one ``lstmkit train`` command run with its task defaults (no tuning flag), for
several seeds, each under a wall-time cap. A run's numbers come from its own
``metrics.jsonl``: the sequences seen at the first test evaluation meeting the task's
criterion, and the last test metrics.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Row:
    """One line of the results table."""

    key: str  # short id, used for run directories and --only
    label: str  # what the table shows in its first column
    args: tuple[str, ...]  # `lstmkit train` arguments (task and task flags only)
    paper: int | None  # the paper's training sequences to its criterion (None: no number)
    paper_note: str  # where that number comes from, or why there is none
    cap_s: int  # wall-time cap per run in seconds (then Ctrl-C: checkpoint and stop)
    seeds: int = 3  # seeds 0 .. seeds-1


H97 = "Hochreiter & Schmidhuber 1997"
XL = "Beck et al. 2024 (xLSTM)"
MIN = "Feng et al. 2024 (minLSTM)"
MQAR = ("mqar", "--task-arg", "context=256", "--task-arg", "pairs=16")
SELCOPY = ("selcopy", "--cell", "minlstm", "--form", "sequential", "--layers")
FAMILY_ROWS: tuple[Row, ...] = (
    Row("parity-lstm", "parity, LSTM", ("parity",), None, f"scaled accuracy 1.0 on lengths 40-256 ({XL}, Fig. 4)", 120),
    Row(
        "parity-slstm",
        "parity, sLSTM",
        ("parity", "--cell", "slstm"),
        None,
        f"scaled accuracy 1.0, xLSTM[0:1] ({XL}, Fig. 4)",
        120,
    ),
    Row(
        "parity-mlstm",
        "parity, mLSTM",
        ("parity", "--cell", "mlstm"),
        None,
        f"fails: no state tracking without memory mixing, xLSTM[1:0] ({XL}, Fig. 4)",
        90,
    ),
    Row(
        "mqar-mlstm",
        "MQAR 256 x 16, mLSTM",
        (*MQAR, "--cell", "mlstm"),
        None,
        f"solved at every size ({XL}, Fig. 14); here 1 seed of 3 still at chance at the cap",
        150,
    ),
    Row("mqar-lstm", "MQAR 256 x 16, LSTM", MQAR, None, f"falls short of mLSTM ({XL}, Fig. 14)", 120),
    Row(
        "selcopy-minlstm1",
        "selective copy, minLSTM, 1 layer",
        (*SELCOPY, "1"),
        None,
        f"37.6% ({MIN}, Table 1; 4096 steps, 16 symbols; ours 64 and 8)",
        60,
    ),
    Row("selcopy-minlstm2", "selective copy, minLSTM, 2 layers", (*SELCOPY, "2"), None, f"85.7% ({MIN}, Table 1)", 90),
    Row(
        "selcopy-minlstm3",
        "selective copy, minLSTM, 3 layers",
        (*SELCOPY, "3"),
        None,
        f"96.0% ({MIN}, Table 1); not reached here in 2 minutes (still rising)",
        120,
    ),
)
"""The rows of the modern families (sLSTM, mLSTM, minLSTM) on the tasks of their papers. The papers
report accuracy, not sequences to a criterion: the paper column gives their figure."""
ROWS: tuple[Row, ...] = (
    Row("adding1000", "adding, T = 1000", ("adding", "--seq-len", "1000"), 853_000, f"{H97}, Table 7", 420),
    Row("adding500", "adding, T = 500", ("adding", "--seq-len", "500"), 209_000, f"{H97}, Table 7", 300),
    Row("adding100", "adding, T = 100", ("adding", "--seq-len", "100"), 74_000, f"{H97}, Table 7", 180),
    Row("order6a", "temporal order 6a", ("order", "--variant", "6a"), 31_390, f"{H97}, Table 9", 120),
    Row("order6b", "temporal order 6b", ("order", "--variant", "6b"), 571_100, f"{H97}, Table 9", 240),
    Row("reber", "embedded Reber", ("reber",), 8_440, f"{H97}, Table 1", 120),
    Row("copy100", "copy, T = 100", ("copy", "--seq-len", "100"), None, "no number (LSTM fails in Arjovsky 2016)", 360),
    Row("modern100", "adding (modern), T = 100", ("adding", "--seq-len", "100", "--modern"), None, "-", 180),
    Row("modern500", "adding (modern), T = 500", ("adding", "--seq-len", "500", "--modern"), None, "-", 300),
    Row("modern1000", "adding (modern), T = 1000", ("adding", "--seq-len", "1000", "--modern"), None, "-", 420),
    Row("gru100", "adding, T = 100, GRU", ("adding", "--seq-len", "100", "--baseline", "gru"), None, "-", 180, 1),
    Row("rnn100", "adding, T = 100, RNN", ("adding", "--seq-len", "100", "--baseline", "rnn"), None, "-", 180, 1),
    Row("copy200", "copy, T = 200", ("copy", "--seq-len", "200"), None, "beyond the papers here", 300, 1),
    Row("copy500", "copy, T = 500", ("copy", "--seq-len", "500"), None, "beyond the papers here", 300, 1),
    *FAMILY_ROWS,
)
"""Every row of the README's table, in the order it prints them."""

SHOWN_METRICS: dict[str, tuple[tuple[str, str], ...]] = {
    "adding": (("accuracy", "within 0.04"), ("mse", "MSE")),
    "copy": (("accuracy", "symbols right"), ("loss", "loss")),
    "order": (("correct", "correct"),),
    "reber": (("string_accuracy", "strings right"),),
    "parity": (("accuracy", "accuracy"), ("scaled_accuracy", "scaled")),
    "mqar": (("accuracy", "queries right"),),
    "selcopy": (("accuracy", "symbols right"),),
}
"""Task -> (metric key, label) of the final test scores the table shows."""


def read_run(run_dir: Path) -> dict[str, Any]:
    """Sequences to criterion, sequences seen, seconds and last test metrics of a run directory."""
    rows = []
    path = run_dir / "metrics.jsonl"
    if path.exists():
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    tested = [r for r in rows if "test" in r]
    solved = next((r for r in tested if r.get("solved")), None)
    return {
        "sequences_to_criterion": None if solved is None else solved["sequences"],
        "sequences": rows[-1]["sequences"] if rows else 0,
        "train_seconds": rows[-1]["elapsed"] if rows else 0.0,
        "test": tested[-1]["test"] if tested else {},
    }


def _score(task: str, test: dict[str, float]) -> str:
    parts = []
    for key, label in SHOWN_METRICS.get(task, ()):
        if key in test:
            value = test[key]
            if key in ("accuracy", "correct", "string_accuracy"):
                parts.append(f"{label} {value:.1%}")
            elif key == "scaled_accuracy":
                parts.append(f"{label} {value:.2f}")
            else:
                parts.append(f"{label} {value:.2g}")
    return ", ".join(parts) or "-"


def cell(run: dict[str, Any]) -> tuple[str, str, str]:
    """(sequences, wall time, final test) of one run, as the table prints them."""
    if run.get("sequences_to_criterion") is not None:
        seqs = f"{run['sequences_to_criterion']:,}"
    else:
        seqs = f"not met in {run.get('sequences', 0):,}"
    return seqs, f"{run.get('wall_seconds', 0):.0f} s", _score(run["task"], run.get("test", {}))


def markdown(report: dict[str, Any]) -> str:
    """The results table (one line per row, seeds separated by ' / ') with its machine and date."""
    m = report["machine"]
    lines = [
        f"Generated {report['date']} by `{report['command']}` on {m['cpu']} ({m['cores']} cores), "
        f"torch {m['torch']}, Python {m['python']}; one thread per run, one run at a time, each capped "
        "in wall time (then interrupted); load average (1 min) over the runs "
        f"{report['load_min']:.1f} to {report['load_max']:.1f}.",
        "",
        "| task | command (`lstmkit train ...`) | seeds | sequences to criterion | wall time | final test | paper |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in report["rows"]:
        runs = row["runs"]
        cells = [cell(r) for r in runs]
        paper = f"{row['paper']:,} ({row['paper_note']})" if row["paper"] else row["paper_note"]
        met = sum(r.get("sequences_to_criterion") is not None for r in runs)
        beat = ""
        if row["paper"]:
            n = sum((r.get("sequences_to_criterion") or row["paper"] + 1) < row["paper"] for r in runs)
            beat = f"; {n}/{len(runs)} below the paper"
        lines.append(
            f"| {row['label']} | `{' '.join(row['args'])}` | {', '.join(str(r['seed']) for r in runs)} "
            f"| {' / '.join(c[0] for c in cells)} ({met}/{len(runs)} met{beat}) | {' / '.join(c[1] for c in cells)} "
            f"| {' / '.join(c[2] for c in cells)} | {paper} |"
        )
    return "\n".join(lines) + "\n"
