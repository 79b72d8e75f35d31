"""Multi-timeframe alignment (MTFA): the trend of each timeframe in an instrument's stack,
an alignment score and the conflicts, from closed bars only."""

from __future__ import annotations

from buddy.mtfa.compute import (
    FX_STACK,
    STOCK_STACK,
    ClosedBarReading,
    TrendRule,
    classify_trend,
    mtfa_snapshot,
    stack_for,
)
from buddy.mtfa.provider import mtfa_provider, read_mtfa

__all__ = ["FX_STACK", "STOCK_STACK", "ClosedBarReading", "TrendRule", "classify_trend",
           "mtfa_provider", "mtfa_snapshot", "read_mtfa", "stack_for"]
