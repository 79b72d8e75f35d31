"""level_table over many (snapshot, ATR) pairs says, pair by pair, what consolidate says of
one snapshot: ties in price and name keep their order, sums add in price order, pairs of one
snapshot at several ATRs merge at their own widths."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from buddy.context.pieces import KeyLevelsSnapshot, PriceLevel
from buddy.levels.consolidate import consolidate, level_table

AS_OF = pd.Timestamp("2012-06-01T13:30Z").to_pydatetime()


def level(price: float, kind: str, touches: int, last: object) -> PriceLevel:
    return PriceLevel(price=price, kind=kind, touches=touches, last_touch=last)  # type: ignore[arg-type]


def snapshot(shift: float, **overrides: object) -> KeyLevelsSnapshot:
    touch = [AS_OF - pd.Timedelta(days=d).to_pytimedelta() for d in (3, 40, 400)]
    values: dict[str, object] = dict(
        symbol="T", timeframe="1d", ts=AS_OF, prior_day_high=110.0 + shift,
        prior_day_low=90.0 + shift, prior_day_close=100.0,
        pivots={"classic": {"P": 100.0, "R1": 110.1 + shift, "S1": 89.9 + shift,
                            "R2": math.nan}},
        rolling_range_high=None, rolling_range_low=90.0 + shift,
        # equal prices and names with other touch times: their order sets the float sums
        support_resistance=(level(90.05 + shift, "support", 2, touch[1]),
                            level(90.05 + shift, "support", 2, touch[0]),
                            level(109.95 + shift, "resistance", 3, touch[2]),
                            level(109.97 + shift, "resistance", 1, touch[0])))
    values.update(overrides)
    return KeyLevelsSnapshot(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize("min_strength", [0.0, 2.0, 3.0])
def test_each_pair_is_what_consolidate_says_of_it(min_strength: float) -> None:
    snaps = [snapshot(0.0), None, snapshot(0.37), snapshot(0.0, support_resistance=())]
    code = np.array([0, 0, 1, 2, 2, 3, 0, 2])
    atr = np.array([1.0, 0.05, 1.0, np.nan, 2.0, 0.4, 1.0, 0.0])
    table = level_table(snaps, code, atr, pivot_method="classic", merge_atr=0.25,
                        min_strength=min_strength)
    for row in range(len(code)):
        snap = snaps[code[row]]
        expected = [] if snap is None else [
            lv for lv in consolidate(snap, float(atr[row]), merge_atr=0.25)
            if lv.strength >= min_strength - 1e-9]
        pair = table.code[row]
        width = int((~np.isnan(table.price[pair])).sum())
        assert width == len(expected)
        assert table.price[pair, :width].tolist() == [lv.price for lv in expected]
        assert table.strength[pair, :width].tolist() == [lv.strength for lv in expected]
        assert table.touches[pair, :width].tolist() == [lv.touches for lv in expected]
        assert table.name_of(table.rank[pair, :width]).tolist() == [lv.name for lv in expected]
    assert table.code[0] == table.code[6] and table.code[0] != table.code[1]


def test_consolidate_adds_equal_price_members_in_their_order() -> None:
    levels = consolidate(snapshot(0.0), atr=1.0)  # merge width 0.25
    low = next(lv for lv in levels if "prior-day low" in lv.names)
    # by price, then name; the two equal clusters in their snapshot order
    assert low.names == ("classic pivot S1", "prior-day low", "range low",
                         "support cluster (2 touches)", "support cluster (2 touches)")
    # 4 sources + 0.5 x 2 touches x (0.5 ** (40 / 60) + 0.5 ** (3 / 60)), rounded to 1e-6
    assert low.strength == round(4 + 0.5 * (2 * 0.5 ** (40 / 60) + 2 * 0.5 ** (3 / 60)), 6)
    assert low.sources == ("pivot", "prior_day", "range", "swing")
    assert low.touches == 4 and low.last_touch == AS_OF - pd.Timedelta(days=3)
    assert low.low == 89.9 and low.high == 90.05 and low.price == 90.0
