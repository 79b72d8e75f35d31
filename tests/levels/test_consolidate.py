"""Consolidated levels: merging within a fraction of ATR, one pivot family, the documented
strength formula, and far fewer levels than the raw snapshot on the real data."""

from __future__ import annotations

import pandas as pd
import pytest

from buddy.context.pieces import KeyLevelsSnapshot, PriceLevel
from buddy.levels.consolidate import TOUCH_HALF_LIFE_BARS, consolidate
from buddy.levels.provider import key_levels_at
from buddy.store import Store

AS_OF = pd.Timestamp("2012-06-01T13:30Z").to_pydatetime()


def snapshot(**overrides: object) -> KeyLevelsSnapshot:
    values: dict[str, object] = dict(
        symbol="T", timeframe="1d", ts=AS_OF, prior_day_high=110.0, prior_day_low=90.0,
        prior_day_close=100.0, pivots={"classic": {"P": 100.0, "R1": 110.2, "S1": 89.0},
                                       "camarilla": {"R1": 101.0}},
        rolling_range_high=120.0, rolling_range_low=80.0)
    values.update(overrides)
    return KeyLevelsSnapshot(**values)  # type: ignore[arg-type]


def test_levels_within_the_merge_width_merge_and_strength_counts_sources() -> None:
    levels = consolidate(snapshot(), atr=2.0)  # merge width 0.5
    by_name = {lv.name: lv for lv in levels}
    merged = by_name["prior-day high / classic pivot R1"]
    assert merged.price == pytest.approx(110.1) and merged.sources == ("pivot", "prior_day")
    assert merged.strength == 2.0
    # the pivot P, the prior close and other pivot families are not candidates
    assert not [lv for lv in levels if "P" in lv.names or "close" in lv.name]
    assert not [lv for lv in levels if "camarilla" in lv.name]
    assert by_name["classic pivot S1"].strength == 1.0
    # no ATR: only equal prices merge
    assert len(consolidate(snapshot(), atr=float("nan"))) == len(levels) + 1
    # another family on request
    assert "camarilla pivot R1" in {lv.name for lv in consolidate(
        snapshot(), atr=2.0, pivot_method="camarilla")}


def test_swing_touches_add_strength_that_halves_with_age() -> None:
    fresh = PriceLevel(price=95.0, kind="support", touches=4, last_touch=AS_OF)
    old = PriceLevel(price=85.0, kind="support", touches=4,
                     last_touch=AS_OF - pd.Timedelta(days=TOUCH_HALF_LIFE_BARS))
    levels = {lv.price: lv for lv in consolidate(
        snapshot(support_resistance=(fresh, old)), atr=2.0)}
    assert levels[95.0].strength == 3.0  # 1 source + 0.5 x 4 touches
    assert levels[85.0].strength == 2.0  # a half-life old: 1 + 0.5 x 4 x 0.5
    assert levels[95.0].touches == 4


def test_real_snapshot_consolidates_to_a_few_levels(levels_store: Store) -> None:
    from buddy.api import resolve_as_of

    snap = key_levels_at(levels_store, "AAPL", "1d", resolve_as_of("2012-06-01",
                                                                   "America/New_York"))
    assert snap is not None
    levels = consolidate(snap, atr=12.0)
    assert len(snap.named_levels()) >= 25
    assert 3 <= len(levels) <= 15
    assert [lv.price for lv in levels] == sorted(lv.price for lv in levels)
    strong = [lv for lv in levels if lv.strength >= 3.0]
    assert len(strong) < len(levels)
