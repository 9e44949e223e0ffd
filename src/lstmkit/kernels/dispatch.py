"""Pick a kernel for a call: native for the plain cell, compiled otherwise, reference as fallback."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch
from torch import Tensor

from ..functional import LayerResult, LayerWeights, lstm_layer
from ..spec import CellSpec

KERNELS = ("auto", "native", "compiled", "triton", "reference")
_forced: list[str] = []


def requested() -> str:
    """The kernel asked for by :func:`use` or ``LSTMKIT_KERNEL`` ("auto" when neither)."""
    if _forced:
        return _forced[-1]
    value = os.environ.get("LSTMKIT_KERNEL", "auto").strip().lower() or "auto"
    if value not in KERNELS:
        raise ValueError(f"LSTMKIT_KERNEL must be one of {KERNELS}; got {value!r}")
    return value


@contextlib.contextmanager
def use(kernel: str) -> Iterator[None]:
    """Force a kernel inside a ``with`` block: ``with lstmkit.kernels.use("reference"): ...``."""
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}; got {kernel!r}")
    _forced.append(kernel)
    try:
        yield
    finally:
        _forced.pop()


def available() -> dict[str, bool]:
    """Which kernels can run in this process."""
    return {"native": True, "compiled": _compiled_available(), "triton": _gpu_available("cuda"), "reference": True}


def _gpu_available(device: str) -> bool:
    from . import gpu

    return gpu.is_available(device)


def _compiled_available() -> bool:
    try:
        from . import compiled
    except ImportError:
        return False
    return compiled.is_available()


def capturing_graph() -> bool:
    """True inside ``torch.jit.trace`` or ``torch.export``: they record tensor operations, and the
    compiled kernel is one opaque extension call, so layers run on the reference loop there."""
    return torch.jit.is_tracing() or torch.compiler.is_exporting()


def choose(spec: CellSpec, *, record: bool, per_step_regularised: bool) -> str:
    """The kernel that runs a layer: "native" for the plain spec without recording or
    per-step regularisers, else "compiled" when it can be built (and no graph is being
    captured), else "reference"."""
    want = requested()
    if want in ("reference", "triton"):
        return want
    if spec.is_plain and not record and not per_step_regularised and want in ("auto", "native"):
        return "native"
    if want in ("auto", "compiled") and not capturing_graph() and (_compiled_available() or _gpu_available("cuda")):
        return "compiled"
    return "reference"


def run_layer(
    kernel: str,
    x: Tensor,
    h0: Tensor,
    c0: Tensor,
    w: LayerWeights,
    spec: CellSpec,
    **options: object,
) -> LayerResult:
    """Run one layer-direction on the chosen step kernel ("compiled" or "reference");
    arguments as :func:`lstmkit.functional.lstm_layer`."""
    if kernel == "triton" or (kernel == "compiled" and x.device.type == "cuda" and _gpu_available("cuda")):
        from . import gpu  # Triton: CUDA tensors, or CPU tensors under TRITON_INTERPRET=1 when asked by name

        return gpu.lstm_layer(x, h0, c0, w, spec, **options)
    if kernel == "compiled":
        from . import compiled

        return compiled.lstm_layer(x, h0, c0, w, spec, **options)  # type: ignore[arg-type]
    return lstm_layer(x, h0, c0, w, spec, **options)  # type: ignore[arg-type]
