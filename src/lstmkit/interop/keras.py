"""Keras LSTM weights in and out of :class:`~lstmkit.LSTM`, without importing Keras.

A Keras ``LSTM`` layer's ``get_weights()`` is ``[kernel (I, 4H), recurrent_kernel (H, 4H),
bias (4H,)]`` (no bias with ``use_bias=False``), columns in gate order i, f, c, o; lstmkit's
rows are i, f, g, o, the same order. So, for each layer-direction::

    weight_ih = kernel.T        weight_hh = recurrent_kernel.T
    bias_ih   = bias            bias_hh   = 0                    (Keras has one bias)

Keras ``Bidirectional(LSTM(...)).get_weights()`` lists the forward layer's arrays, then the
backward layer's; its "concat" merge equals lstmkit's ``bidirectional=True`` output. Keras applies
``recurrent_activation`` to i, f, o and ``activation`` to the candidate and to the cell output, so
they map to :class:`~lstmkit.CellSpec`'s ``gate_activation`` and ``candidate_activation`` =
``cell_activation``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..modules import base
from ..modules.lstm import LSTM
from ..spec import CellSpec
from .torch_nn import torch_incompatibilities

KERAS_TO_SPEC = {
    "tanh": "tanh",
    "sigmoid": "sigmoid",
    "hard_sigmoid": "hard_sigmoid",  # Keras 3: relu6(x + 3) / 6, the same function
    "relu": "relu",
    "softsign": "softsign",
    "linear": "identity",
}
"""Keras activation name -> :class:`CellSpec` activation name."""
SPEC_TO_KERAS = {v: k for k, v in KERAS_TO_SPEC.items()}


class KerasWeights(list):
    """The list :func:`keras_weights` returns (what ``keras_layer.set_weights`` takes), carrying what
    the arrays alone do not say about the model they came from, so that :func:`lstm_from_keras` gives
    back the same function: ``batch_first``, ``bidirectional`` and the two Keras activation names."""

    batch_first: bool = True
    bidirectional: bool = False
    activation: str = "tanh"
    recurrent_activation: str = "sigmoid"


def _is_array(value: object) -> bool:
    return hasattr(value, "shape") and hasattr(value, "dtype")


def _as_tensor(value: Any) -> Tensor:
    if isinstance(value, Tensor):
        return value.detach().cpu()
    return torch.as_tensor(np.asarray(value))


def _split_layers(weights: Any) -> list[list[Tensor]]:
    """One layer's flat list, or a list of such lists (stacked layers) -> list of layers."""
    if not isinstance(weights, (list, tuple)) or len(weights) == 0:
        got = "an empty list" if isinstance(weights, (list, tuple)) else type(weights).__name__
        raise TypeError(
            "Keras weights must be the list layer.get_weights() returns, or a list of such lists for "
            f"stacked layers; got {got}"
        )
    if all(_is_array(w) for w in weights):
        return [[_as_tensor(w) for w in weights]]
    if all(isinstance(w, (list, tuple)) for w in weights):
        layers = []
        for k, layer in enumerate(weights):
            if not all(_is_array(w) for w in layer):
                kinds = [type(w).__name__ for w in layer]
                raise TypeError(f"Keras weights of layer {k} must be a list of arrays; got {kinds}")
            layers.append([_as_tensor(w) for w in layer])
        return layers
    raise TypeError(
        "Keras weights must be a list of arrays (one layer) or a list of lists of arrays (stacked layers); "
        f"got a list of {sorted({type(w).__name__ for w in weights})}"
    )


def _activation(kind: str, name: str) -> str:
    if name not in KERAS_TO_SPEC:
        raise ValueError(f"Keras {kind} must be one of {sorted(KERAS_TO_SPEC)}; got {name!r}")
    return KERAS_TO_SPEC[name]


