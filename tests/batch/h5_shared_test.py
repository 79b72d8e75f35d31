"""Pieces built once per distinct stored value say what a piece built alone says: regime
snapshots sharing an HMM fit's parsed parts, levels snapshots sharing a support/resistance
tuple, column-wise touch weights and consolidation's reuse of one batch's sorted candidates
(bit for bit, every input type the scalar code accepts)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from buddy.context.pieces import KeyLevelsSnapshot, PriceLevel
from buddy.levels import consolidate as cons
from buddy.levels.provider import snapshot_from_row as levels_snapshot
from buddy.regime.snapshots import _datetime
from buddy.regime.snapshots import snapshot_from_row as regime_snapshot

T0 = datetime(2019, 3, 8, 14, 30, 0, 123_457, tzinfo=UTC)
NY = ZoneInfo("America/New_York")


def _regime_row(bar: int, transition: str, labels: str) -> dict[str, object]:
    return {"symbol": "S", "timeframe": "1d", "ts": T0 + timedelta(days=bar),
            "trend_state": "up", "trend_strength": 25.5, "vol_state": "calm", "vol_z": -0.25,
            "vol_expansion_flag": False, "liquidity_state": "normal", "spread_proxy": 0.01,
            "relvol": 1.1, "hmm_state_id_optional": bar % 2,
            "hmm_probs_json": f"[{0.25 + bar / 100}, {0.75 - bar / 100}]",
            "hmm_state_labels_json": labels, "transition_json": transition,
            "model_version": "hmm-x",
            "fitted_through": datetime(2019, 1, 2, 14, 30, tzinfo=ZoneInfo("UTC"))}


def test_regime_rows_share_a_fits_parts_and_equal_rows_built_alone() -> None:
    fit_a = "[[0.9387891223465176, 0.06121087765348244], [0.03115289819215104, 1]]"
    fit_b = "[[0.5, 0.5], [0.1, 0.9]]"
    rows = [_regime_row(i, fit_a if i < 3 else fit_b, '["calm", "volatile"]')
            for i in range(5)]
    memo: dict[object, object] = {}
    shared = [regime_snapshot(dict(row), memo) for row in rows]
    alone = [regime_snapshot(dict(row)) for row in rows]
    assert [repr(s) for s in shared] == [repr(s) for s in alone]
    assert shared[0].transition_matrix is shared[2].transition_matrix
    assert shared[0].transition_matrix is not shared[3].transition_matrix
    assert shared[3].transition_matrix == ((0.5, 0.5), (0.1, 0.9))
    assert shared[0].transition_matrix[1] == (0.03115289819215104, 1.0)
    assert shared[0].hmm_state_labels is shared[4].hmm_state_labels
    assert shared[1].fitted_through is shared[4].fitted_through
    assert shared[1].fitted_through is not None and shared[1].fitted_through.tzinfo is UTC


@pytest.mark.parametrize("value", [
    datetime(2020, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
    datetime(2020, 1, 2, 3, 4, 5, 6, tzinfo=ZoneInfo("UTC")),
    datetime(2020, 1, 2, 3, 4, 5, tzinfo=ZoneInfo("Europe/London")),  # offset 0 in winter
    datetime(2020, 7, 2, 3, 4, 5, tzinfo=ZoneInfo("Europe/London")),  # +1 in summer
    datetime(2020, 7, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=-5))),
    pd.Timestamp("2020-01-02T03:04:05.000007Z"),
    "2020-01-02T03:04:05+02:00",
])
def test_utc_datetime_is_the_pandas_conversion(value: object) -> None:
    expected = pd.Timestamp(value).tz_convert("UTC").to_pydatetime()
    got = _datetime(value)
    assert got == expected and repr(got) == repr(expected)


def _sr(price: float, touches: int, last: int) -> dict[str, object]:
    return {"price": price, "kind": "support", "touches": touches, "last_touch": last}


def test_levels_rows_share_an_equal_sr_list_per_divisor() -> None:
    ns = pd.Timestamp("2019-01-02T14:30Z").value
    levels_a = [_sr(101.25, 2, ns), _sr(99.5, 3, ns + 86_400 * 10**9)]
    rows = [{"prior_day_high": 103.0 + i, "prior_day_low": math.nan, "prior_day_close": None,
             "pivots": {"classic": {"P": 100.0, "R1": 101.0 + i}, "camarilla": None},
             "anchored_vwap_levels": [], "rolling_range_high": 110.0,
             "rolling_range_low": None, "version": "2.0.0",
             "support_resistance": [dict(x) for x in (levels_a if i < 3 else levels_a[:1])]}
            for i in range(5)]
    divisors = [1.0, 1.0, 2.0, 1.0, 1.0]
    memo: dict[object, object] = {}
    shared = [levels_snapshot("S", "1d", ns + i * 1000, row, divisor=d, memo=memo)
              for i, (row, d) in enumerate(zip(rows, divisors, strict=True))]
    alone = [levels_snapshot("S", "1d", ns + i * 1000, row, divisor=d)
             for i, (row, d) in enumerate(zip(rows, divisors, strict=True))]
    assert [repr(s) for s in shared] == [repr(s) for s in alone]
    assert shared[0].support_resistance is shared[1].support_resistance
    assert shared[2].support_resistance is not shared[0].support_resistance  # divisor 2
    assert shared[2].support_resistance[0].price == 101.25 / 2
    assert shared[3].support_resistance is shared[4].support_resistance
    assert len(shared[3].support_resistance) == 1


def test_touch_weights_are_the_scalar_ones_bit_for_bit() -> None:
    rng = np.random.default_rng(15)
    snap_ts: list[object] = [T0 + timedelta(microseconds=int(x))
                             for x in rng.integers(0, 400 * 86_400 * 10**6, 40)]
    snap_ts += [pd.Timestamp("2019-06-03T13:30:00.000000001Z"),  # nanoseconds: pandas path
                datetime(2019, 11, 4, 9, 0),  # naive, with naive last touches
                datetime(2019, 11, 4, 9, 0, tzinfo=NY)]  # wall-clock difference in NY
    n_snap = len(snap_ts)
    of = rng.integers(0, n_snap - 3, 300)
    last: list[object | None] = [T0 + timedelta(microseconds=int(x))  # some after the bar
                                 for x in rng.integers(-5 * 86_400 * 10**6,
                                                       300 * 86_400 * 10**6, 300)]
    touches = rng.integers(0, 5, 300)
    last[::17] = [None] * len(last[::17])
    extra_of = [n_snap - 3, n_snap - 2, n_snap - 1, n_snap - 1]
    extra_last = [pd.Timestamp("2019-05-01T13:30:00.5Z"), datetime(2019, 3, 1, 9, 0),
                  datetime(2019, 3, 1, 9, 0, tzinfo=NY), T0]
    of = np.concatenate([of, extra_of])
    last += extra_last
    touches = np.concatenate([touches, [2, 3, 4, 1]])
    bar_s = np.where(np.arange(len(of)) % 3 == 0, 3600.0, 86_400.0)
    got = cons._touch_weights(np.array(snap_ts, dtype=object), of, touches,
                              np.array(last, dtype=object), bar_s)
    expected = np.array([cons._touch_weight(snap_ts[s], int(k), x, b) for s, k, x, b in zip(
        of.tolist(), touches.tolist(), last, bar_s.tolist(), strict=True)])
    assert np.isnan(got).tolist() == np.isnan(expected).tolist()
    assert got.view(np.int64).tolist() == expected.view(np.int64).tolist()
    assert np.isfinite(got[-4:]).all() and (got > 0).sum() > 200


def _snapshot(shift: float) -> KeyLevelsSnapshot:
    touch = [T0 - timedelta(days=d) for d in (3, 40, 400)]
    return KeyLevelsSnapshot(
        symbol="T", timeframe="1d", ts=T0, prior_day_high=110.0 + shift,
        prior_day_low=90.0 + shift, prior_day_close=100.0,
        pivots={"classic": {"P": 100.0, "R1": 110.1 + shift, "S1": 89.9 + shift},
                "camarilla": {"R3": 104.0 + shift, "S3": 95.0}},
        rolling_range_high=None, rolling_range_low=90.0 + shift,
        support_resistance=(
            PriceLevel(price=90.05 + shift, kind="support", touches=2, last_touch=touch[1]),
            PriceLevel(price=109.95 + shift, kind="resistance", touches=3,
                       last_touch=touch[2]),
            PriceLevel(price=95.01, kind="support", touches=4, last_touch=touch[0])))


def _table_values(table: cons.LevelTable) -> list[object]:
    return [table.code.tolist(), table.price.tobytes(), table.strength.tobytes(),
            table.touches.tolist(), table.rank.tolist(), table.names.tolist()]


def test_level_table_again_on_the_same_snapshots_is_computed_afresh() -> None:
    snaps = [_snapshot(0.0), None, _snapshot(0.4), _snapshot(1.3)]
    code = np.array([0, 1, 2, 3, 0, 2, 3])
    atr = np.array([1.0, 1.0, 0.5, np.nan, 3.0, 0.5, 8.0])
    settings = [("classic", 0.25, 3.0), ("camarilla", 0.5, 1.0), ("classic", 1.0, 0.0),
                ("classic", 0.25, 3.0), ("none", 0.25, 1.0)]
    reused = [_table_values(cons.level_table(snaps, code, atr, pivot_method=m, merge_atr=w,
                                             min_strength=s)) for m, w, s in settings
              for _ in range(2)]  # the second call of each reads the held candidates
    fresh = []
    for m, w, s in settings:
        for _ in range(2):
            cons._LAST_MATRICES.clear()
            fresh.append(_table_values(cons.level_table(snaps, code, atr, pivot_method=m,
                                                        merge_atr=w, min_strength=s)))
    assert reused == fresh
    # other snapshot objects with equal values are other snapshots: nothing held is read
    again = [_snapshot(0.0), None, _snapshot(0.4), _snapshot(1.3)]
    assert cons._LAST_MATRICES[0][1][0] is not again[0]
    assert _table_values(cons.level_table(again, code, atr, pivot_method="none",
                                          merge_atr=0.25, min_strength=1.0)) == fresh[-1]
    assert cons._LAST_MATRICES[0][1][0] is again[0]
    # a check reading some rows only (missing_scanner) after one reading all: same levels
    sub = np.array([3, 5, 6])
    held = _table_values(cons.level_table(again, code[sub], atr[sub], pivot_method="none",
                                          merge_atr=0.25, min_strength=1.0))
    cons._LAST_MATRICES.clear()
    assert held == _table_values(cons.level_table(again, code[sub], atr[sub],
                                                  pivot_method="none", merge_atr=0.25,
                                                  min_strength=1.0))
    single = cons.consolidate(again[2], 0.5, pivot_method="camarilla", merge_atr=0.5)
    assert [lv.price for lv in single] == sorted(lv.price for lv in single) and single
