"""``lstmkit reproduce``: regenerate the README's results table from scratch.

Runs every row of :data:`lstmkit.cli._results.ROWS` (``lstmkit train TASK ...`` with the task's
defaults, no tuning flag) for its seeds, one run at a time on one thread, each under a
wall-time cap (Ctrl-C when it is reached: the run saves its checkpoint and stops, and its
final weights are evaluated on the test set). Writes into ``--out`` (default ``results/``):

* ``results.json``: the machine, the date, the command, and for every run its seed,
  sequences to criterion (None when not met), sequences seen, wall and training seconds,
  final test metrics and the load average before and after; rewritten after every run, so
  an interrupted reproduction keeps what it has;
* ``results.md``: the markdown table the README shows, rows that fail included;
* ``runs/ROW-sSEED/``: each run's directory (config, metrics, checkpoint, curve).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ..fileio import atomic_write
from . import _results
from .errors import CLIError

GRACE_S = 120
"""Seconds a capped run gets after Ctrl-C to save its checkpoint."""


def register(subparsers: Any) -> None:
    """Add the ``reproduce`` subcommand."""
    p = subparsers.add_parser(
        "reproduce",
        help="regenerate the README's results table (every task, 3 seeds, time caps)",
        description="Run every row of the results table with its task defaults and write results.md and "
        "results.json (machine, date, every run). Rows: " + ", ".join(r.key for r in _results.ROWS),
    )
    p.add_argument("--out", default="results", help="output directory (default: results)")
    p.add_argument("--only", help="comma-separated row keys to run (default: all)")
    p.add_argument("--seeds", type=int, help="seeds per row (default: each row's own, 3 for most)")
    p.add_argument("--cap-scale", type=float, default=1.0, help="multiply every row's wall-time cap")
    p.add_argument(
        "--append",
        action="store_true",
        help="keep the rows already in OUT/results.json (rows run again replace theirs)",
    )
    p.set_defaults(func=run_reproduce)


def machine() -> dict[str, Any]:
    """CPU model, core count, torch and Python versions, platform."""
    import torch

    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _load() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def run_one(row: _results.Row, seed: int, run_dir: Path, cap_s: float) -> dict[str, Any]:
    """Train one seed of one row under the cap; its numbers as :func:`_results.read_run` reads them."""
    base = [sys.executable, "-m", "lstmkit"]
    cmd = [*base, "train", *row.args, "--seed", str(seed), "--out", str(run_dir), "--overwrite"]
    cmd += ["--quiet", "--threads", "1"]
    load_before, t0 = _load(), time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    capped = False
    try:
        _, err = proc.communicate(timeout=cap_s)
    except subprocess.TimeoutExpired:
        capped = True
        proc.send_signal(signal.SIGINT)  # the trainer checkpoints and exits with status 130
        _, err = proc.communicate(timeout=GRACE_S)
    except KeyboardInterrupt:  # Ctrl-C on reproduce: let the run save its checkpoint, then stop
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=GRACE_S)
        raise
    wall = time.perf_counter() - t0
    out: dict[str, Any] = {"seed": seed, "task": row.args[0], "run": str(run_dir), "capped": capped}
    out.update(_results.read_run(run_dir))
    if proc.returncode not in (0, 130):
        out["error"] = (err or "").strip().splitlines()[-1:] or [f"exit status {proc.returncode}"]
    elif capped:  # evaluate the weights it stopped with, not the last scheduled evaluation
        ev = subprocess.run([*base, "eval", str(run_dir), "--threads", "1"], capture_output=True, text=True)
        if ev.returncode == 0:
            out["test"] = json.loads(ev.stdout)["test"]
    out.update(wall_seconds=round(wall, 1), load_before=load_before, load_after=_load())
    return out


def write(report: dict[str, Any], out: Path) -> None:
    """results.json and results.md, atomically."""
    loads = [v for row in report["rows"] for r in row["runs"] for v in (r["load_before"], r["load_after"])]
    report["load_min"], report["load_max"] = (min(loads), max(loads)) if loads else (0.0, 0.0)
    atomic_write(out / "results.json", json.dumps(report, indent=1) + "\n")
    atomic_write(out / "results.md", _results.markdown(report))


def run_reproduce(args: argparse.Namespace) -> int:
    """``lstmkit reproduce``."""
    rows = list(_results.ROWS)
    if args.only:
        keys = [k.strip() for k in args.only.split(",") if k.strip()]
        unknown = sorted(set(keys) - {r.key for r in rows})
        if unknown:
            raise CLIError(f"--only: unknown rows {unknown}; expected some of {[r.key for r in rows]}")
        rows = [r for r in rows if r.key in keys]
    if args.seeds is not None and args.seeds <= 0:
        raise CLIError(f"--seeds must be a positive int; got {args.seeds}")
    if not args.cap_scale > 0:
        raise CLIError(f"--cap-scale must be positive; got {args.cap_scale}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(["lstmkit", "reproduce", *sys.argv[2:]])
        if sys.argv[1:2] == ["reproduce"]
        else "lstmkit reproduce",
        "machine": machine(),
        "rows": [],
    }
    if args.append and (out / "results.json").exists():
        try:
            old = json.loads((out / "results.json").read_text())
            again = {r.key for r in rows}
            report["rows"] = [r for r in old["rows"] if r["key"] not in again]
            report["date"] = f"{old['date']} to {report['date']}"
            report["command"] = f"{old['command']}, then {report['command']}"
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise CLIError(f"--append: cannot read {out / 'results.json'}: {err}") from None
    for row in rows:
        entry: dict[str, Any] = {"key": row.key, "label": row.label, "args": list(row.args), "paper": row.paper}
        entry.update(paper_note=row.paper_note, cap_s=row.cap_s * args.cap_scale, runs=[])
        report["rows"].append(entry)
        for seed in range(args.seeds or row.seeds):
            try:
                run = run_one(row, seed, out / "runs" / f"{row.key}-s{seed}", row.cap_s * args.cap_scale)
            except KeyboardInterrupt:
                print(f"interrupted; the runs finished so far are in {out}/results.md", file=sys.stderr)
                return 130
            entry["runs"].append(run)
            write(report, out)
            seqs, wall, test = _results.cell(run)
            print(f"{row.label}, seed {seed}: {seqs} sequences, {wall}, {test}", file=sys.stderr, flush=True)
    print((out / "results.md").read_text(), end="")
    return 0
