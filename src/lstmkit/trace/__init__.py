"""Gate traces: what each gate does over time (recording, summaries; plots in ``trace.plots``).

``summarize`` reads an LSTM's :class:`GateTrace` and the trace of an sLSTM, mLSTM or minLSTM module
(:class:`~lstmkit.families.FamilyTrace`, summarised by :mod:`lstmkit.trace.family`).
"""

from .family import FamilySummary, Growth, summarize_family
from .record import TRACE_NAMES, GateTrace
from .summary import GateStats, MemoryHorizon, TraceSummary, summarize

__all__ = [
    "TRACE_NAMES",
    "FamilySummary",
    "GateStats",
    "GateTrace",
    "Growth",
    "MemoryHorizon",
    "TraceSummary",
    "summarize",
    "summarize_family",
]
