"""Compiled CPU kernels for the recurrent families of :mod:`lstmkit.families` (sLSTM today).

The extension (``csrc/slstm.cpp``) is built once per environment on first use with the same
machinery as the LSTM kernel (:mod:`lstmkit.kernels.compiled.build`: a folder per digest of
sources, flags, Python and torch; imported directly afterwards) and is a separate shared library,
so a change to one kernel never rebuilds the other. If it cannot be built, :func:`is_available`
warns once with the reason and the modules run the reference loop.

Which kernel runs a layer (:func:`choose`): the module's ``kernel=`` argument, else
:func:`lstmkit.kernels.use` / ``LSTMKIT_KERNEL``; "auto" takes the compiled kernel when it can
run the call and the reference otherwise; a kernel named explicitly runs or raises
:class:`~lstmkit.kernels.KernelUnavailable`.

Example::

    >>> from lstmkit.kernels import families
    >>> families.is_available()
    True
"""

from __future__ import annotations

import threading
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..compiled.build import ExtensionBuild, load
from ..dispatch import KernelUnavailable, requested

CSRC = Path(__file__).resolve().parent / "csrc"
FAMILY_KERNELS = ("auto", "compiled", "reference")
"""What a family module's ``kernel=`` accepts."""

EXTENSION = ExtensionBuild(
    name="lstmkit_families",
    sources=(CSRC / "slstm.cpp",),
    headers=tuple(sorted(CSRC.glob("*.h"))),
    cflags=("-O3", "-fno-math-errno", "-fno-trapping-math"),
    include_dirs=(CSRC,),
    what="the C++ sLSTM kernel",
)
"""The families' C++ extension (``csrc/slstm.cpp``)."""

_lock = threading.Lock()
_state: dict[str, Any] = {"ext": None, "error": None}


@torch.compiler.assume_constant_result  # while a graph is captured: run once, eagerly, as a constant
def is_available() -> bool:
    """True when the extension is built (or builds now); on failure warns once and returns False."""
    if _state["ext"] is not None:
        return True
    if _state["error"] is not None:
        return False
    with _lock:
        if _state["ext"] is None and _state["error"] is None:
            try:
                _state["ext"] = load(EXTENSION)
            except Exception as exc:  # compiler, ninja, headers, loader
                _state["error"] = " ".join(str(exc).split())[:500] or type(exc).__name__
                warnings.warn(
                    f"lstmkit: the compiled sLSTM kernel could not be built ({_state['error']}); "
                    "falling back to the reference loop",
                    RuntimeWarning,
                    stacklevel=2,
                )
    return _state["ext"] is not None


def extension() -> Any:
    """The built extension module; raises RuntimeError when it cannot be built."""
    if not is_available():
        raise RuntimeError(f"lstmkit's compiled sLSTM kernel is not available: {_state['error']}")
    return _state["ext"]


def check_kernel(kernel: object) -> str:
    """A module's ``kernel=`` argument: one of :data:`FAMILY_KERNELS`."""
    if kernel not in FAMILY_KERNELS:
        raise ValueError(f"kernel must be one of {FAMILY_KERNELS}; got {kernel!r}")
    return str(kernel)


def unsupported_reason(*tensors: Tensor | None) -> str | None:
    """Why the compiled kernel cannot take these tensors (None when it can)."""
    present = [t for t in tensors if t is not None]
    if any(t.device.type != "cpu" for t in present):
        return f"tensors on {sorted({t.device.type for t in present})}; the kernel runs on CPU"
    floats = {t.dtype for t in present if t.is_floating_point()}
    if len(floats) != 1 or not floats <= {torch.float32, torch.float64}:
        return f"dtypes {sorted(map(str, floats))}; the kernel takes one of float32, float64"
    return None


def choose(kernel: str, family: str, *, record: bool, tensors: tuple[Tensor | None, ...]) -> str:
    """ "compiled" or "reference" for one layer call of ``family`` ("slstm").

    ``kernel`` is the module's choice; "auto" defers to :func:`lstmkit.kernels.use` / ``LSTMKIT_KERNEL``.
    Under "auto" the reference runs when gates are recorded (the kernel keeps no per-step gates), inside
    ``torch.jit.trace`` (the loop traces into plain ops), and for tensors the kernel does not take.
    """
    want = kernel if kernel != "auto" else requested()
    if want == "reference":
        return "reference"
    if want not in ("auto", "compiled"):
        raise KernelUnavailable(
            f"kernel {want!r} has no {family} implementation; use 'auto', 'compiled' or 'reference'"
        )
    if want == "auto" and (record or torch.jit.is_tracing()):
        return "reference"
    reason = "recorded gates (return_gates=True) need the reference" if record else unsupported_reason(*tensors)
    if reason is None and not is_available():
        reason = f"it could not be built: {_state['error']}"
    if reason is None:
        return "compiled"
    if want == "compiled":
        raise KernelUnavailable(f"kernel 'compiled' cannot run this {family} call: {reason}")
    return "reference"
