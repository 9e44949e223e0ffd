"""lstmkit's GPU backend: every spec on CUDA, with a Triton kernel for each step's pointwise maths.

Same contract as :func:`lstmkit.functional.lstm_layer` (arguments, semantics, :class:`LayerResult`)
for every :class:`~lstmkit.CellSpec`, projection, lengths, reverse, recording, zoneout and recurrent
dropout, differentiable w.r.t. ``x``, ``h0``, ``c0`` and every tensor of :class:`~lstmkit.LayerWeights`.
The split:

- input projection of all T steps in one GEMM (``zx = W_ih x + b_ih + b_hh``, layer-normed first under
  ``layer_norm``), in Python so autograd gives ``dW_ih`` in one GEMM;
- per step one GEMM ``h_{t-1} W_hh^T`` (cuBLAS) and one Triton launch for the gates, cell and output
  (``pointwise.py``); backward one Triton launch of the adjoint (``adjoint.py``) and one GEMM per step,
  and one GEMM per weight matrix over all steps (``bptt.py``).

Triton runs CUDA tensors; with ``TRITON_INTERPRET=1`` (set before Triton is imported) it runs the same
kernels on CPU tensors, which is how the tests check them without a GPU. Needs the ``gpu`` extra
(``pip install lstmkit[gpu]``: triton).
"""

from __future__ import annotations

import importlib.util
import os

import torch
from torch import Tensor

from ...functional import LayerResult, LayerWeights
from ...spec import CellSpec


def interpreting() -> bool:
    """True when Triton's interpreter is on (``TRITON_INTERPRET=1``): kernels then run on CPU tensors."""
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "on", "yes")


def is_available(device: str = "cuda") -> bool:
    """True when Triton is installed and can run tensors on ``device`` ("cuda", or "cpu" under the
    interpreter)."""
    if importlib.util.find_spec("triton") is None:
        return False
    if device == "cpu":
        return interpreting()
    return device == "cuda" and torch.cuda.is_available()


def unavailable_reason(device: str) -> str:
    """Why :func:`is_available` is False, in one line."""
    if importlib.util.find_spec("triton") is None:
        return "triton is not installed (pip install 'lstmkit[gpu]')"
    return f"Triton runs CUDA tensors (or CPU tensors with TRITON_INTERPRET=1); got {device} tensors"


def lstm_layer(x: Tensor, h0: Tensor, c0: Tensor, w: LayerWeights, spec: CellSpec, **options: object) -> LayerResult:
    """One layer-direction on the Triton kernels; see :func:`.layer.lstm_layer`. Raises RuntimeError
    when Triton cannot run tensors on ``x``'s device."""
    if not is_available(x.device.type):
        raise RuntimeError(f"lstmkit's GPU kernel cannot run: {unavailable_reason(x.device.type)}")
    from .layer import lstm_layer as run

    return run(x, h0, c0, w, spec, **options)  # type: ignore[arg-type]


__all__ = ["interpreting", "is_available", "lstm_layer"]
