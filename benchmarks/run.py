"""``python -m benchmarks [--quick] [--out DIR]``: time every contender, write JSON and a markdown table."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch

from . import memory
from .contenders import BASELINE, CONTENDERS, TARGETS, by_name, lstm_flops
from .timing import forward_step, interleaved_medians, matmul_peak, training_step

FULL = {
    "grid": [(B, H) for B in (1, 16, 64) for H in (128, 256, 512)],
    "T": 100,
    "reps": 5,
    "bidirectional": {"T": 100, "B": 16, "H": 256, "layers": 2},
    "long": {"T": 2000, "B": 8, "H": 128, "reps": 3},
    "sweep": {"Ts": (500, 1000, 2000), "B": 8, "H": 128},
    "matmul_n": 2048,
}
QUICK = {
    "grid": [(1, 64), (16, 128)],
    "T": 50,
    "reps": 3,
    "bidirectional": {"T": 20, "B": 4, "H": 32, "layers": 2},
    "long": None,
    "sweep": None,
    "matmul_n": 1024,
}
LONG_CONTENDERS = [BASELINE, "lstmkit return_gates", "lstmkit peephole", "lstmkit layernorm"]
SWEEP_CONTENDERS = [BASELINE, "lstmkit peephole"]


def time_case(names: list[str], T: int, B: int, H: int, reps: int, layers: int = 1, bi: bool = False) -> dict[str, Any]:
    """Forward and training medians of the named contenders on one shape, with ratios and GFLOP/s."""
    torch.manual_seed(0)
    x = torch.randn(T, B, H)
    runners = {c.name: c.build(H, H, layers, bi) for c in by_name(names)}
    fwd = interleaved_medians({n: forward_step(r, x) for n, r in runners.items()}, reps)
    train = interleaved_medians({n: training_step(r, x) for n, r in runners.items()}, reps)
    flops = lstm_flops(T, B, H, H, layers, 2 if bi else 1)
    rows = {}
    for name in runners:
        rows[name] = {
            "forward_s": fwd[name],
            "train_s": train[name],
            "forward_ratio": fwd[name] / fwd[BASELINE],
            "train_ratio": train[name] / train[BASELINE],
            "forward_gflops": flops / fwd[name] / 1e9,
            "train_gflops": 3 * flops / train[name] / 1e9,  # backward ~ two more GEMMs of the same size
        }
    return {"T": T, "B": B, "H": H, "I": H, "layers": layers, "bidirectional": bi, "rows": rows}


def targets_report(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Worst ratio of each targeted contender over the given cases, and whether it meets its goal."""
    out = []
    for name, (fwd_goal, train_goal) in TARGETS.items():
        have = [c for c in cases if name in c["rows"]]
        if not have:
            continue
        worst_f = max(have, key=lambda c: c["rows"][name]["forward_ratio"])
        worst_t = max(have, key=lambda c: c["rows"][name]["train_ratio"])
        wf, wt = worst_f["rows"][name]["forward_ratio"], worst_t["rows"][name]["train_ratio"]
        entry = {
            "contender": name,
            "forward_goal": fwd_goal,
            "train_goal": train_goal,
            "worst_forward": wf,
            "worst_forward_at": _label(worst_f),
            "worst_train": wt,
            "worst_train_at": _label(worst_t),
            "forward_met_in": sum(c["rows"][name]["forward_ratio"] <= fwd_goal for c in have) if fwd_goal else None,
            "train_met_in": sum(c["rows"][name]["train_ratio"] <= train_goal for c in have),
            "cases": len(have),
        }
        out.append(entry)
    return out


def _label(case: dict[str, Any]) -> str:
    extra = f" L={case['layers']} bi" if case["bidirectional"] else ""
    return f"T={case['T']} B={case['B']} H={case['H']}{extra}"


