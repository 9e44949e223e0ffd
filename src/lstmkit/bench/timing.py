"""Interleaved, repeated timing with medians, and the matmul peak that GFLOP/s are compared with."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
from torch import Tensor


def forward_step(runner: Callable[[Tensor, bool], Tensor], x: Tensor) -> Callable[[], None]:
    """One inference forward pass (no autograd graph)."""

    def step() -> None:
        with torch.no_grad():
            runner(x, False)

    return step


def training_step(runner: Callable[[Tensor, bool], Tensor], x: Tensor) -> Callable[[], None]:
    """One training step: forward in training mode, ``loss = output.sum()``, backward."""

    def step() -> None:
        runner(x, True).sum().backward()

    return step


def interleaved_medians(steps: dict[str, Callable[[], None]], reps: int, warmup: int = 1) -> dict[str, float]:
    """Median seconds of each step; every repetition runs every step once, in a rotating order,
    so that slow drifts of a shared machine hit all contenders alike."""
    names = list(steps)
    for _ in range(warmup):
        for name in names:
            steps[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(reps):
        k = rep % len(names)
        for name in names[k:] + names[:k]:
            t0 = time.perf_counter()
            steps[name]()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(v) for name, v in times.items()}


def matmul_peak(n: int, reps: int = 5) -> float:
    """Measured GFLOP/s of a float32 (n x n) @ (n x n) ``torch.mm`` (median of ``reps``)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    out = torch.empty(n, n)
    torch.mm(a, b, out=out)
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.mm(a, b, out=out)
        samples.append(time.perf_counter() - t0)
    return 2.0 * n**3 / statistics.median(samples) / 1e9
