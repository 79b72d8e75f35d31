"""The pure MTFA read: trend thresholds, the ADX-weighted score, conflict wording, stacks."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from buddy.mtfa.compute import (
    FX_STACK,
    STOCK_STACK,
    ClosedBarReading,
    TrendRule,
    alignment_score,
    classify_trend,
    conflicts,
    mtfa_snapshot,
    reading_problem,
    stack_for,
)
from buddy.timeframes import Timeframe
from tests import factories

TS = datetime(2012, 6, 1, tzinfo=UTC)


def reading(tf: Timeframe = Timeframe.D1, *, close: float = 110.0, ema_20: float = 105.0,
            ema_50: float = 100.0, atr_14: float = 4.0, adx_14: float = 25.0
            ) -> ClosedBarReading:
    return ClosedBarReading(timeframe=tf, bar_ts=TS, close=close, ema_20=ema_20,
                            ema_50=ema_50, atr_14=atr_14, adx_14=adx_14)


def test_stacks_per_asset_class() -> None:
    assert stack_for("equity", "XNYS") == STOCK_STACK == (Timeframe.W1, Timeframe.D1)
    assert stack_for("index", "XNYS") == STOCK_STACK
    assert stack_for("fx", "FX24x5") == FX_STACK == (Timeframe.D1, Timeframe.H4, Timeframe.H1)
    assert stack_for("crypto", "fx24x5") == FX_STACK  # by calendar


@pytest.mark.parametrize(("values", "direction"), [
    ({}, "up"),  # EMA20 > EMA50, close 2.5 ATR above EMA50, ADX 25
    ({"close": 90.0, "ema_20": 95.0}, "down"),
    ({"close": 101.0}, "up"),  # exactly 0.25 ATR above: the threshold is inclusive
    ({"close": 100.99}, "range"),  # just under 0.25 ATR
    ({"close": 99.0, "ema_20": 98.0}, "down"),  # exactly -0.25 ATR
    ({"adx_14": 15.0}, "up"),  # ADX exactly at the minimum
    ({"adx_14": 14.99}, "range"),  # no directional movement to speak of
    ({"ema_20": 99.0}, "range"),  # close above EMA50 but EMA20 below it: mixed
    ({"close": 95.0}, "range"),  # EMA20 above EMA50 but close below it
])
def test_trend_thresholds(values: dict[str, float], direction: str) -> None:
    trend = classify_trend(reading(**values))
    assert trend.direction == direction
    assert trend.close_vs_ema50_atr == pytest.approx(((values.get("close", 110.0)) - 100.0) / 4)
    assert trend.strength == values.get("adx_14", 25.0)


def test_trend_rule_is_configurable() -> None:
    assert classify_trend(reading(adx_14=12.0), TrendRule(min_trend_adx=10.0)).direction == "up"
    assert classify_trend(reading(close=103.0), TrendRule(min_close_distance_atr=1.0)
                          ).direction == "range"


def test_undefined_indicators_are_a_problem_not_a_trend() -> None:
    assert reading_problem(reading()) is None
    assert "ema_50" in reading_problem(reading(ema_50=math.nan))
    assert "atr_14 is zero" in reading_problem(reading(atr_14=0.0))
    with pytest.raises(ValueError, match="1w"):
        classify_trend(reading(Timeframe.W1, adx_14=math.nan))


def test_alignment_is_adx_weighted_and_bounded() -> None:
    up, down = factories.trend("1w", "up", 30.0), factories.trend("1d", "down", 10.0)
    flat = factories.trend("1h", "range", 20.0)
    assert alignment_score([up, factories.trend("1d", "up", 10.0)]) == 1.0
    assert alignment_score([factories.trend("1w", "down", 5.0)]) == -1.0
    assert alignment_score([up, down]) == pytest.approx((30 - 10) / 40)
    assert alignment_score([up, down, flat]) == pytest.approx((30 - 10) / 60)
    assert alignment_score([flat]) == 0.0
    assert alignment_score([factories.trend("1d", "up", 0.0)]) == 0.0
    assert alignment_score([]) == 0.0


def test_conflicts_name_the_opposed_pairs_higher_timeframe_first() -> None:
    stack = [factories.trend("1h", "up"), factories.trend("1d", "down"),
             factories.trend("4h", "range")]
    assert conflicts(stack) == ("1d trend down vs 1h trend up",)
    three = [factories.trend("1d", "up"), factories.trend("4h", "down"),
             factories.trend("1h", "down")]
    assert conflicts(three) == ("1d trend up vs 4h trend down", "1d trend up vs 1h trend down")
    assert conflicts([factories.trend("1w", "up"), factories.trend("1d", "range")]) == ()


def test_snapshot_orders_the_stack_highest_first() -> None:
    snap = mtfa_snapshot([reading(Timeframe.H1, close=90.0, ema_20=95.0),
                          reading(Timeframe.D1), reading(Timeframe.H4)])
    assert [t.timeframe for t in snap.stack] == ["1d", "4h", "1h"]
    assert snap.conflicts == ("1d trend up vs 1h trend down", "4h trend up vs 1h trend down")
    assert snap.alignment_score == pytest.approx(1 / 3)
