"""Multi-timeframe alignment from the last CLOSED bar of each timeframe in a stack.

Pure functions over typed values: the provider (``buddy.mtfa.provider``) reads one
``ClosedBarReading`` per stack timeframe point-in-time, and ``mtfa_snapshot`` turns them into
the pack's ``MTFASnapshot``.

Stack
    Stocks and indices (exchange calendars): 1w / 1d. Spot FX ('fx' asset class or the FX24x5
    calendar): 1d / 4h / 1h. Highest timeframe first.

Trend of one timeframe (``TrendRule``; thresholds in ATR(14) and ADX(14) points)
    up     EMA20 > EMA50, close at least ``min_close_distance_atr`` (0.25) ATR above EMA50,
           and ADX(14) >= ``min_trend_adx`` (15);
    down   the mirror image;
    range  anything else: EMAs and close disagree, close hugs EMA50, or ADX below 15 (no
           directional movement to speak of, by the usual reading of ADX).
    Every input is a value of the same bar on the same price basis, so the read is scale-free
    and needs no split adjustment.

Alignment score
    ``sum(sign_i * ADX_i) / sum(ADX_i)`` over the stack, sign +1 up, -1 down, 0 range: +1 when
    every timeframe trends up, -1 when every one trends down; a ranging timeframe adds its ADX
    to the denominator only, pulling the score towards 0; a stronger trend weighs more.

Conflicts
    Every pair of timeframes trending in opposite directions, higher timeframe first:
    '1d trend down vs 1h trend up'. A range against a trend is not a conflict.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from itertools import combinations

from buddy.context.pieces import MTFASnapshot, TimeframeTrend
from buddy.data.calendars import FX_CALENDAR_NAME
from buddy.timeframes import Timeframe

__all__ = [
    "DEFAULT_TREND_RULE",
    "FX_STACK",
    "REQUIRED_FEATURES",
    "STOCK_STACK",
    "TREND_SIGN",
    "ClosedBarReading",
    "TrendRule",
    "alignment_score",
    "classify_trend",
    "conflicts",
    "mtfa_snapshot",
    "reading_problem",
    "stack_for",
]

STOCK_STACK: tuple[Timeframe, ...] = (Timeframe.W1, Timeframe.D1)
FX_STACK: tuple[Timeframe, ...] = (Timeframe.D1, Timeframe.H4, Timeframe.H1)

#: Feature columns a trend read needs on the last closed bar.
REQUIRED_FEATURES: tuple[str, ...] = ("ema_20", "ema_50", "atr_14", "adx_14")

#: The sign of each trend direction: +1 up, -1 down, 0 range.
TREND_SIGN: dict[str, int] = {"up": 1, "down": -1, "range": 0}


def stack_for(asset_class: str, trading_calendar: str) -> tuple[Timeframe, ...]:
    """Return the timeframe stack of an instrument, highest timeframe first."""
    if asset_class.lower() == "fx" or trading_calendar.upper() == FX_CALENDAR_NAME.upper():
        return FX_STACK
    return STOCK_STACK


@dataclass(frozen=True, slots=True, kw_only=True)
class TrendRule:
    """Thresholds of the per-timeframe trend read."""

    min_close_distance_atr: float = 0.25  # ATR(14): close beyond EMA50 by at least this
    min_trend_adx: float = 15.0  # ADX(14) points: below this a timeframe reads as range


DEFAULT_TREND_RULE = TrendRule()


@dataclass(frozen=True, slots=True, kw_only=True)
class ClosedBarReading:
    """The values of one timeframe's last closed bar at as_of (prices on the bar's basis)."""

    timeframe: Timeframe
    bar_ts: datetime  # open time of the bar
    close: float
    ema_20: float
    ema_50: float
    atr_14: float
    adx_14: float


def reading_problem(reading: ClosedBarReading) -> str | None:
    """Return why ``reading`` cannot give a trend (undefined indicators), or None."""
    undefined = [name for name in ("close", *REQUIRED_FEATURES)
                 if not math.isfinite(getattr(reading, name))]
    if undefined:
        return f"{', '.join(undefined)} undefined on the last closed bar"
    if reading.atr_14 <= 0:
        return "atr_14 is zero on the last closed bar"
    return None


def classify_trend(reading: ClosedBarReading, rule: TrendRule = DEFAULT_TREND_RULE
                   ) -> TimeframeTrend:
    """Return the trend read of one timeframe from its last closed bar (see module doc)."""
    problem = reading_problem(reading)
    if problem is not None:
        raise ValueError(f"{reading.timeframe}: {problem}")
    distance = (reading.close - reading.ema_50) / reading.atr_14
    strength = min(100.0, max(0.0, reading.adx_14))
    direction = "range"
    if strength >= rule.min_trend_adx:
        if reading.ema_20 > reading.ema_50 and distance >= rule.min_close_distance_atr:
            direction = "up"
        elif reading.ema_20 < reading.ema_50 and distance <= -rule.min_close_distance_atr:
            direction = "down"
    return TimeframeTrend(timeframe=str(reading.timeframe), bar_ts=reading.bar_ts,
                          direction=direction, strength=strength,
                          close_vs_ema50_atr=distance)


def alignment_score(trends: Iterable[TimeframeTrend]) -> float:
    """Return the ADX-weighted mean of the trend signs, in [-1, 1] (0 without strength)."""
    trends = list(trends)
    total = sum(t.strength for t in trends)
    if total <= 0:
        return 0.0
    score = sum(TREND_SIGN[t.direction] * t.strength for t in trends) / total
    return min(1.0, max(-1.0, score))


def conflicts(trends: Iterable[TimeframeTrend]) -> tuple[str, ...]:
    """Return '<higher> trend <dir> vs <lower> trend <dir>' for each opposed pair."""
    ordered = sorted(trends, key=lambda t: Timeframe.parse(t.timeframe).nominal, reverse=True)
    return tuple(f"{hi.timeframe} trend {hi.direction} vs {lo.timeframe} trend {lo.direction}"
                 for hi, lo in combinations(ordered, 2)
                 if TREND_SIGN[hi.direction] * TREND_SIGN[lo.direction] < 0)


def mtfa_snapshot(readings: Iterable[ClosedBarReading],
                  rule: TrendRule = DEFAULT_TREND_RULE) -> MTFASnapshot:
    """Return the MTFASnapshot of the readings (one per stack timeframe), highest first."""
    trends = sorted((classify_trend(r, rule) for r in readings),
                    key=lambda t: Timeframe.parse(t.timeframe).nominal, reverse=True)
    return MTFASnapshot(stack=tuple(trends), alignment_score=alignment_score(trends),
                        conflicts=conflicts(trends))
