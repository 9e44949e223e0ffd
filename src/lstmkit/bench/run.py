"""``lstmkit bench`` / ``python -m benchmarks``: time every contender at default threads and at one
thread, write ``results.json`` and ``results.md``.

Example::

    $ lstmkit bench --quick --out /tmp/bench
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import edge, memory, report
from .contenders import BASELINE, CONTENDERS, LOW_PRECISION, SCRIPTED_PEEPHOLE, build_in, by_name, lstm_flops
from .step import time_steps
from .timing import forward_step, interleaved_medians, matmul_peak, training_step

STEP_INPUT = 64
"""Input size I of the per-step latency table."""


@dataclass(frozen=True)
class Plan:
    """What one benchmark run times."""

    grid: tuple[tuple[int, int], ...]  # (B, H) cases of the main table
    T: int  # sequence length of the main table
    reps: int  # interleaved repetitions per case
    long: tuple[int, int, int] | None  # (T, B, H) of the long-sequence case, None: skip
    bidirectional: tuple[int, int, int, int] | None  # (T, B, H, layers) of the stacked case, None: skip
    sweep: tuple[tuple[int, ...], int, int] | None  # (Ts, B, H) of the memory sweep, None: skip
    matmul_n: int  # size of the square matmul whose GFLOP/s is the peak
    step: tuple[int, ...] = ()  # hidden sizes of the per-step latency table (T = 1, B = 1), () to skip
    step_calls: int = 200  # steps per timing sample of that table
    bf16: tuple[tuple[int, int, int, int], ...] = ()  # (T, B, I, H) cases of the bfloat16 table, () to skip
    edge: tuple[int, ...] = ()  # hidden sizes of the edge-runtime table (lstmkit.bench.edge), () to skip
    contenders: tuple[str, ...] = field(default_factory=lambda: tuple(c.name for c in CONTENDERS))  # main table


FULL = Plan(
    grid=tuple((B, H) for B in (1, 16, 64) for H in (128, 256, 512)),
    T=100,
    reps=5,
    long=(1000, 16, 128),
    bidirectional=(100, 16, 256, 2),
    sweep=((500, 1000, 2000), 8, 128),
    matmul_n=2048,
    step=(64, 256),
    bf16=((100, 16, 128, 256), (100, 64, 128, 256)),
)
QUICK = Plan(
    grid=((1, 64), (16, 128)),
    T=50,
    reps=3,
    long=None,
    bidirectional=(20, 4, 32, 2),
    sweep=None,
    matmul_n=1024,
    step=(64,),
    bf16=((50, 16, 64, 128),),
)
STREAMS = Plan(
    grid=((1, 64), (1, 256), (16, 64), (16, 256)),
    T=50,
    reps=5,
    long=None,
    bidirectional=None,
    sweep=None,
    matmul_n=1024,
    step=(64, 256),
)
"""Streaming inference: forward of every spec at B = 1 and 16, and the per-step latency table."""
EDGE = Plan(grid=(), T=1, reps=15, long=None, bidirectional=None, sweep=None, matmul_n=1024, edge=(128,))
"""Deployment: one frame of a streaming model in eager PyTorch, ExecuTorch and ONNX Runtime, float and int8."""
PLAN_NAMES = ("full", "quick", "streams", "edge")
"""The plans by name: the module constants FULL, QUICK, STREAMS and EDGE."""
LONG_CONTENDERS = [BASELINE, "lstmkit return_gates", "lstmkit peephole", "lstmkit layernorm", SCRIPTED_PEEPHOLE]
SWEEP_CONTENDERS = [BASELINE, "lstmkit peephole"]


def _kernel_isa(compiled: Any) -> str:
    """The compiled kernel's loops and whether its AVX-512 panel GEMM runs on this CPU."""
    if not compiled.is_available():
        return "unavailable (reference loop)"
    ext = compiled.extension()
    return f"{ext.isa()} loops, {'AVX-512 panel GEMM' if ext.avx512() else 'no AVX-512 panel GEMM'}"


def time_case(
    names: list[str],
    T: int,
    B: int,
    H: int,
    reps: int,
    layers: int = 1,
    bi: bool = False,
    I: int | None = None,
    dtype: torch.dtype = torch.float32,
) -> dict[str, Any]:
    """Forward and training medians of the named contenders on one shape (I = H unless given) and
    dtype (parameters and input), with ratios and GFLOP/s."""
    torch.manual_seed(0)
    I = I or H
    x = torch.randn(T, B, I, dtype=dtype)
    runners = {c.name: build_in(c, dtype, I, H, layers, bi) for c in by_name(names)}
    fwd = interleaved_medians({n: forward_step(r, x) for n, r in runners.items()}, reps)
    train = interleaved_medians({n: training_step(r, x) for n, r in runners.items()}, reps)
    flops = lstm_flops(T, B, I, H, layers, 2 if bi else 1)
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
    kind = {"dtype": str(dtype).removeprefix("torch.")}
    return {"T": T, "B": B, "H": H, "I": I, "layers": layers, "bidirectional": bi, **kind, "rows": rows}


