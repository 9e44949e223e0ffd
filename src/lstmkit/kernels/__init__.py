"""Fast paths with the contract of :mod:`lstmkit.functional`, and the choice between them.

Four kernels:

- ``native``: PyTorch's own fused LSTM (``torch._VF.lstm``; oneDNN on CPU, cuDNN on CUDA) for
  the default spec when no gates are recorded and no per-step regulariser is on;
- ``compiled``: lstmkit's C++ kernel for every other spec (when it can be built);
- ``triton``: lstmkit's Triton kernels (:mod:`lstmkit.kernels.gpu`) for every other spec on CUDA tensors
  (chosen for CUDA tensors where ``compiled`` is; on CPU tensors only when asked for by name, under
  ``TRITON_INTERPRET=1``);
- ``reference``: the step-by-step loop of :func:`lstmkit.functional.lstm_layer`, the fallback
  and the oracle the others are tested against.

The environment variable ``LSTMKIT_KERNEL`` (or :func:`use`) asks for one kernel by name; a
kernel asked for by name that cannot run a call raises :class:`KernelUnavailable` (only "auto",
the default, falls back).
"""

from .compiled import ops as ops  # registers the torch.library ops lstmkit::recurrence{,_backward} (no build)
from .dispatch import KernelUnavailable, available, choose, run_layer, use

__all__ = ["KernelUnavailable", "available", "choose", "run_layer", "use"]
