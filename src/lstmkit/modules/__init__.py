"""``nn.Module``s: :class:`LSTMCell` and :class:`LSTM`, drop-ins for torch's, and :class:`Stream`."""

from .cell import LSTMCell
from .lstm import LSTM
from .minlstm import MinLSTM, MinLSTMCell
from .mlstm import MLSTM, MLSTMCell
from .seed import SeedLSTMCell
from .slstm import SLSTM, SLSTMCell
from .stream import Stream

__all__ = [
    "LSTM",
    "MLSTM",
    "SLSTM",
    "LSTMCell",
    "MLSTMCell",
    "MinLSTM",
    "MinLSTMCell",
    "SLSTMCell",
    "SeedLSTMCell",
    "Stream",
]
