"""GPU benchmark: every spec on lstmkit's Triton kernel against cuDNN ``torch.nn.LSTM``, in one run.

    python -m benchmarks.cuda [--reps N] [--dtype float32|bfloat16|both] [--no-reference] [--json PATH]
    python -m benchmarks.cuda --smoke        # tiny shapes, to check the script (CPU: TRITON_INTERPRET=1)

Shapes (the issue's targets): B = 64, I = H = 512, T = 100, and B = 1, I = H = 256, T = 200 for
latency. For each shape and dtype it times cuDNN ``torch.nn.LSTM``, ``lstmkit.LSTM`` on the Triton
kernel for each spec (and the reference loop, for the ">= 10x faster" target), forward (no grad) and a
training step (forward in train mode, ``output.float().sum()``, backward). Timing: CUDA events around
each call, after warm-up, contenders interleaved in a rotating order; medians of ``--reps``.
Prints a markdown table of medians and ratios to cuDNN measured in the same run; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

SHAPES = ((64, 512, 100), (1, 256, 200))  # (B, I = H, T)
SMOKE_SHAPES = ((2, 8, 3),)


@dataclass(frozen=True)
class Contender:
    """One row of the table."""

    name: str  # row label
    spec: str | None  # lstmkit spec preset; None for torch.nn.LSTM
    kernel: str = "triton"  # lstmkit kernel forced with lstmkit.kernels.use
    options: tuple[tuple[str, Any], ...] = ()  # extra lstmkit.LSTM keyword arguments
    record: bool = False  # return_gates=True
    target: float | None = None  # training ratio to cuDNN the issue asks for


CONTENDERS = (
    Contender("plain", "vanilla", target=1.3),
    Contender("gate recording", "vanilla", record=True, target=1.3),
    Contender("peephole", "peephole", target=1.3),
    Contender("cifg", "cifg", target=1.3),
    Contender("nig", "nig", target=1.3),
    Contender("nfg", "nfg", target=1.3),
    Contender("nog", "nog", target=1.3),
    Contender("layernorm", "layernorm", target=1.5),
    Contender("zoneout 0.1", "vanilla", options=(("zoneout", 0.1),), target=1.5),
    Contender("recurrent dropout 0.25", "vanilla", options=(("recurrent_dropout", 0.25),), target=1.5),
)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], None], device: torch.device) -> float:
    """Seconds of one call: CUDA events on a GPU, perf_counter (after a sync) elsewhere."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def make_step(contender: Contender, B: int, H: int, T: int, dtype: torch.dtype, device: torch.device, train: bool):
    """A zero-argument callable running one forward (or training step) of ``contender``."""
    import lstmkit
    from lstmkit import kernels

    torch.manual_seed(0)
    x = torch.randn(T, B, H, device=device, dtype=dtype)
    if contender.spec is None:
        model: torch.nn.Module = torch.nn.LSTM(H, H).to(device, dtype)
    else:
        model = lstmkit.LSTM(H, H, spec=contender.spec, **dict(contender.options)).to(device, dtype)
    model.train(train)

    def run() -> torch.Tensor:
        if contender.spec is None:
            return model(x)[0]
        with kernels.use(contender.kernel):
            out = model(x, return_gates=True) if contender.record else model(x)
        return out[0]

    def step() -> None:
        if train:
            run().float().sum().backward()
        else:
            with torch.no_grad():
                run()

    return step


def measure(steps: dict[str, Callable[[], None]], reps: int, warmup: int, device: torch.device) -> dict[str, float]:
    """Median seconds of each step, contenders interleaved in an order rotated by one per repetition."""
    names = list(steps)
    for _ in range(warmup):
        for name in names:
            steps[name]()
    _sync(device)
    times: dict[str, list[float]] = {n: [] for n in names}
    for rep in range(reps):
        k = rep % len(names)
        for name in names[k:] + names[:k]:
            times[name].append(time_call(steps[name], device))
    return {n: statistics.median(v) for n, v in times.items()}


