"""Pick a kernel for a call: native for the plain cell, compiled otherwise, reference as fallback.

Only "auto" falls back; a kernel asked for by name runs or raises."""

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


class KernelUnavailable(RuntimeError):
    """A kernel asked for by name (:func:`use`, ``LSTMKIT_KERNEL``) cannot run this call."""


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


def _compiled_error() -> str:
    from . import compiled

    return str(compiled._state.get("error") or "unknown reason")


def choose(spec: CellSpec, *, record: bool, per_step_regularised: bool) -> str:
    """The kernel that runs a layer.

    "auto" (the default): "native" for the plain spec without recording or per-step
    regularisers, else "compiled" when it can be built, else "reference". While
    ``torch.compile`` or ``torch.export`` captures a graph, "compiled" (one custom-op node per
    layer-direction, T symbolic) is preferred for every spec; inside ``torch.jit.trace`` the
    reference loop (plain tensor operations, a trace that serialises on its own) or native.
    A kernel asked for by name runs or raises :class:`KernelUnavailable` with the reason.
    """
    want = requested()
    plain = spec.is_plain and not record and not per_step_regularised
    if want in ("reference", "triton"):
        return want
    if want == "native":
        if not plain:
            why = [
                *([f"spec {spec}"] if not spec.is_plain else []),
                *(["recorded gates"] if record else []),
                *(["per-step regularisers (recurrent_dropout or zoneout)"] if per_step_regularised else []),
            ]
            raise KernelUnavailable(
                "kernel 'native' (torch's fused LSTM) runs only the plain cell without recorded gates or "
                f"per-step regularisers; this call has {', '.join(why)}: use 'auto', 'compiled' or 'reference'"
            )
        return "native"
    if want == "compiled":
        if not _compiled_available():
            raise KernelUnavailable(f"kernel 'compiled' was asked for but could not be built: {_compiled_error()}")
        return "compiled"
    if torch.jit.is_tracing():
        return "native" if plain else "reference"
    if plain and not torch.compiler.is_compiling():
        return "native"
    if _compiled_available() or _gpu_available("cuda"):
        return "compiled"  # run_layer sends CUDA tensors to the Triton kernel
    return "native" if plain else "reference"


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
    arguments as :func:`lstmkit.functional.lstm_layer`. "compiled" falls back to the reference
    loop for tensors the C++ kernel does not take (another device, a dtype other than float32 and
    float64) only under "auto"; asked for by name, it raises :class:`KernelUnavailable`."""
    if kernel == "triton" or (kernel == "compiled" and x.device.type == "cuda" and _gpu_available("cuda")):
        from . import gpu  # Triton: CUDA tensors, or CPU tensors under TRITON_INTERPRET=1 when asked by name

        return gpu.lstm_layer(x, h0, c0, w, spec, **options)
    if kernel == "compiled":
        from . import compiled

        reason = compiled.unsupported_reason(x, h0, c0, w) if _compiled_available() else _compiled_error()
        if reason is None:
            return compiled.lstm_layer(x, h0, c0, w, spec, **options)  # type: ignore[arg-type]
        if requested() == "compiled":
            raise KernelUnavailable(f"kernel 'compiled' cannot run this call: {reason}")
    return lstm_layer(x, h0, c0, w, spec, **options)  # type: ignore[arg-type]
