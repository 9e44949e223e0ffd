"""Tables and target checks of a benchmark result (the dict written to ``results.json``)."""

from __future__ import annotations

from typing import Any

from . import edge, step
from .contenders import BASELINE, CONTENDERS, LOW_PRECISION_GOAL, SCRIPTED_RIVAL, goals

RIVAL_FACTOR = 3.0
"""lstmkit's training step must be this many times faster than the TorchScript loop of the same variant."""


def label(case: dict[str, Any]) -> str:
    extra = f" L={case['layers']} bi" if case["bidirectional"] else ""
    inputs = f" I={case['I']}" if case.get("I", case["H"]) != case["H"] else ""
    return f"T={case['T']} B={case['B']}{inputs} H={case['H']}{extra}"


def _single_layer(run: dict[str, Any]) -> list[dict[str, Any]]:
    return [*run["grid"], *(c for c in run["extra"] if not c["bidirectional"])]


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per (thread count, case, contender, measure) that has a goal, with whether it is met.

    Goals: :func:`~lstmkit.bench.contenders.goals` (ratios to nn.LSTM), and a training step
    ``RIVAL_FACTOR`` times faster than the TorchScript loop of the same variant.
    """
    checks = []
    for run in result["runs"]:
        for case in _single_layer(run):
            rows = case["rows"]
            for name, row in rows.items():
                fwd_goal, train_goal = goals(name, case["B"])
                where = {"threads": run["threads"], "case": label(case), "contender": name}
                if fwd_goal is not None:
                    got = row["forward_ratio"]
                    checks.append({**where, "measure": "forward / nn.LSTM", "value": got, "goal": f"<= {fwd_goal}"})
                    checks[-1]["met"] = got <= fwd_goal
                if train_goal is not None:
                    got = row["train_ratio"]
                    checks.append({**where, "measure": "training / nn.LSTM", "value": got, "goal": f"<= {train_goal}"})
                    checks[-1]["met"] = got <= train_goal
                rival = SCRIPTED_RIVAL.get(name)
                if rival in rows:
                    got = rows[rival]["train_s"] / row["train_s"]
                    goal = f">= {RIVAL_FACTOR}"
                    checks.append({**where, "measure": f"{rival} / this, training", "value": got, "goal": goal})
                    checks[-1]["met"] = got >= RIVAL_FACTOR
        for case in run.get("bf16", []):
            if case["B"] < 16:
                continue
            for name, row in case["rows"].items():
                if name == BASELINE:
                    continue
                where = {"threads": run["threads"], "case": f"{label(case)} bfloat16", "contender": name}
                got, goal = row["train_ratio"], f"<= {LOW_PRECISION_GOAL}"
                checks.append({**where, "measure": "training / nn.LSTM, both bfloat16", "value": got, "goal": goal})
                checks[-1]["met"] = got <= LOW_PRECISION_GOAL
        for entry in run.get("step", []):
            shape = f"T=1 B=1 H={entry['H']}"
            for name, row in entry["rows"].items():
                for way in ("call", "stream", "chunk"):
                    if f"{way}_ratio" in row and name != BASELINE:
                        got = row[f"{way}_ratio"]
                        measure = f"{way} step / nn.LSTM" if way != "chunk" else f"chunk of {step.CHUNK} / nn.LSTM"
                        where = {"threads": run["threads"], "case": shape, "contender": f"lstmkit {name}"}
                        checks.append({**where, "measure": measure, "value": got, "goal": f"<= {step.STEP_GOAL}"})
                        checks[-1]["met"] = got <= step.STEP_GOAL
        checks += edge.targets(run["threads"], run.get("edge", []))
    return checks


def _ratio_table(cases: list[dict[str, Any]]) -> list[str]:
    names = [c.name for c in CONTENDERS if any(c.name in case["rows"] for case in cases)]
    lines = ["| contender | " + " | ".join(label(c) for c in cases) + " |", "|---" * (len(cases) + 1) + "|"]
    for name in names:
        cells = []
        for case in cases:
            r = case["rows"].get(name)
            cells.append(f"{r['forward_ratio']:.2f} / {r['train_ratio']:.2f}" if r else "-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    base = [case["rows"][BASELINE] for case in cases]
    lines.append(
        f"| {BASELINE} ms | "
        + " | ".join(f"{r['forward_s'] * 1e3:.2f} / {r['train_s'] * 1e3:.2f}" for r in base)
        + " |"
    )
    lines.append(
        f"| {BASELINE} GFLOP/s | "
        + " | ".join(f"{r['forward_gflops']:.0f} / {r['train_gflops']:.0f}" for r in base)
        + " |"
    )
    return lines


def markdown(result: dict[str, Any]) -> str:
    """Every table of ``result`` as markdown: per thread count, the grid and the extra cases as
    ratios to nn.LSTM (forward / training), then the memory sweep and the target checks."""
    env = result["environment"]
    lines = [
        f"Run {env['started']} ({result.get('plan', 'quick' if result['quick'] else 'full')}), torch {env['torch']}, "
        f"{env['cpus']} CPUs, compiled kernel: {env['kernel_isa']}, load average before/after: "
        f"{env['load_before']} / {env['load_after']}, {env['seconds']:.0f} s.",
    ]
    for run in result["runs"]:
        lines += ["", f"### {run['threads']} thread(s): ratios to torch.nn.LSTM, forward / training"]
        if run["grid"]:
            lines += [
                "",
                f"Median of {result['reps']} interleaved repetitions, float32, I = H, one layer unless said; lower "
                f"is faster. Matmul peak (float32 square torch.mm): {run['matmul_gflops']:.1f} GFLOP/s.",
                "",
                *_ratio_table(run["grid"]),
            ]
        if run["extra"]:
            lines += ["", *_ratio_table(run["extra"])]
        if run.get("bf16"):
            lines += [
                "",
                "bfloat16 (parameters and input), ratios to torch.nn.LSTM in bfloat16, forward / training:",
                "",
                *_ratio_table(run["bf16"]),
            ]
        lines += step.markdown(run.get("step", []))
        lines += edge.markdown(run.get("edge", []), run.get("edge_skipped"))
    if result["sweep"]:
        lines += ["", "Training step, time and peak memory (growth of the resident set in a fresh process) vs T:", ""]
        lines += ["| contender | T | seconds | peak MiB | MiB per 1000 steps |", "|---|---|---|---|---|"]
        for row in result["sweep"]:
            lines.append(
                f"| {row['contender']} | {row['T']} | {row['seconds']:.3f} | {row['peak_mib']:.1f} | "
                f"{1000 * row['peak_mib'] / row['T']:.1f} |"
            )
    checks = result["targets"]
    missed = [c for c in checks if not c["met"]]
    lines += ["", f"Targets: {len(checks) - len(missed)} of {len(checks)} checks met.", ""]
    if missed:
        lines += ["| threads | case | contender | measure | value | goal |", "|---|---|---|---|---|---|"]
        for c in missed:
            lines.append(
                f"| {c['threads']} | {c['case']} | {c['contender']} | {c['measure']} | {c['value']:.2f} | {c['goal']} |"
            )
    return "\n".join(lines) + "\n"