def bench_shape(B: int, H: int, T: int, dtype: torch.dtype, device: torch.device, args: argparse.Namespace) -> list:
    """Rows (contender, kernel, fwd s, train s) for one shape and dtype; cuDNN first."""
    base = "torch.nn.LSTM (cuDNN)" if device.type == "cuda" else "torch.nn.LSTM (CPU)"
    rows = [Contender(base, None), *CONTENDERS]
    if args.reference:
        rows += [Contender(f"{c.name}, reference loop", c.spec, "reference", c.options, c.record) for c in CONTENDERS]
    result = {}
    for train in (False, True):
        steps = {r.name: make_step(r, B, H, T, dtype, device, train) for r in rows}
        ref_reps = max(2, args.reps // 4)  # the reference loop is slow: fewer repetitions of it
        fast = {k: v for k, v in steps.items() if "reference loop" not in k}
        slow = {k: v for k, v in steps.items() if "reference loop" in k}
        medians = measure(fast, args.reps, args.warmup, device)
        if slow:
            medians.update(measure(slow, ref_reps, 1, device))
        result["train" if train else "forward"] = medians
    return [(r, result["forward"][r.name], result["train"][r.name]) for r in rows]


def table(rows: list, header: str) -> str:
    """Markdown: medians in ms, ratios to cuDNN (same run), target, speed-up over the reference loop."""
    base_f, base_t = rows[0][1], rows[0][2]
    ref_train = {r.name.removesuffix(", reference loop"): t for r, _, t in rows if r.kernel == "reference"}
    lines = [header, "", "| contender | forward ms | training ms | forward / cuDNN | training / cuDNN | target | "
             "reference loop / this (training) |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r, f, t in rows:
        target = f"<= {r.target}" if r.target else ""
        speedup = f"{ref_train[r.name] / t:.1f}x" if r.name in ref_train else ""
        lines.append(f"| {r.name} | {f * 1e3:.2f} | {t * 1e3:.2f} | {f / base_f:.2f} | {t / base_t:.2f} | "
                     f"{target} | {speedup} |")  # fmt: skip
    return "\n".join(lines)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.cuda", description=__doc__.split("\n")[0])
    p.add_argument("--reps", type=int, default=20, help="timed repetitions per contender (default 20)")
    p.add_argument("--warmup", type=int, default=3, help="untimed calls first (Triton compiles here)")
    p.add_argument("--dtype", choices=("float32", "bfloat16", "both"), default="both")
    p.add_argument("--no-reference", dest="reference", action="store_false", help="skip the reference loop rows")
    p.add_argument("--json", help="also write every median to this JSON file")
    p.add_argument("--smoke", action="store_true", help="tiny shapes, 1 repetition: checks the script runs")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.reps < 1 or args.warmup < 0:
        print(f"--reps must be >= 1 and --warmup >= 0; got {args.reps} and {args.warmup}", file=sys.stderr)
        return 2
    if torch.cuda.is_available():
        device = torch.device("cuda")
    elif args.smoke and os.environ.get("TRITON_INTERPRET") == "1":
        device = torch.device("cpu")  # Triton's interpreter: checks the script, times nothing meaningful
    else:
        print("benchmarks.cuda needs a CUDA GPU (torch.cuda.is_available() is False); "
              "only --smoke runs without one, with TRITON_INTERPRET=1", file=sys.stderr)  # fmt: skip
        return 2
    if args.smoke:
        args.reps, args.warmup = 1, 1
    dtypes = {"float32": [torch.float32], "bfloat16": [torch.bfloat16], "both": [torch.float32, torch.bfloat16]}
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (Triton interpreter, smoke run)"
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"device: {name}; torch {torch.__version__}; reps {args.reps}; {stamp}")
    out: dict[str, Any] = {"device": name, "torch": torch.__version__, "tables": []}
    for B, H, T in SMOKE_SHAPES if args.smoke else SHAPES:
        for dtype in dtypes[args.dtype]:
            rows = bench_shape(B, H, T, dtype, device, args)
            header = f"B = {B}, I = H = {H}, T = {T}, {str(dtype).removeprefix('torch.')} (medians of {args.reps})"
            print(table(rows, header) + "\n", flush=True)
            medians = [{"name": r.name, "forward_s": f, "train_s": t} for r, f, t in rows]
            out["tables"].append({"B": B, "H": H, "T": T, "dtype": str(dtype), "rows": medians})
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
