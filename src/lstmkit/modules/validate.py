"""Checks at the public boundary. Each error names what was expected and what came.

Every error is an instance of the class ``torch.nn.LSTM`` / ``nn.LSTMCell`` raise for the same
input, so code that catches torch's class keeps working: :class:`ShapeError` is a ValueError
(lstmkit's class for a bad argument) and a RuntimeError (torch's for a tensor of the wrong
shape); :class:`ArgumentTypeError` is a TypeError (lstmkit's) and both a ValueError and a
RuntimeError (torch raises one or the other for a wrong dtype, depending on the tensor).

Where ``torch.nn.LSTM`` / ``nn.LSTMCell`` have a message for the same fault, the message starts
with torch's words (so a test or an ``except`` matching torch's text matches lstmkit's) and adds
lstmkit's detail after them: the shape or value expected and the one that came.
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


def flag(name: str, value: object, *, ints: bool = True) -> bool:
    """A bool flag; the ints 0 and 1 are accepted as False and True when ``ints`` (``nn.LSTM``
    refuses them for ``bias`` and ``batch_first``: pass ``ints=False`` there)."""
    if isinstance(value, bool):
        return value
    if ints and isinstance(value, numbers.Integral) and int(value) in (0, 1):
        return bool(value)
    accepted = "True, False, 0 or 1" if ints else "True or False"
    raise TypeError(f"{name} should be of type bool, got: {type(value).__name__} {value!r} (expected {accepted})")


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
        raise TypeError(f"{name} should be of type int, got: {type(value).__name__} {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be greater than zero; got {value}")
    return int(value)


def probability(name: str, value: object, *, closed: bool = True) -> float:
    """A float in [0, 1] (or [0, 1) when ``closed`` is False)."""
    interval = "[0, 1]" if closed else "[0, 1)"
    # torch's words for dropout; zoneout's probability is that of keeping the previous value
    meaning = "keeping the previous value" if name.startswith("zoneout") else "an element being zeroed"
    rule = f"{name} should be a number in range {interval} representing the probability of {meaning}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ArgumentTypeError(f"{rule}; got {type(value).__name__} {value!r}")
    value = float(value)
    upper_ok = value <= 1 if closed else value < 1
    if not (value >= 0 and upper_ok):
        raise ValueError(f"{rule}; got {value}")
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


def floating_tensor(name: str, value: object, weight: Tensor | None = None) -> Tensor:
    """A floating tensor; given the module's ``weight``, a wrong dtype starts with torch's
    ``nn.LSTM`` words for an input whose dtype is not the weights'."""
    if not isinstance(value, Tensor):
        raise ArgumentTypeError(f"{name} must be a torch.Tensor; got {type(value).__name__}")
    if not value.is_floating_point():
        torch_words = (
            "" if weight is None else f"RNN input dtype ({value.dtype}) does not match weight dtype ({weight.dtype}): "
        )
        raise ArgumentTypeError(f"{torch_words}{name} must be a floating-point tensor; got dtype {value.dtype}")
    return value


def matches_parameters(name: str, value: Tensor, param: Tensor) -> None:
    """Input and state must share the parameters' dtype and device (checked on the input first, so
    a state on another device is one on another device than the input, as torch words it)."""
    if value.dtype != param.dtype:
        if name == "input":
            raise ArgumentTypeError(
                f"RNN input dtype ({value.dtype}) does not match weight dtype ({param.dtype}). "
                f"Convert input: input.to({param.dtype}), or convert model: model.to({value.dtype})"
            )
        raise ArgumentTypeError(
            f"{name} dtype ({value.dtype}) does not match weight dtype ({param.dtype}); convert it with "
            f".to({param.dtype}) or the model with model.to({value.dtype})"
        )
    if value.device != param.device:
        if name == "input":
            raise ShapeError(
                "Input and parameter tensors are not at the same device, found input tensor at "
                f"{value.device} and parameter tensor at {param.device}"
            )
        raise ShapeError(
            "Input and hidden tensors are not at the same device, found input tensor at "
            f"{param.device} and hidden tensor at {value.device} ({name})"
        )


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


