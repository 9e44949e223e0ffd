"""Checks at the public boundary. Each error names what was expected and what came.

Every error is an instance of the class ``torch.nn.LSTM`` / ``nn.LSTMCell`` raise for the same
input, so code that catches torch's class keeps working: :class:`ShapeError` is a ValueError
(lstmkit's class for a bad argument) and a RuntimeError (torch's for a tensor of the wrong
shape); :class:`ArgumentTypeError` is a TypeError (lstmkit's) and both a ValueError and a
RuntimeError (torch raises one or the other for a wrong dtype, depending on the tensor).
"""

from __future__ import annotations

import numbers

import torch
from torch import Tensor

from ..spec import CellSpec


class ShapeError(ValueError, RuntimeError):
    """A tensor of the wrong shape or on the wrong device (torch raises RuntimeError there)."""


class ArgumentTypeError(TypeError, ValueError, RuntimeError):
    """A value of the wrong type or dtype (torch raises ValueError or RuntimeError there)."""


def flag(name: str, value: object) -> bool:
    """A bool flag; the ints 0 and 1 are accepted as False and True, as Python treats them."""
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral) and int(value) in (0, 1):
        return bool(value)
    raise TypeError(f"{name} must be a bool (or 0 / 1); got {type(value).__name__} {value!r}")


def forget_bias(value: object, spec: CellSpec, bias: bool) -> float:
    """``forget_bias`` needs forget-gate bias rows: ``bias=True`` and a spec that computes f_t."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"forget_bias must be a float; got {type(value).__name__} {value!r}")
    if value and not bias:
        raise ValueError(f"forget_bias={value} needs bias=True")
    if value and "forget" not in spec.gates:
        why = "f_t = 1 - i_t (coupled)" if spec.coupled else "f_t = 1 (no forget gate)"
        raise ValueError(f"forget_bias={value} needs a forget gate with its own bias rows; this spec has {why}")
    return float(value)


def positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int; got {type(value).__name__} {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be a positive int; got {value}")
    return int(value)


def probability(name: str, value: object, *, closed: bool = True) -> float:
    """A float in [0, 1] (or [0, 1) when ``closed`` is False)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ArgumentTypeError(f"{name} must be a float; got {type(value).__name__} {value!r}")
    value = float(value)
    upper_ok = value <= 1 if closed else value < 1
    if not (value >= 0 and upper_ok):
        interval = "[0, 1]" if closed else "[0, 1)"
        raise ValueError(f"{name} must be in {interval}; got {value}")
    return value


def zoneout_pair(value: object) -> tuple[float, float]:
    """``zoneout=`` accepts a float (both states) or a pair (z_cell, z_hidden)."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        z = probability("zoneout", value, closed=False)
        return (z, z)
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return (
            probability("zoneout[0] (cell)", value[0], closed=False),
            probability("zoneout[1] (hidden)", value[1], closed=False),
        )
    raise TypeError(f"zoneout must be a float or a pair (z_cell, z_hidden); got {value!r}")


def floating_tensor(name: str, value: object) -> Tensor:
    if not isinstance(value, Tensor):
        raise ArgumentTypeError(f"{name} must be a torch.Tensor; got {type(value).__name__}")
    if not value.is_floating_point():
        raise ArgumentTypeError(f"{name} must be a floating-point tensor; got dtype {value.dtype}")
    return value


def matches_parameters(name: str, value: Tensor, param: Tensor) -> None:
    """Input and state must share the parameters' dtype and device."""
    if value.dtype != param.dtype:
        raise ArgumentTypeError(
            f"{name} has dtype {value.dtype} but the parameters have dtype {param.dtype}; "
            f"convert one of them (e.g. model.to({value.dtype}))"
        )
    if value.device != param.device:
        raise ShapeError(f"{name} is on device {value.device} but the parameters are on {param.device}")


def state_pair(hx: object, what: str) -> tuple[Tensor, Tensor]:
    """``hx`` must be a pair (h, c) of tensors."""
    if not isinstance(hx, (tuple, list)) or len(hx) != 2:
        got = f"{type(hx).__name__} of length {len(hx)}" if isinstance(hx, (tuple, list)) else type(hx).__name__
        raise ArgumentTypeError(f"hx must be a tuple (h_0, c_0) for {what}; got {got}")
    h, c = hx
    return floating_tensor("h_0", h), floating_tensor("c_0", c)


def expect_shape(name: str, value: Tensor, expected: tuple[int, ...], note: str = "") -> None:
    if tuple(value.shape) != expected:
        extra = f" ({note})" if note else ""
        raise ShapeError(f"{name} must have shape {expected}{extra}; got {tuple(value.shape)}")


def is_float_dtype(dtype: torch.dtype | None) -> None:
    if dtype is not None and not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point dtype; got {dtype}")


def state_names(spec: CellSpec) -> tuple[str, ...]:
    """Names of the tensors a layer's state holds for ``spec``: (h_0, c_0), plus g_0 (the previous
    step's sigmoid gates) under ``full_gate_recurrence``."""
    return ("h_0", "c_0", "g_0") if spec.full_gate_recurrence else ("h_0", "c_0")


def state_tuple(hx: object, what: str, spec: CellSpec) -> tuple[Tensor, ...]:
    """``hx`` must be a tuple of floating tensors named by :func:`state_names` (a state of another
    spec, e.g. (h, c) for an FGR layer, is refused with what it lacks)."""
    names = state_names(spec)
    if not isinstance(hx, (tuple, list)) or len(hx) != len(names):
        got = f"{type(hx).__name__} of length {len(hx)}" if isinstance(hx, (tuple, list)) else type(hx).__name__
        if len(names) == 3:
            why = " (its spec has full_gate_recurrence: the previous step's gates are carried as g_0)"
        else:
            why = " (only a spec with full_gate_recurrence carries a third tensor, g_0)"
        raise ArgumentTypeError(f"hx must be a tuple ({', '.join(names)}) for {what}{why}; got {got}")
    return tuple(floating_tensor(name, t) for name, t in zip(names, hx, strict=True))


def packed_batch_sizes(batch_sizes: Tensor, rows: int) -> None:
    """A ``PackedSequence``'s ``batch_sizes`` (T,) must be positive, non-increasing (sequences sorted
    longest first) and sum to the rows of its ``data`` (torch's own LSTM fails later with an unrelated
    broadcast or view error); RuntimeError, as torch raises, naming what is wrong."""
    sizes = [int(n) for n in batch_sizes.tolist()]
    if any(n <= 0 for n in sizes):
        raise RuntimeError(f"PackedSequence batch_sizes must all be positive; got {sizes}")
    rises = [t for t in range(1, len(sizes)) if sizes[t] > sizes[t - 1]]
    if rises:
        t = rises[0]
        raise RuntimeError(
            "PackedSequence batch_sizes must not increase (sequences sorted longest first, as "
            f"pack_padded_sequence makes them); got {sizes}, rising from {sizes[t - 1]} to {sizes[t]} at step {t}"
        )
    if sum(sizes) != rows:
        raise RuntimeError(
            f"PackedSequence batch_sizes must sum to the number of rows of data ({rows}); "
            f"got {sizes}, summing to {sum(sizes)}"
        )
