"""PyTorch's fused LSTM (the kernel behind ``torch.nn.LSTM``) for the plain cell."""

from __future__ import annotations

from typing import Any

import torch
from torch import _VF, Tensor


def native_lstm(
    x: Tensor,
    hx: tuple[Tensor, Tensor],
    flat_weights: list[Tensor],
    *,
    bias: bool,
    num_layers: int,
    dropout: float,
    training: bool,
    bidirectional: bool,
    batch_first: bool = False,
    batch_sizes: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """All layers and directions in one call.

    ``x`` is (T, B, I) ((B, T, I) with ``batch_first``), or the data of a PackedSequence when ``batch_sizes`` is
    given; ``hx`` (L*D, B, R) and (L*D, B, H), batch in the order of ``x``; ``flat_weights`` in
    ``torch.nn.LSTM``'s order. Returns (output, h_n, c_n).

    ``torch.compile`` runs this call eagerly (a graph break), as it does ``torch.nn.LSTM``
    (dynamo's ``allow_rnn`` is off by default): traced, ``_VF.lstm`` reaches oneDNN's
    ``mkldnn_rnn_layer``, which has no fake implementation when no input requires grad.
    """
    args = (x, hx, flat_weights, bias, num_layers, dropout, training, bidirectional, batch_first, batch_sizes)
    if torch.compiler.is_compiling():  # a graph break around the call (eagerly, the wrapper's cost is skipped)
        return _fused_outside_graph(args)
    return _fused(args)


def _fused(args: tuple[Any, ...]) -> tuple[Tensor, Tensor, Tensor]:
    """``_VF.lstm`` on :func:`native_lstm`'s arguments, in its order."""
    x, hx, flat_weights, bias, num_layers, dropout, training, bidirectional, batch_first, batch_sizes = args
    if batch_sizes is None:
        out, h, c = _VF.lstm(x, hx, flat_weights, bias, num_layers, dropout, training, bidirectional, batch_first)
    else:
        out, h, c = _VF.lstm(x, batch_sizes, hx, flat_weights, bias, num_layers, dropout, training, bidirectional)
    return out, h, c


_fused_outside_graph = torch.compiler.disable(_fused, recursive=True)
