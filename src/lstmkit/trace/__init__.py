"""Gate traces: what each gate does over time (recording, summaries; plots in ``trace.plots``)."""

from .record import TRACE_NAMES, GateTrace

__all__ = ["TRACE_NAMES", "GateTrace"]