def lstm_from_keras(
    weights: Any,
    *,
    bidirectional: bool | None = None,
    go_backwards: bool = False,
    activation: str | None = None,
    recurrent_activation: str | None = None,
    batch_first: bool | None = None,
    cls: type[LSTM] = LSTM,
    **kwargs: Any,
) -> LSTM:
    """An :class:`~lstmkit.LSTM` computing what the Keras LSTM layer(s) with these weights compute.

    ``weights``: ``layer.get_weights()`` of one Keras ``LSTM`` (or of one ``Bidirectional(LSTM)``
    with ``bidirectional=True``), or a list of those for stacked layers. Each layer-direction::

        weight_ih = kernel.T (4H, I), weight_hh = recurrent_kernel.T (4H, H),
        bias_ih = bias (4H,), bias_hh = 0

    ``activation`` / ``recurrent_activation`` are the Keras layer's (defaults ``"tanh"`` and
    ``"sigmoid"``, Keras 3's). ``batch_first`` defaults to True, Keras' (B, T, I) layout; other
    keyword arguments go to the constructor (e.g. ``dtype``). The model is in evaluation mode.
    Weights from :func:`keras_weights` (a :class:`KerasWeights`) bring their model's
    ``batch_first``, ``bidirectional`` and activations as the defaults, so a round trip gives
    back the same function.

    A lone Keras layer with ``go_backwards=True`` reads time backwards and returns its outputs in
    that order: it equals ``model(x.flip(1))`` of the model built with ``go_backwards=False``
    (this function refuses the flag rather than return a model that silently differs).

    Example::

        >>> layer = keras.layers.LSTM(20, return_sequences=True)   # on (B, T, 10) inputs
        >>> model = lstmkit.LSTM.from_keras(layer.get_weights())
        >>> out, (h_n, c_n) = model(x)                                # out == layer(x)
    """
    if isinstance(weights, KerasWeights):  # from keras_weights: the model's own settings
        batch_first = weights.batch_first if batch_first is None else batch_first
        bidirectional = weights.bidirectional if bidirectional is None else bidirectional
        activation = activation or weights.activation
        recurrent_activation = recurrent_activation or weights.recurrent_activation
    batch_first = True if batch_first is None else batch_first
    bidirectional = bool(bidirectional)
    activation, recurrent_activation = activation or "tanh", recurrent_activation or "sigmoid"
    if go_backwards and not bidirectional:
        raise ValueError(
            "lstmkit.LSTM has no backwards-only direction: a Keras LSTM with go_backwards=True equals "
            "LSTM.from_keras(weights)(x.flip(1)) (time axis 1 for (B, T, I) input); pass go_backwards=False "
            "and flip the input, or use bidirectional=True for a Keras Bidirectional layer"
        )
    if go_backwards:
        raise ValueError(
            "go_backwards=True with bidirectional=True: a Keras Bidirectional layer's backward half already "
            "reads time backwards; pass bidirectional=True alone"
        )
    spec_act = _activation("activation", activation)
    spec = CellSpec(
        gate_activation=_activation("recurrent_activation", recurrent_activation),
        candidate_activation=spec_act,
        cell_activation=spec_act,
    )
    layers = _split_layers(weights)
    D = 2 if bidirectional else 1
    per_direction = len(layers[0]) // D
    if per_direction not in (2, 3) or len(layers[0]) != D * per_direction:
        raise ValueError(
            f"a Keras {'Bidirectional ' if bidirectional else ''}LSTM layer has {D * 3} arrays "
            f"(or {D * 2} with use_bias=False); layer 0 has {len(layers[0])}"
        )
    bias = per_direction == 3
    H = int(layers[0][1].shape[0])
    sizes = []
    for k, layer in enumerate(layers):
        if len(layer) != D * per_direction:
            raise ValueError(
                f"every layer must have {D * per_direction} arrays like layer 0; layer {k} has {len(layer)}"
            )
        want_in = None if k == 0 else D * H
        for d in range(D):
            arrays = layer[d * per_direction : (d + 1) * per_direction]
            sizes.append(_check_direction(arrays, k, d, H, want_in))
    dtype = layers[0][0].dtype if layers[0][0].dtype in (torch.float32, torch.float64) else torch.float32
    kwargs.setdefault("dtype", dtype)
    model = cls(
        sizes[0],
        H,
        num_layers=len(layers),
        bias=bias,
        batch_first=batch_first,
        bidirectional=bidirectional,
        spec=spec,
        **kwargs,
    )
    with torch.no_grad():
        for k, layer in enumerate(layers):
            for d in range(D):
                arrays = layer[d * per_direction : (d + 1) * per_direction]
                suffix = base.direction_suffix(k, d)
                getattr(model, "weight_ih" + suffix).copy_(arrays[0].T)
                getattr(model, "weight_hh" + suffix).copy_(arrays[1].T)
                if bias:
                    getattr(model, "bias_ih" + suffix).copy_(arrays[2])
                    getattr(model, "bias_hh" + suffix).zero_()
    return model.eval()


