"""Thin aliases on the module classes for the conversion functions of :mod:`lstmkit.interop`.

``LSTM.from_torch(m)``, ``model.to_torch()``, ``LSTM.from_keras(w)``, ``model.to_keras_weights()``,
``LSTMCell.from_torch(m)`` and ``cell.to_torch()`` call the functions in ``interop.torch_nn`` and
``interop.keras``. They are attached here, when :mod:`lstmkit.interop` is imported (``import
lstmkit`` does), because ``modules`` sits below ``interop`` and must not import it.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ..modules.cell import LSTMCell
from ..modules.lstm import LSTM
from .keras import keras_weights, lstm_from_keras
from .torch_nn import cell_from_torch, cell_to_torch, lstm_from_torch, lstm_to_torch


def _lstm_from_torch(cls: type[LSTM], module: nn.LSTM, **kwargs: Any) -> LSTM:
    """An ``LSTM`` with the configuration and weights of a ``torch.nn.LSTM`` (:func:`lstm_from_torch`)."""
    return lstm_from_torch(module, cls=cls, **kwargs)


def _lstm_from_keras(cls: type[LSTM], weights: Any, **kwargs: Any) -> LSTM:
    """An ``LSTM`` equal to Keras LSTM layer(s) with these ``get_weights()`` arrays (:func:`lstm_from_keras`)."""
    return lstm_from_keras(weights, cls=cls, **kwargs)


def _cell_from_torch(cls: type[LSTMCell], module: nn.LSTMCell) -> LSTMCell:
    """A cell with the weights of a ``torch.nn.LSTMCell`` (:func:`cell_from_torch`)."""
    return cell_from_torch(module, cls=cls)


def attach() -> None:
    """Put the aliases on :class:`LSTM` and :class:`LSTMCell` (idempotent)."""
    LSTM.from_torch = classmethod(_lstm_from_torch)  # type: ignore[attr-defined]
    LSTM.to_torch = lstm_to_torch  # type: ignore[attr-defined]
    LSTM.from_keras = classmethod(_lstm_from_keras)  # type: ignore[attr-defined]
    LSTM.to_keras_weights = keras_weights  # type: ignore[attr-defined]
    LSTMCell.from_torch = classmethod(_cell_from_torch)  # type: ignore[attr-defined]
    LSTMCell.to_torch = cell_to_torch  # type: ignore[attr-defined]