def run_threads(plan: Plan, reps: int, threads: int, log: Any) -> dict[str, Any]:
    """Every timed case of ``plan`` with ``torch.set_num_threads(threads)``."""
    torch.set_num_threads(threads)
    start = time.perf_counter()
    out: dict[str, Any] = {"threads": threads, "matmul_gflops": matmul_peak(plan.matmul_n), "extra": []}
    log(f"[{threads} threads] matmul peak: {out['matmul_gflops']:.1f} GFLOP/s")
    out["grid"] = []
    for B, H in plan.grid:
        out["grid"].append(time_case(list(plan.contenders), plan.T, B, H, reps))
        log(f"[{threads} threads] B={B} H={H} done ({time.perf_counter() - start:.0f} s)")
    if plan.long:
        T, B, H = plan.long
        out["extra"].append(time_case(LONG_CONTENDERS, T, B, H, max(1, reps - 2)))
        log(f"[{threads} threads] long sequence done ({time.perf_counter() - start:.0f} s)")
    if plan.bidirectional:
        T, B, H, layers = plan.bidirectional
        multi = [c.name for c in by_name(list(plan.contenders)) if not c.single_layer_only]
        out["extra"].append(time_case(multi, T, B, H, reps, layers=layers, bi=True))
        log(f"[{threads} threads] bidirectional done ({time.perf_counter() - start:.0f} s)")
    out["bf16"] = []
    for T, B, I, H in plan.bf16:
        names = [BASELINE, *(n for n in LOW_PRECISION if n in plan.contenders)]
        out["bf16"].append(time_case(names, T, B, H, reps, I=I, dtype=torch.bfloat16))
        log(f"[{threads} threads] bfloat16 B={B} H={H} done ({time.perf_counter() - start:.0f} s)")
    out["step"] = []
    for H in plan.step:
        out["step"].append(
            {"H": H, "I": STEP_INPUT, "rows": time_steps(H, STEP_INPUT, reps=3 * reps, calls=plan.step_calls)}
        )
        log(f"[{threads} threads] step latency H={H} done ({time.perf_counter() - start:.0f} s)")
    out["edge"] = []
    missing = edge.missing_extra() if plan.edge else None
    if missing:
        out["edge_skipped"] = f"{missing} is not installed: pip install 'lstmkit[edge]'"
    for H in plan.edge if not missing else ():
        out["edge"] += edge.time_edge(H, threads, reps=reps)
        log(f"[{threads} threads] edge runtimes H={H} done ({time.perf_counter() - start:.0f} s)")
    return out


def _load() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    add_arguments(p)
    return p


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options shared by ``python -m benchmarks`` and ``lstmkit bench``."""
    p.add_argument("--quick", action="store_true", help="a small grid (about a minute)")
    p.add_argument(
        "--streams", action="store_true", help="streaming: B = 1 and 16 at H = 64 and 256, and per-step latency"
    )
    p.add_argument(
        "--edge",
        action="store_true",
        help="deployment: a frame in eager PyTorch, ExecuTorch and ONNX Runtime, float and int8 (needs lstmkit[edge])",
    )
    p.add_argument("--out", type=Path, default=Path("runs/bench"), help="folder for results.json and results.md")
    p.add_argument("--reps", type=int, help="repetitions per case (default 5, quick 3)")
    p.add_argument("--threads", type=int, help="one thread count only (default: torch's default, then 1)")


def thread_counts(requested: int | None) -> list[int]:
    """The thread settings of a run: the requested one, else torch's default and then 1 (once if equal)."""
    if requested is not None:
        return [requested]
    default = torch.get_num_threads()
    return [default] if default == 1 else [default, 1]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the process exit code."""
    args = parser().parse_args(argv)
    for name in ("reps", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise SystemExit(f"--{name} must be at least 1; got {value}")
    try:
        plan = plan_name(args)
    except ValueError as err:
        raise SystemExit(str(err)) from None
    return execute(args.quick, args.out, args.reps, args.threads, plan=plan)


def plan_name(args: argparse.Namespace) -> str:
    """The plan the parsed options ask for; at most one of --quick, --streams, --edge."""
    chosen = [name for name in ("quick", "streams", "edge") if getattr(args, name, False)]
    if len(chosen) > 1:
        raise ValueError(f"choose one of --quick, --streams, --edge; got {', '.join('--' + c for c in chosen)}")
    return chosen[0] if chosen else "full"


def execute(
    quick: bool, out: Path, reps: int | None, threads: int | None, log: Any = None, *, plan: str | None = None
) -> int:
    """The whole run of ``plan`` (one of :data:`PLAN_NAMES`; default quick or full as ``quick`` says): time, write
    ``out/results.json`` and ``out/results.md``, print the tables."""
    log = log or (lambda line: print(line, flush=True))
    name = plan or ("quick" if quick else "full")
    if name not in PLAN_NAMES:
        raise ValueError(f"unknown plan {name!r}; expected one of {', '.join(PLAN_NAMES)}")
    chosen: Plan = globals()[name.upper()]
    reps = reps or chosen.reps
    from ..kernels import compiled

    counts = thread_counts(threads)
    env: dict[str, Any] = {
        "started": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "kernel_isa": _kernel_isa(compiled),
        "load_before": _load(),
    }
    t_start = time.perf_counter()
    runs = [run_threads(chosen, reps, n, log) for n in counts]
    sweep = []
    if chosen.sweep:
        Ts, B, H = chosen.sweep
        torch.set_num_threads(counts[0])
        for name in SWEEP_CONTENDERS:
            for T in Ts:
                sweep.append({"contender": name, "T": T, "B": B, "H": H, **memory.measure(name, T, B, H, counts[0])})
        log(f"memory sweep done ({time.perf_counter() - t_start:.0f} s)")
    env["load_after"] = _load()
    env["seconds"] = time.perf_counter() - t_start
    result = {
        "quick": name == "quick",
        "plan": name,
        "reps": reps,
        "T": chosen.T,
        "environment": env,
        "runs": runs,
        "sweep": sweep,
    }
    result["targets"] = report.targets(result)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=2))
    table = report.markdown(result)
    (out / "results.md").write_text(table)
    log(table)
    log(f"wrote {out / 'results.json'} and {out / 'results.md'} in {env['seconds']:.0f} s")
    return 0