def state_dims(state: tuple[Tensor, ...], batched: bool) -> None:
    """Every tensor of an LSTM's state has 3 dimensions for a batched input, 2 for an unbatched one."""
    want = 3 if batched else 2
    if any(t.dim() != want for t in state):
        dims = ", ".join(f"{t.dim()}-D" for t in state)
        kind = "batched 3-D" if batched else "unbatched 2-D"
        names = "hx and cx" if len(state) == 2 else "hx, cx and gx"
        layout = "(num_layers * num_directions, batch, size)" if batched else "(num_layers * num_directions, size)"
        raise ShapeError(
            f"For {kind} input, {names} should also be {want}-D but got ({dims}) tensors; "
            f"each must be {layout}, got shapes {[tuple(t.shape) for t in state]}"
        )


def hidden_size(index: int, name: str, value: Tensor, expected: tuple[int, ...], note: str) -> None:
    """An LSTM state tensor of the wrong shape: torch's message on the batched view (an unbatched
    state (L*D, S) is (L*D, 1, S) there), then the name, the shape expected and the one that came."""
    got = tuple(value.shape)
    if got == expected:
        return
    batched_view = expected if len(expected) == 3 else (expected[0], 1, *expected[1:])
    got_view = list(got) if len(got) == 3 else [got[0], 1, *got[1:]]
    raise ShapeError(
        f"Expected hidden[{index}] size {batched_view}, got {got_view}: "
        f"{name} must have shape {expected} ({note}); got {got}"
    )


def cell_input(x: Tensor, input_size: int) -> None:
    """An ``LSTMCell`` input: (B, I) or (I,)."""
    shapes = f"(B, {input_size}) or ({input_size},)"
    if x.dim() not in (1, 2):
        raise ShapeError(
            f"LSTMCell: Expected input to be 1D or 2D, got {x.dim()}D instead: input must be {shapes}; "
            f"got shape {tuple(x.shape)}"
        )
    if x.shape[-1] != input_size:
        raise ShapeError(
            f"input has inconsistent input_size: got {x.shape[-1]} expected {input_size}: LSTMCell input "
            f"must be {shapes}; got shape {tuple(x.shape)}"
        )


def cell_state(state: tuple[Tensor, ...], batch: int, hidden: int, batched: bool) -> None:
    """An ``LSTMCell`` state's h and c: each (B, H), or (H,) for an unbatched input; torch's messages
    (which speak of the batched view, hidden0 for h and hidden1 for c) before lstmkit's detail."""
    for index, t in enumerate(state):
        if t.dim() not in (1, 2):
            raise ShapeError(
                f"LSTMCell: Expected hx[{index}] to be 1D or 2D, got {t.dim()}D instead: "
                f"{('h_0', 'c_0')[index]} must have shape {(batch, hidden) if batched else (hidden,)}; "
                f"got {tuple(t.shape)}"
            )
    note = "batch of the input, hidden_size" if batched else "unbatched input"
    want = (batch, hidden) if batched else (hidden,)
    for index, (name, t) in enumerate(zip(("h_0", "c_0"), state, strict=False)):
        got = tuple(t.shape)
        if got == want:
            continue
        detail = f"{name} must have shape {want} ({note}); got {got}"
        view = got if batched else (1, *got)  # what torch's lstm_cell sees
        if view[0] != batch:
            raise ShapeError(f"Input batch size {batch} doesn't match hidden{index} batch size {view[0]}: {detail}")
        if len(view) == 2:
            raise ShapeError(f"hidden{index} has inconsistent hidden_size: got {view[1]}, expected {hidden}: {detail}")
        raise ShapeError(detail)


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
