"""Moving models in and out of lstmkit: torch.nn modules, ONNX export, Keras weights and the
official xLSTM package's layers.

Nothing here imports ``onnx``, ``onnxruntime`` or ``keras`` at import time; each function
imports what it needs when called (Keras weights are plain arrays and need no Keras at all).

Example::

    >>> lstmkit.export_onnx(model.eval(), "model.onnx", torch.randn(5, 3, 8))   # doctest: +SKIP
    >>> export_model_onnx(seq_model.eval(), "whole.onnx", task.test_set().inputs[:4])   # doctest: +SKIP
    >>> model = lstmkit.LSTM.from_keras(keras_layer.get_weights())             # doctest: +SKIP
"""

from . import aliases
from .keras import KerasWeights, keras_layer_kwargs, keras_weights, lstm_from_keras
from .onnx_export import OnnxExport, export_onnx
from .onnx_model import SeriesNormalization, export_model_onnx
from .torch_nn import cell_from_torch, cell_to_torch, lstm_from_torch, lstm_to_torch
from .xlstm import from_xlstm

aliases.attach()  # LSTM.from_torch, model.to_torch(), LSTM.from_keras, ... (modules cannot import interop)

__all__ = [
    "KerasWeights",
    "OnnxExport",
    "SeriesNormalization",
    "cell_from_torch",
    "cell_to_torch",
    "export_model_onnx",
    "export_onnx",
    "from_xlstm",
    "keras_layer_kwargs",
    "keras_weights",
    "lstm_from_keras",
    "lstm_from_torch",
    "lstm_to_torch",
]