def _check_direction(arrays: list[Tensor], k: int, d: int, H: int, want_in: int | None) -> int:
    """Validate one direction's (kernel, recurrent_kernel[, bias]); returns its input size."""
    where = f"layer {k}" + (f" direction {d}" if d else "")
    kernel, recurrent = arrays[0], arrays[1]
    if kernel.dim() != 2 or kernel.shape[1] != 4 * H or (want_in is not None and kernel.shape[0] != want_in):
        want = f"({want_in if want_in is not None else 'I'}, {4 * H})"
        raise ValueError(f"Keras kernel of {where} must have shape {want}; got {tuple(kernel.shape)}")
    if tuple(recurrent.shape) != (H, 4 * H):
        raise ValueError(
            f"Keras recurrent_kernel of {where} must have shape ({H}, {4 * H}); got {tuple(recurrent.shape)}"
        )
    if len(arrays) == 3 and tuple(arrays[2].shape) != (4 * H,):
        raise ValueError(f"Keras bias of {where} must have shape ({4 * H},); got {tuple(arrays[2].shape)}")
    return int(kernel.shape[0])


def keras_layer_kwargs(model: LSTM) -> dict[str, Any]:
    """Keyword arguments of the ``keras.layers.LSTM`` matching one layer-direction of ``model``:
    ``units``, ``activation``, ``recurrent_activation``, ``use_bias``.

    Example::

        >>> keras.layers.LSTM(**keras_layer_kwargs(model), return_sequences=True)
    """
    _check_keras_expressible(model)
    return {
        "units": model.hidden_size,
        "activation": SPEC_TO_KERAS[model.spec.cell_activation],
        "recurrent_activation": SPEC_TO_KERAS[model.spec.gate_activation],
        "use_bias": model.bias,
    }


def _check_keras_expressible(model: LSTM) -> None:
    if not isinstance(model, LSTM):
        raise TypeError(f"expected a lstmkit.LSTM; got {type(model).__name__}")
    spec = model.spec
    same = spec.replace(gate_activation="sigmoid", candidate_activation="tanh", cell_activation="tanh").is_plain
    if not same or spec.candidate_activation != spec.cell_activation:
        raise ValueError(
            "Keras' LSTM has only the standard cell with one activation for the candidate and the cell output; "
            f"this model has {spec}"
        )
    if model.proj_size:
        raise ValueError(f"Keras' LSTM has no projection; this model has proj_size={model.proj_size}")
    regularisers = [r for r in torch_incompatibilities(model) if not r.startswith("spec ")]
    if regularisers:
        raise ValueError(
            "Keras weights cannot carry what this model computes besides its weights: it has " + "; ".join(regularisers)
        )


def keras_weights(model: LSTM) -> KerasWeights:
    """The Keras ``get_weights()`` list(s) of ``model``: for one layer ``[kernel, recurrent_kernel,
    bias]`` (forward then backward with ``bidirectional``), for several layers a list of those.

    ``kernel = weight_ih.T`` (I, 4H), ``recurrent_kernel = weight_hh.T`` (H, 4H),
    ``bias = bias_ih + bias_hh`` (4H,); numpy arrays of the parameters' dtype, in a
    :class:`KerasWeights` list that remembers ``batch_first``, ``bidirectional`` and the activations.
    Refuses (ValueError, naming why) a model Keras' LSTM cannot compute: another spec, a
    projection, zoneout, or in training mode recurrent dropout or weight drop.

    Example::

        >>> keras_layer.set_weights(model.to_keras_weights())
    """
    _check_keras_expressible(model)
    layers = []
    for k in range(model.num_layers):
        arrays = []
        for d in range(model.num_directions):
            w = base.layer_weights(model, base.direction_suffix(k, d))
            arrays += [w.weight_ih.detach().cpu().T.numpy().copy(), w.weight_hh.detach().cpu().T.numpy().copy()]
            if w.bias_ih is not None and w.bias_hh is not None:
                arrays.append((w.bias_ih + w.bias_hh).detach().cpu().numpy())
        layers.append(arrays)
    out = KerasWeights(layers[0] if len(layers) == 1 else layers)
    out.batch_first, out.bidirectional = model.batch_first, model.bidirectional
    out.activation = SPEC_TO_KERAS[model.spec.cell_activation]
    out.recurrent_activation = SPEC_TO_KERAS[model.spec.gate_activation]
    return out
