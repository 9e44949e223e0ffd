"""``Stream``: B independent streams through a recurrent model, frame by frame or chunk by chunk.

Deployed recurrent models see their input as it arrives: one frame (or a few) per call, with the
state carried from call to call, for a batch of streams that start and end at different moments.
A :class:`Stream` holds that state. Because the state a layer returns is everything its next call
needs (for every spec; see :class:`~lstmkit.LSTM`), feeding a sequence chunk by chunk gives what one
call on the whole sequence gives.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..functional import sigmoid_gate_state
from .cell import LSTMCell
from .lstm import LSTM

State = tuple[Tensor, ...]


def reset_streams(state: State, reset: Tensor, batch_dim: int = 1) -> State:
    """``state`` with stream b zeroed wherever the (B,) bool ``reset[b]`` is True and the other streams
    untouched, bit for bit; the batch is on ``batch_dim`` of every tensor (1 for a layer's (L*D, B, ·)
    state, 0 for a cell's (B, ·)). Zeroing replaces values (a non-finite state is reset too)."""
    out = []
    for t in state:
        shape = [1] * t.dim()
        shape[batch_dim] = reset.shape[0]
        out.append(t.masked_fill(reset.to(t.device).view(shape), 0.0))
    return tuple(out)


class Stream:
    r"""The state of ``batch_size`` independent streams through ``model``, carried from call to call.

    Each call runs the model on the next frame or chunk of every stream, starting from the state the
    previous call left, so for any cut of a sequence into chunks

    .. math::
        \mathrm{Stream}(x_{1..t_1}),\ \mathrm{Stream}(x_{t_1+1..t_2}),\ \dots \;=\; \mathrm{model}(x_{1..T})

    step for step. :meth:`reset` starts chosen streams anew (zero state) and leaves the others as
    they are. The model can be

    - an :class:`~lstmkit.LSTM` (unidirectional): a frame is (B, I), a chunk (B, K, I) with
      ``batch_first`` else (K, B, I); returns the top layer's output, (B, R) or shaped like the chunk;
    - an :class:`~lstmkit.LSTMCell`: a frame is (B, I), a chunk (K, B, I); returns h, (B, H) or (K, B, H);
    - a model with ``forward_state(inputs, state) -> (outputs, state)``, such as the trained
      :class:`lstmkit.train.SequenceModel` (embedding and head included): a frame is (B,) tokens or
      (B, I), a chunk (B, K) or (B, K, I); returns the head's output, (B, O) or (B, K, O).

    The state is a tuple of tensors with the batch on dim 1 for layers ((L, B, ·) each: (h, c), or
    (h, c, g) under ``full_gate_recurrence``) and on dim 0 for a cell ((B, ·) each). A bidirectional
    model cannot stream (its reverse direction needs the whole sequence): refused with a ValueError.

    Args:
        model: the recurrent model (see above); it is run in whatever mode it is in (call
            ``model.eval()`` for inference: dropout and zoneout act in training mode).
        batch_size: B, the number of streams.

    Example::

        >>> lstm = LSTM(3, 8, num_layers=2, batch_first=True).eval()
        >>> stream = Stream(lstm, batch_size=4)
        >>> x = torch.randn(4, 10, 3)
        >>> y = torch.cat([stream(x[:, :6]), stream(x[:, 6:])], dim=1)
        >>> torch.allclose(y, lstm(x)[0], atol=1e-6)
        True
        >>> stream.reset(torch.tensor([True, False, False, False]))   # stream 0 starts anew
        >>> stream(x[:, 0]).shape                                       # one frame per stream
        torch.Size([4, 8])
    """

    def __init__(self, model: nn.Module, batch_size: int) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int (the number of streams); got {batch_size!r}")
        if isinstance(model, LSTM):
            kind = "lstm"
            if model.bidirectional:
                raise ValueError(
                    "a bidirectional LSTM cannot stream (its reverse direction reads each sequence from its end); "
                    "expected bidirectional=False, got True"
                )
        elif isinstance(model, LSTMCell):
            kind = "cell"
        elif callable(getattr(model, "forward_state", None)):
            kind = "model"
        else:
            raise TypeError(
                "Stream takes an lstmkit.LSTM, an lstmkit.LSTMCell or a model with forward_state(inputs, state); "
                f"got {type(model).__name__}"
            )
        self.model = model
        self.batch_size = batch_size
        self._kind = kind
        self._state: State | None = None  # None: every stream at its start (zeros)
        self._trusted = False  # True while the state is the one the model returned on the last call

    # ------------------------------------------------------------------ state
    @property
    def state(self) -> State | None:
        """The carried state (None before the first call: every stream starts from zeros)."""
        return self._state

    @state.setter
    def state(self, value: Sequence[Tensor] | None) -> None:
        """Set the carried state (e.g. one saved earlier); the next call checks it against the model."""
        self._state = None if value is None else tuple(value)
        self._trusted = False  # checked by the model's boundary on the next call

    def reset(self, mask: Tensor | Sequence[bool] | None = None) -> None:
        """Start streams anew: every stream when ``mask`` is None, else those where the (B,) boolean
        ``mask`` is True (their state becomes zeros); the other streams keep their state exactly."""
        if mask is None or self._state is None:
            if mask is not None:
                self._check_mask(mask)
            self._state = None
            return
        self._state = reset_streams(self._state, self._check_mask(mask), batch_dim=0 if self._kind == "cell" else 1)

    def detach(self) -> None:
        """Cut the carried state from the autograd graph (truncated backpropagation through time:
        gradients of later calls stop here); values are unchanged."""
        if self._state is not None:
            self._state = tuple(t.detach() for t in self._state)

    def _check_mask(self, mask: Tensor | Sequence[bool]) -> Tensor:
        m = mask if isinstance(mask, Tensor) else torch.as_tensor(mask)
        if m.dtype != torch.bool or tuple(m.shape) != (self.batch_size,):
            raise ValueError(
                f"reset mask must be a bool tensor of shape ({self.batch_size},), one entry per stream; "
                f"got {m.dtype} of shape {tuple(m.shape)}"
            )
        return m

    # ------------------------------------------------------------------ calls
    def __call__(self, frames: Tensor, return_gates: bool = False) -> Any:
        """Run the next frame or chunk of every stream (shapes in the class docstring); returns the
        model's output for it, and with ``return_gates=True`` (LSTM and LSTMCell) also its gates: a
        :class:`~lstmkit.trace.GateTrace` of the chunk for an LSTM, the step's ``CellGates`` for a cell."""
        if not isinstance(frames, Tensor):
            raise TypeError(f"frames must be a torch.Tensor; got {type(frames).__name__}")
        if self._kind == "lstm":
            return self._lstm(frames, return_gates)
        if self._kind == "cell":
            return self._cell(frames, return_gates)
        if return_gates:
            raise ValueError("return_gates=True needs an lstmkit.LSTM or LSTMCell; this model gives outputs only")
        return self._model(frames)

    def _expect_batch(self, got: int, shape: tuple[int, ...], layout: str) -> None:
        if got != self.batch_size:
            raise ValueError(f"frames must be {layout} with B = {self.batch_size} streams; got shape {shape}")

    def _lstm(self, frames: Tensor, return_gates: bool) -> Any:
        lstm = self.model
        assert isinstance(lstm, LSTM)
        I, bf = lstm.input_size, lstm.batch_first
        layout = f"a frame ({self.batch_size}, {I}) or a chunk " + ("(B, K, I)" if bf else "(K, B, I)")
        if frames.dim() == 2:
            self._expect_batch(frames.shape[0], tuple(frames.shape), layout)
            x = frames.unsqueeze(1 if bf else 0)
        elif frames.dim() == 3:
            self._expect_batch(frames.shape[0 if bf else 1], tuple(frames.shape), layout)
            x = frames
        else:
            raise ValueError(f"frames must be {layout}; got shape {tuple(frames.shape)}")
        w = lstm.weight_ih_l0
        state = self._state
        if (
            self._trusted
            and state is not None
            and x.shape[-1] == I
            and x.dtype == w.dtype == state[0].dtype
            and x.device == w.device == state[0].device
        ):
            # the state is the one this module returned last call (its shapes follow from the batch
            # checked above) and frames, state and weights agree in dtype and device: the boundary's
            # checks have nothing left to find
            result = lstm._run(x, state, return_gates, batched=True, packed=None)
        else:  # first call, a state set from outside, or frames to check: the full boundary
            result = lstm(x, self._state, return_gates=return_gates)
        out, self._state = result[0], tuple(result[1])
        self._trusted = True
        if frames.dim() == 2:
            out = out.squeeze(1 if bf else 0)
        return (out, result[2]) if return_gates else out

    def _cell(self, frames: Tensor, return_gates: bool) -> Any:
        cell = self.model
        assert isinstance(cell, LSTMCell)
        layout = f"a frame ({self.batch_size}, {cell.input_size}) or a chunk (K, B, I)"
        if frames.dim() not in (2, 3):
            raise ValueError(f"frames must be {layout}; got shape {tuple(frames.shape)}")
        self._expect_batch(frames.shape[-2], tuple(frames.shape), layout)
        steps = frames.unsqueeze(0) if frames.dim() == 2 else frames
        outs, gates = [], []
        for x in steps:
            if return_gates:
                step = cell.gates(x, self._state)
                extra = (sigmoid_gate_state(step, cell.spec),) if cell.spec.full_gate_recurrence else ()
                self._state = (step.hidden, step.cell, *extra)
                gates.append(step)
            else:
                self._state = tuple(cell(x, self._state))
            outs.append(self._state[0])
        out = outs[0] if frames.dim() == 2 else torch.stack(outs)
        if return_gates:
            return out, (gates[0] if frames.dim() == 2 else gates)
        return out

    def _model(self, frames: Tensor) -> Tensor:
        frame = frames.dim() == (1 if not frames.is_floating_point() else 2)
        x = frames.unsqueeze(1) if frame else frames
        if x.dim() < 2:
            shape = tuple(frames.shape)
            raise ValueError(f"frames must be (B,) tokens, (B, I), (B, K) or (B, K, I); got shape {shape}")
        self._expect_batch(x.shape[0], tuple(frames.shape), "(B, ...) with the streams first")
        out, state = self.model.forward_state(x, self._state)  # type: ignore[operator]
        self._state = tuple(state)
        return out.squeeze(1) if frame else out
