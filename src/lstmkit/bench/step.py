"""Per-step latency: what a deployed stream pays per frame (T = 1, B = 1, no autograd).

For each spec, three ways to advance a stream by one frame, timed against ``torch.nn.LSTM``'s own
step (``lstm(x, state)`` with T = 1) in the same interleaved run:

- ``call``: ``model(x, state)`` with the state carried by hand, as code written for nn.LSTM does;
- ``stream``: :class:`lstmkit.Stream` fed one frame per call (state checked once, not per frame);
- ``chunk``: the stream fed ``CHUNK`` frames per call, against nn.LSTM fed the same chunks.

Example::

    >>> rows = time_steps(hidden=8, input_size=4, specs=("vanilla",), reps=1, calls=2)
    >>> sorted(rows["vanilla"])  # seconds per frame and ratios to nn.LSTM's
    ['call_ratio', 'call_s', 'chunk_ratio', 'chunk_s', 'stream_ratio', 'stream_s']
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..modules import LSTM, Stream
from .timing import interleaved_medians

STEP_SPECS = (
    "vanilla",
    "peephole",
    "cifg",
    "nig",
    "nfg",
    "nog",
    "niaf",
    "noaf",
    "fgr",
    "layernorm",
    "return_gates",
)
"""Specs of the step table; "return_gates" is the plain spec recording its gates."""
CHUNK = 8
"""Frames per call of the ``chunk`` row."""
STEP_GOAL = 1.2
"""Largest ratio to nn.LSTM's step a spec's step may cost at B = 1."""


def _repeat(step: Callable[[], None], calls: int, frames: int = 1) -> Callable[[], None]:
    """``calls`` steps in a row, so that one timing sample is long enough to measure; the medians are
    divided by ``calls * frames`` afterwards."""

    def run() -> None:
        for _ in range(calls):
            step()

    run.frames = calls * frames  # type: ignore[attr-defined]
    return run


def _carried(model: torch.nn.Module, x: Tensor) -> Callable[[], None]:
    """``model(x, state)`` with the state carried by hand."""
    state: list[Any] = [model(x)[1]]

    def step() -> None:
        state[0] = model(x, state[0])[1]

    return step


def _streamed(model: LSTM, frames: Tensor, record: bool) -> Callable[[], None]:
    stream = Stream(model, batch_size=frames.shape[1] if frames.dim() == 3 else frames.shape[0])

    def step() -> None:
        stream(frames, return_gates=record)

    return step


def time_steps(
    hidden: int,
    input_size: int = 64,
    specs: tuple[str, ...] = STEP_SPECS,
    reps: int = 15,
    calls: int = 200,
) -> dict[str, dict[str, float]]:
    """Seconds per frame of ``call``, ``stream`` and ``chunk`` for each spec, and their ratios to
    nn.LSTM's step, B = 1, float32, one layer, ``torch.no_grad``."""
    torch.manual_seed(0)
    x = torch.randn(1, 1, input_size)  # (T, B, I)
    chunk = torch.randn(CHUNK, 1, input_size)
    steps: dict[str, Callable[[], None]] = {}
    with torch.no_grad():
        reference = torch.nn.LSTM(input_size, hidden).eval()
        steps["nn.LSTM"] = _repeat(_carried(reference, x), calls)
        steps["nn.LSTM chunk"] = _repeat(_carried(reference, chunk), max(1, calls // CHUNK), CHUNK)
        for name in specs:
            record = name == "return_gates"
            model = LSTM(input_size, hidden, spec=None if record else name).eval()
            if record:
                state: list[Any] = [model(x)[1]]

                def call(model: LSTM = model, state: list[Any] = state) -> None:
                    state[0] = model(x, state[0], return_gates=True)[1]

                steps[f"{name} call"] = _repeat(call, calls)
            else:
                steps[f"{name} call"] = _repeat(_carried(model, x), calls)
            steps[f"{name} stream"] = _repeat(_streamed(model, x[0], record), calls)
            steps[f"{name} chunk"] = _repeat(_streamed(model, chunk, record), max(1, calls // CHUNK), CHUNK)
        medians = interleaved_medians(steps, reps)
    per_frame = {k: medians[k] / steps[k].frames for k in steps}  # type: ignore[attr-defined]
    base = {"call": per_frame["nn.LSTM"], "stream": per_frame["nn.LSTM"], "chunk": per_frame["nn.LSTM chunk"]}
    rows: dict[str, dict[str, float]] = {"nn.LSTM": {"call_s": base["call"], "chunk_s": base["chunk"]}}
    for name in specs:
        row: dict[str, float] = {}
        for way in ("call", "stream", "chunk"):
            row[f"{way}_s"] = per_frame[f"{name} {way}"]
            row[f"{way}_ratio"] = per_frame[f"{name} {way}"] / base[way]
        rows[name] = dict(sorted(row.items()))
    return rows


def markdown(step_runs: list[dict[str, Any]]) -> list[str]:
    """The step tables of a run's ``step`` entries (one per hidden size)."""
    lines: list[str] = []
    for entry in step_runs:
        rows = entry["rows"]
        base = rows["nn.LSTM"]["call_s"]
        lines += [
            "",
            f"Per-step latency, B = 1, I = {entry['I']}, H = {entry['H']}, no grad: ratio to nn.LSTM's T = 1 step "
            f"({base * 1e6:.1f} us) of a call with the state carried by hand and of a Stream frame, and of a Stream "
            f"chunk of {CHUNK} frames to nn.LSTM's call on the same chunk ({rows['nn.LSTM']['chunk_s'] * 1e6:.1f} us "
            "per frame):",
            "",
            "| spec | call | stream | chunk |",
            "|---|---|---|---|",
        ]
        for name, row in rows.items():
            if name != "nn.LSTM":
                cells = " | ".join(f"{row[f'{way}_ratio']:.2f}" for way in ("call", "stream", "chunk"))
                lines.append(f"| {name} | {cells} |")
    return lines
