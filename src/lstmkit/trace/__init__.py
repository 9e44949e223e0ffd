"""Gate traces: what each gate does over time (recording, summaries; plots in ``trace.plots``)."""

from .record import TRACE_NAMES, GateTrace
from .summary import GateStats, MemoryHorizon, TraceSummary

__all__ = ["TRACE_NAMES", "GateStats", "GateTrace", "MemoryHorizon", "TraceSummary"]