def markdown(report: dict[str, Any]) -> str:
    """The tables of ``report`` as markdown."""
    env = report["environment"]
    lines = [
        f"Run {env['started']} ({'quick' if report['quick'] else 'full'}), torch {env['torch']}, "
        f"{env['threads']} threads on {env['cpus']} CPUs, compiled kernel ISA: {env['kernel_isa']}, "
        f"load average before/after: {env['load_before']} / {env['load_after']}. "
        f"Matmul peak (float32 {env['matmul_n']}^2 torch.mm): {env['matmul_gflops']:.1f} GFLOP/s.",
        "",
        "Ratios to torch.nn.LSTM in the same run, forward / training (median of "
        f"{report['reps']} interleaved repetitions; lower is faster; T = {report['T']}, I = H, float32, 1 layer):",
        "",
    ]
    grid = report["grid"]
    lines.append("| contender | " + " | ".join(f"B={c['B']} H={c['H']}" for c in grid) + " |")
    lines.append("|---" * (len(grid) + 1) + "|")
    for c in CONTENDERS:
        cells = []
        for case in grid:
            r = case["rows"].get(c.name)
            cells.append(f"{r['forward_ratio']:.2f} / {r['train_ratio']:.2f}" if r else "-")
        lines.append(f"| {c.name} | " + " | ".join(cells) + " |")
    lines += ["", "torch.nn.LSTM absolute times and achieved GEMM GFLOP/s (percent of the matmul peak):", ""]
    lines.append("| shape | forward ms | training ms | forward GFLOP/s | training GFLOP/s |")
    lines.append("|---|---|---|---|---|")
    peak = report["environment"]["matmul_gflops"]
    for case in [*grid, *report["extra"]]:
        for name in (BASELINE, "lstmkit peephole"):
            r = case["rows"].get(name)
            if r is None:
                continue
            lines.append(
                f"| {_label(case)} {name} | {r['forward_s'] * 1e3:.2f} | {r['train_s'] * 1e3:.2f} | "
                f"{r['forward_gflops']:.1f} ({100 * r['forward_gflops'] / peak:.0f}%) | "
                f"{r['train_gflops']:.1f} ({100 * r['train_gflops'] / peak:.0f}%) |"
            )
    for case in report["extra"]:
        lines += ["", f"{_label(case)}: ratios to torch.nn.LSTM, forward / training", ""]
        lines += ["| contender | forward ms | training ms | ratio fwd / train |", "|---|---|---|---|"]
        for name, r in case["rows"].items():
            lines.append(
                f"| {name} | {r['forward_s'] * 1e3:.1f} | {r['train_s'] * 1e3:.1f} | "
                f"{r['forward_ratio']:.2f} / {r['train_ratio']:.2f} |"
            )
    if report["sweep"]:
        lines += ["", "Training step, time and peak memory (growth of the resident set in a fresh process) vs T:", ""]
        lines += ["| contender | T | seconds | peak MiB | MiB per 1000 steps |", "|---|---|---|---|---|"]
        for row in report["sweep"]:
            lines.append(
                f"| {row['contender']} | {row['T']} | {row['seconds']:.3f} | {row['peak_mib']:.1f} | "
                f"{1000 * row['peak_mib'] / row['T']:.1f} |"
            )
    lines += ["", "Targets (worst ratio over the single-layer grid and the 2-layer bidirectional case):", ""]
    lines.append("| contender | forward goal | worst forward | training goal | worst training | met |")
    lines.append("|---|---|---|---|---|---|")
    for t in report["targets"]:
        fg = f"<= {t['forward_goal']}" if t["forward_goal"] else "-"
        wf = f"{t['worst_forward']:.2f} ({t['worst_forward_at']})"
        met_f = f"fwd {t['forward_met_in']}/{t['cases']}, " if t["forward_goal"] else ""
        wt = f"{t['worst_train']:.2f} ({t['worst_train_at']})"
        met = f"{met_f}train {t['train_met_in']}/{t['cases']}"
        lines.append(f"| {t['contender']} | {fg} | {wf} | <= {t['train_goal']} | {wt} | {met} |")
    return "\n".join(lines) + "\n"


def _load() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a small subset (under a minute)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench"), help="folder for results.json/results.md")
    parser.add_argument("--reps", type=int, help="repetitions per case (default 5, quick 3)")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    plan = QUICK if args.quick else FULL
    reps = args.reps or plan["reps"]
    from lstmkit.kernels import compiled

    isa = compiled.extension().isa() if compiled.is_available() else "unavailable (reference loop)"
    env = {
        "started": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "kernel_isa": isa,
        "load_before": _load(),
        "matmul_n": plan["matmul_n"],
    }
    t_start = time.perf_counter()
    env["matmul_gflops"] = matmul_peak(plan["matmul_n"])
    print(f"matmul peak: {env['matmul_gflops']:.1f} GFLOP/s", flush=True)
    names = [c.name for c in CONTENDERS]
    grid = []
    for B, H in plan["grid"]:
        grid.append(time_case(names, plan["T"], B, H, reps))
        print(f"grid B={B} H={H} done ({time.perf_counter() - t_start:.0f} s)", flush=True)
    extra = []
    bd = plan["bidirectional"]
    multi = [c.name for c in CONTENDERS if not c.single_layer_only]
    extra.append(time_case(multi, bd["T"], bd["B"], bd["H"], reps, layers=bd["layers"], bi=True))
    print(f"bidirectional done ({time.perf_counter() - t_start:.0f} s)", flush=True)
    if plan["long"]:
        lg = plan["long"]
        extra.append(time_case(LONG_CONTENDERS, lg["T"], lg["B"], lg["H"], lg["reps"]))
        print(f"long sequence done ({time.perf_counter() - t_start:.0f} s)", flush=True)
    sweep = []
    if plan["sweep"]:
        sw = plan["sweep"]
        for name in SWEEP_CONTENDERS:
            for T in sw["Ts"]:
                row = memory.measure(name, T, sw["B"], sw["H"], torch.get_num_threads())
                sweep.append({"contender": name, "T": T, "B": sw["B"], "H": sw["H"], **row})
        print(f"memory sweep done ({time.perf_counter() - t_start:.0f} s)", flush=True)
    env["load_after"] = _load()
    env["seconds"] = time.perf_counter() - t_start
    report = {
        "quick": args.quick,
        "reps": reps,
        "T": plan["T"],
        "environment": env,
        "grid": grid,
        "extra": extra,
        "sweep": sweep,
        "targets": targets_report([*grid, extra[0]]),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(report, indent=2))
    table = markdown(report)
    (args.out / "results.md").write_text(table)
    print(table)
    print(f"wrote {args.out / 'results.json'} and {args.out / 'results.md'} in {env['seconds']:.0f} s")
    return 0
