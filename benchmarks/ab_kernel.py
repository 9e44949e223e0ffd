"""A/B of compiled-kernel variants in one process: ``python -m benchmarks.ab_kernel [options]``.

Builds each variant as its own extension (its own build folder: another key), then times a
training step and a forward step of ``lstmkit.LSTM(spec=...)`` on every variant and of
``torch.nn.LSTM``, all interleaved in each repetition, at each requested thread count, and prints
medians as ratios to nn.LSTM from the same repetitions. Variants:

- ``current``: the kernel of this tree, its GEMMs chosen as by default (``set_gemm("auto")``);
- ``mkl``, ``aten``: the same binary with every float32 GEMM forced onto MKL's packed sgemm or
  ``at::mm`` (``--gemm mkl --gemm aten``);
- ``grain=N``: this tree compiled with ``-DLSTMKIT_GRAIN=N`` (rows per parallel chunk = N / (G*H));
- ``rev=REV``: ``csrc/`` of a git revision (e.g. the kernel before a change).

Example::

    python -m benchmarks.ab_kernel --grain 2048 --rev HEAD~3 --threads 2,1 --reps 7
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

import lstmkit
from lstmkit.kernels import compiled
from lstmkit.kernels.compiled import build


class _OlderKernel:
    """A kernel built from an older revision, given the entry points today's Python side calls and it
    may lack: ``infer`` (its training-mode forward, keeping every step), ``mm`` (torch's) and
    ``set_gemm`` (nothing to switch). Everything it has is its own."""

    def __init__(self, ext: Any) -> None:
        self._ext = ext

    def __getattr__(self, name: str) -> Any:
        if hasattr(self._ext, name):
            return getattr(self._ext, name)
        return object.__getattribute__(self, "_missing_" + name)

    def _missing_infer(self, *args: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self._ext.forward(*args[:-1])  # without ``record``: the forward returns every step anyway
        return out[0], out[1], out[2]

    def _missing_mm(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a.mm(b)

    def _missing_set_gemm(self, name: str) -> str:
        return "auto"


def _variants(args: argparse.Namespace, tmp: Path) -> dict[str, tuple[Any, str]]:
    """name -> (extension module, GEMM library). Variants build under ``<build root>/ab`` (once each)."""
    current = build.load()
    out = {"current": (current, "auto")}
    for lib in args.gemm:
        out[lib] = (current, lib)
    for grain in args.grain:
        ext = replace(build.KERNEL, cflags=(*build.KERNEL.cflags, f"-DLSTMKIT_GRAIN={grain}"))
        out[f"grain={grain}"] = (build.load(ext, root=tmp), "auto")
    for rev in args.rev:
        folder = tmp / f"src-{rev.replace('~', '_').replace('/', '_')}"
        folder.mkdir(parents=True, exist_ok=True)
        csrc = "src/lstmkit/kernels/compiled/csrc"
        files = subprocess.run(["git", "ls-tree", "--name-only", f"{rev}:{csrc}"], capture_output=True, text=True)
        for name in files.stdout.split():
            blob = subprocess.run(["git", "show", f"{rev}:{csrc}/{name}"], capture_output=True, check=True)
            (folder / name).write_bytes(blob.stdout)
        ext = build.ExtensionBuild(
            "lstmkit_lstm_rev",
            (folder / "lstm.cpp",),
            tuple(sorted(folder.glob("*.h"))),
            build.KERNEL.cflags,
            (folder,),
            what=f"the kernel of {rev}",
        )
        out[f"rev={rev}"] = (_OlderKernel(build.load(ext, root=tmp)), "auto")
    return out


def _steps(model: torch.nn.Module, x: torch.Tensor, ext: Any = None, gemm: str = "auto") -> dict[str, Callable]:
    def use() -> None:
        if ext is not None:
            compiled._state["ext"] = ext
            ext.set_gemm(gemm)

    def train() -> None:
        use()
        model.train()
        model(x)[0].sum().backward()

    def forward() -> None:
        use()
        with torch.no_grad():
            model(x)

    return {"train": train, "forward": forward}


def measure(args: argparse.Namespace, variants: dict[str, tuple[Any, str]], B: int, H: int) -> dict[str, Any]:
    """Median seconds per (variant, step), interleaved, rotating order each repetition."""
    torch.manual_seed(0)
    x = torch.randn(args.T, B, H)
    base = torch.nn.LSTM(H, H)
    model = lstmkit.LSTM(H, H, spec=args.spec)
    runs = {"nn.LSTM": _steps(base, x)}
    for name, (ext, gemm) in variants.items():
        runs[name] = _steps(model, x, ext, gemm)
    keys = [(n, s) for n in runs for s in ("train", "forward")]
    times: dict[tuple[str, str], list[float]] = {k: [] for k in keys}
    for k in keys:  # warm-up
        runs[k[0]][k[1]]()
    for rep in range(args.reps):
        order = keys[rep % len(keys) :] + keys[: rep % len(keys)]
        for k in order:
            t0 = time.perf_counter()
            runs[k[0]][k[1]]()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.ab_kernel", description=__doc__.split("\n\n")[0])
    p.add_argument("--shapes", default="1x128,16x128,16x256,64x256,16x512", help="BxH list")
    p.add_argument("--T", type=int, default=100)
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--threads", default="2,1", help="thread counts, comma separated")
    p.add_argument("--spec", default="peephole", help="lstmkit spec preset timed")
    p.add_argument("--grain", type=int, action="append", default=[], help="add a variant with this grain")
    p.add_argument("--rev", action="append", default=[], help="add the kernel of this git revision")
    p.add_argument(
        "--gemm", action="append", default=[], choices=["avx512", "onednn", "mkl", "aten"], help="add this GEMM"
    )
    args = p.parse_args(argv)
    assert compiled.is_available(), compiled._state["error"]
    variants = _variants(args, build.build_root() / "ab")
    original = compiled._state["ext"]
    print(f"spec {args.spec}, T = {args.T}, {args.reps} interleaved reps; ratio to nn.LSTM, train / forward")
    try:
        for threads in (int(n) for n in args.threads.split(",")):
            torch.set_num_threads(threads)
            for shape in args.shapes.split(","):
                B, H = (int(v) for v in shape.split("x"))
                med = measure(args, variants, B, H)
                cells = [
                    f"{v} {med[(v, 'train')] / med[('nn.LSTM', 'train')]:.2f} / "
                    f"{med[(v, 'forward')] / med[('nn.LSTM', 'forward')]:.2f}"
                    for v in variants
                ]
                base_ms = f"{med[('nn.LSTM', 'train')] * 1e3:.1f} ms"
                print(f"threads={threads} B={B} H={H} (nn.LSTM train {base_ms}): " + " | ".join(cells), flush=True)
    finally:
        compiled._state["ext"] = original
        original.set_gemm("auto")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
