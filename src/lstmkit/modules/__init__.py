"""``nn.Module``s: :class:`LSTMCell` and :class:`LSTM`, drop-ins for torch's."""

from .cell import LSTMCell
from .lstm import LSTM
from .seed import SeedLSTMCell

__all__ = ["LSTM", "LSTMCell", "SeedLSTMCell"]
