"""lstmkit: the glass-box LSTM for PyTorch.

Every gate visible, every variant from the literature as one composable :class:`CellSpec`,
drop-in compatible with ``torch.nn.LSTM`` and ``torch.nn.LSTMCell``.
"""

from . import init  # chrono_, forget_bias_, torch_default_ (gate-bias initialisation)
from .functional import CellGates, LayerWeights, lstm_layer, lstm_step
from .interop import export_onnx  # imports onnx only when called
from .interop.quantize import quantize  # int8 weights per channel, dynamic int8 activations (CPU inference)
from .modules import (
    LSTM,
    MLSTM,
    SLSTM,
    LSTMCell,
    MinLSTM,
    MinLSTMCell,
    MLSTMCell,
    SeedLSTMCell,
    SLSTMCell,
    Stream,
)
from .spec import PRESETS, CellSpec
from .trace import GateTrace

__version__ = "0.1.0"

_SUBPACKAGES = ("cli", "families", "interop", "kernels", "modules", "tasks", "trace", "train")


def __getattr__(name: str) -> object:
    """``lstmkit.train``, ``lstmkit.tasks``, ... after a plain ``import lstmkit``, imported on first use
    (so ``import lstmkit`` stays light: no task, training or CLI code until asked for)."""
    if name in _SUBPACKAGES:
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'lstmkit' has no attribute {name!r}")


__all__ = [
    "LSTM",
    "MLSTM",
    "PRESETS",
    "SLSTM",
    "CellGates",
    "CellSpec",
    "GateTrace",
    "LSTMCell",
    "LayerWeights",
    "MLSTMCell",
    "MinLSTM",
    "MinLSTMCell",
    "SLSTMCell",
    "SeedLSTMCell",
    "Stream",
    "__version__",
    "export_onnx",
    "init",
    "lstm_layer",
    "lstm_step",
    "quantize",
]
