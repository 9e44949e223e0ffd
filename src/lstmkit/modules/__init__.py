"""``nn.Module``s: :class:`LSTMCell` and :class:`LSTM`, drop-ins for torch's, and :class:`Stream`."""

from .cell import LSTMCell
from .lstm import LSTM
from .minlstm import MinLSTM, MinLSTMCell
from .mlstm import MLSTM, MLSTMCell
from .seed import SeedLSTMCell
from .slstm import SLSTM, SLSTMCell
from .stream import Stream
from .xlstm_blocks import BlockState, CausalConv1d, MLSTMBlockLayer, MultiHeadNorm, SLSTMBlockLayer

__all__ = [
    "LSTM",
    "MLSTM",
    "SLSTM",
    "BlockState",
    "CausalConv1d",
    "LSTMCell",
    "MLSTMBlockLayer",
    "MLSTMCell",
    "MinLSTM",
    "MinLSTMCell",
    "MultiHeadNorm",
    "SLSTMBlockLayer",
    "SLSTMCell",
    "SeedLSTMCell",
    "Stream",
]
