"""What stops a run early and how: Ctrl-C (SIGINT) and non-finite numbers.

* :class:`SignalGuard`: the first Ctrl-C sets a flag the loop checks between steps (it then
  saves and stops); a second one raises ``KeyboardInterrupt`` at once, except inside
  :meth:`SignalGuard.critical` (a checkpoint commit), where it waits for the commit to end.
* :func:`all_finite`: True when every tensor holds only finite numbers (the divergence check).
* :class:`TrainingDiverged`: raised when the loss, the gradient or the weights stop being
  finite; the last good checkpoint stays as it was.

Example::

    >>> with SignalGuard() as guard:        # doctest: +SKIP
    ...     with guard.critical():
    ...         save()                       # a second Ctrl-C waits for this to finish
"""

from __future__ import annotations

import math
import signal
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

ON_NAN = ("stop", "skip")
"""What a non-finite loss or gradient does: stop the run, or skip that step's update."""


class TrainingDiverged(Exception):
    """The loss, a gradient or the weights became non-finite; ``step`` is where, ``result`` the
    run as it stands (its checkpoint is the last good one)."""

    def __init__(self, message: str, result: Any) -> None:
        super().__init__(message)
        self.result = result


class SignalGuard:
    """SIGINT handling for the training loop (installed in the main thread only)."""

    def __init__(self) -> None:
        self.flag = False  # a first Ctrl-C arrived: save at the end of this step and stop
        self._old: Any = None
        self._depth = 0  # > 0 inside critical()
        self._pending = False  # a second Ctrl-C arrived inside critical()

    def __enter__(self) -> SignalGuard:
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if not self.flag:
            self.flag = True
        elif self._depth:
            self._pending = True
        else:
            raise KeyboardInterrupt

    @contextmanager
    def critical(self) -> Iterator[None]:
        """A section a second Ctrl-C does not cut (it raises when the section ends)."""
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
        if self._pending and not self._depth:
            self._pending = False
            raise KeyboardInterrupt

    def __exit__(self, *exc: object) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
            self._old = None


def all_finite(tensors: Iterable[torch.Tensor | None]) -> bool:
    """True when no tensor holds a NaN or an infinity (``None`` entries are skipped).

    Example::

        >>> all_finite([torch.ones(2), None]), all_finite([torch.tensor([1.0, float("nan")])])
        (True, False)
    """
    flags = [torch.isfinite(t.detach()).all() for t in tensors if t is not None]
    return bool(torch.stack(flags).all()) if flags else True


def finite_or_none(value: Any) -> Any:
    """``value`` with every non-finite float (also inside dicts and lists) replaced by None, so
    that ``json.dumps(..., allow_nan=False)`` writes strict JSON.

    Example::

        >>> finite_or_none({"loss": float("nan"), "mse": [1.0, float("inf")]})
        {'loss': None, 'mse': [1.0, None]}
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_none(v) for v in value]
    return value
