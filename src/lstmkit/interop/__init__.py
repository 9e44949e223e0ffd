"""Moving models in and out of lstmkit: ONNX export and Keras weights.

Nothing here imports ``onnx``, ``onnxruntime`` or ``keras`` at import time; each function
imports what it needs when called.
"""

from .onnx_export import OnnxExport, export_onnx

__all__ = ["OnnxExport", "export_onnx"]
