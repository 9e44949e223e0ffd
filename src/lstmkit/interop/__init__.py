"""Moving models in and out of lstmkit: ONNX export and Keras weights.

Nothing here imports ``onnx``, ``onnxruntime`` or ``keras`` at import time; each function
imports what it needs when called (Keras weights are plain arrays and need no Keras at all).

Example::

    >>> lstmkit.export_onnx(model.eval(), "model.onnx", torch.randn(5, 3, 8))   # doctest: +SKIP
    >>> export_model_onnx(seq_model.eval(), "whole.onnx", task.test_set().inputs[:4])   # doctest: +SKIP
    >>> model = lstmkit.LSTM.from_keras(keras_layer.get_weights())             # doctest: +SKIP
"""

from .keras import keras_layer_kwargs, keras_weights, lstm_from_keras
from .onnx_export import OnnxExport, export_onnx
from .onnx_model import SeriesNormalization, export_model_onnx

__all__ = [
    "OnnxExport",
    "SeriesNormalization",
    "export_model_onnx",
    "export_onnx",
    "keras_layer_kwargs",
    "keras_weights",
    "lstm_from_keras",
]
