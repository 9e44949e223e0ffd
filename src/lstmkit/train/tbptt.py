"""Stateful training: truncated backpropagation through time (TBPTT) over a task's streams.

With ``OptimConfig.tbptt = K`` every optimiser step reads the next K steps of B streams
(:class:`lstmkit.tasks.base.Streams`) and runs::

    state    = reset_streams(state, segment.reset)           streams that start anew: zeros
    y, state = model.forward_state(segment.inputs, state)     (B, K, O), the state after step K
    loss     = task.loss(y, segment); backward; update
    state    = detach_state(state)                            no gradient flows past these K steps

so the state carries from segment to segment (the model sees the whole stream) while every
gradient stops at the segment's first step. A state is a tuple of tensors with the batch on
dim 1 (``(h, c)`` for the LSTM, more for specs that carry more, ``(h,)`` for torch's GRU/RNN),
so the functions here treat every core alike.

Example::

    >>> state = (torch.ones(1, 3, 2), torch.ones(1, 3, 2))
    >>> [s[0, :, 0].tolist() for s in reset_streams(state, torch.tensor([False, True, False]))]
    [[1.0, 0.0, 1.0], [1.0, 0.0, 1.0]]
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..modules import stream
from ..tasks.base import Segment, Task

State = tuple[Tensor, ...]
"""A recurrent core's state: tensors shaped (L*D, B, ·)."""


def reset_streams(state: State | None, reset: Tensor) -> State | None:
    """``state`` with stream b zeroed wherever ``reset[b]`` is True, the other streams untouched.

    Shapes: every state tensor (L*D, B, ·); reset (B,) bool. None (no state yet) stays None.
    """
    if state is None:
        return None
    if reset.dim() != 1 or reset.dtype != torch.bool:
        raise ValueError(f"reset must be a (B,) bool tensor; got {tuple(reset.shape)} {reset.dtype}")
    for s in state:
        if s.dim() < 2 or s.shape[1] != reset.shape[0]:
            raise ValueError(f"reset mask has {reset.shape[0]} streams; the state holds {tuple(s.shape)}")
    return stream.reset_streams(state, reset)


def detach_state(state: State) -> State:
    """The same tensors cut from the graph: the next segment's gradients stop here."""
    return tuple(s.detach() for s in state)


def tbptt_loss(model: Any, task: Task, segment: Segment, state: State | None) -> tuple[Tensor, State]:
    """The loss of one segment from the carried ``state`` and the detached state after it.

    ``model`` is a :class:`~lstmkit.train.model.SequenceModel` (or anything with its
    ``forward_state``); the loss keeps its graph back to the segment's first step only.

    Example::

        >>> loss, state = tbptt_loss(model, task, streams.next(50, gen), state)   # doctest: +SKIP
        >>> loss.backward()                                                      # doctest: +SKIP
    """
    state = reset_streams(state, segment.reset)
    prediction, new_state = model.forward_state(segment.batch.inputs, state)  # (B, K, O)
    return task.loss(prediction, segment.batch), detach_state(new_state)


def expected_state(model: Any, batch_size: int) -> list[tuple[int, ...]]:
    """The shapes of the state ``model.forward_state`` returns for ``batch_size`` streams (one
    dry step in eval mode without gradients; every random generator left as it was)."""
    c = model.config
    x = (
        torch.zeros(batch_size, 1, dtype=torch.int64)
        if c.vocab_size is not None
        else torch.zeros(batch_size, 1, c.input_size)
    )
    was_training = model.training
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        model.eval()
        try:
            _, state = model.forward_state(x)
        finally:
            model.train(was_training)
    return [tuple(s.shape) for s in state]


def check_state(model: Any, state: State, batch_size: int, where: str = "the stream state") -> None:
    """ValueError (one line, expected vs got) when ``state`` is not what ``model`` carries for
    ``batch_size`` streams: another number of tensors (e.g. a state from another spec or core),
    other shapes, a dtype other than the model's, or tensors that are not finite."""
    want = expected_state(model, batch_size)
    got = [tuple(s.shape) for s in state]
    if got != want:
        raise ValueError(
            f"{where} does not fit this model: expected {len(want)} tensors shaped {want}; got {len(got)} shaped {got}"
        )
    dtype = next(model.parameters()).dtype
    bad = [str(s.dtype) for s in state if s.dtype != dtype]
    if bad:
        raise ValueError(f"{where} must be {dtype}; got {bad[0]}")


def check_streams(task: Task, tbptt: int) -> None:
    """ValueError (one line) when ``tbptt`` asks for stateful training on a task without streams,
    naming the tasks that have them."""
    if tbptt and not task.has_streams:
        from ..tasks import stream_tasks

        raise ValueError(
            f"--tbptt needs a task with streams ({', '.join(stream_tasks())}); task {task.name!r} has none"
        )
