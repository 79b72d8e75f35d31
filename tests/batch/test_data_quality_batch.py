"""DataQuality's batch form equals its scalar form: on the real and contract cases under the
default thresholds and stricter ones, and on made-up packs that trip what the sample data
never does (gaps, both stale severities, some features missing, a fractional bar time)."""

from __future__ import annotations

import dataclasses
import math
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from buddy.batch.columns import distinct, isoformat, py_round
from buddy.context.pack import ContextPack
from buddy.domain import TradeIntent
from buddy.evaluators.base import Evaluator
from buddy.evaluators.data_quality import DataQualityEvaluator
from buddy.testing import assert_batch_covers_scalar as check
from buddy.timeframes import Timeframe
from tests import factories

Case = tuple[TradeIntent, ContextPack]

#: Every check stricter than the default: SHORT_HISTORY fires on every real row.
STRICT = {"max_stale_sessions": 0, "max_gap_pct": 0.5, "min_history_bars": 1000}


def edge_cases() -> list[Case]:
    """Packs that trip every code and both severities of STALE_DATA and DATA_GAPS."""
    base = factories.market()
    sessions = tuple(d.date() for d in base.bars["session"])

    def with_market(**changes: object) -> Case:
        market = dataclasses.replace(base, **changes)  # type: ignore[arg-type]
        return factories.intent(), factories.pack(market=market)

    features = base.features.copy()
    features.loc[features.index[-1], "rsi_14"] = math.nan
    return [
        with_market(missing_sessions=sessions[:3]),  # 1.2% of 250: LOW when strict
        with_market(missing_sessions=sessions[:10]),  # 4%: LOW by default
        with_market(missing_sessions=sessions[:60]),  # 24%: MEDIUM
        with_market(missing_sessions=sessions[:1], window_sessions=32),  # 3.125%: a half
        with_market(missing_sessions=sessions[:3], window_sessions=0),  # no window, no gap
        with_market(sessions_since_last_bar=3),  # MEDIUM
        with_market(sessions_since_last_bar=6,  # HIGH, a bar close with microseconds
                    last_bar_close=base.last_bar_close + timedelta(microseconds=1500)),
        with_market(features=features.drop(columns=["adx_14"])),  # two missing
        (factories.intent(timeframe=Timeframe.H1), factories.pack(
            timeframe=Timeframe.H1, market=factories.market(n_bars=30, sessions_since_last_bar=2,
                                                    with_features=False))),  # all missing
    ]


def test_overrides_the_row_by_row_default() -> None:
    assert DataQualityEvaluator.evaluate_batch is not Evaluator.evaluate_batch


@pytest.mark.parametrize("config", [None, STRICT], ids=["default", "strict"])
def test_batch_equals_scalar_on_all_cases(config: dict | None, all_cases: list[Case]) -> None:
    batch = check(DataQualityEvaluator(config), all_cases)
    codes = set(batch.issues["code"])
    assert {"STALE_DATA", "MISSING_FEATURES", "SHORT_HISTORY"} <= codes
    if config is STRICT:
        assert (batch.issues["code"] == "SHORT_HISTORY").sum() == len(batch)


@pytest.mark.parametrize("config", [None, STRICT], ids=["default", "strict"])
def test_batch_equals_scalar_on_edge_cases(config: dict | None, all_cases: list[Case]) -> None:
    batch = check(DataQualityEvaluator(config), [*edge_cases(), *all_cases[:20]])
    pairs = set(zip(batch.issues["code"], batch.issues["severity"], strict=True))
    assert {("STALE_DATA", "medium"), ("STALE_DATA", "high"), ("DATA_GAPS", "low"),
            ("DATA_GAPS", "medium"), ("MISSING_FEATURES", "medium"),
            ("SHORT_HISTORY", "low")} <= pairs


def test_batch_on_no_rows(all_cases: list[Case]) -> None:
    from buddy.batch.context import from_packs

    ctx = from_packs([i for i, _ in all_cases[:3]], [p for _, p in all_cases[:3]])
    batch = DataQualityEvaluator().evaluate_batch(ctx.take(np.array([], dtype=np.int64)))
    assert len(batch) == 0 and batch.issues.empty


def test_py_round_is_pythons_round() -> None:
    rng = np.random.default_rng(3)
    halves = (np.arange(-2000, 2000) + 0.5) / 100  # x.xx5: the products land near a half
    values = np.concatenate([halves, np.arange(0, 3000) / 800, rng.normal(0, 50, 5000),
                             [0.0, -0.0, 1e300, -1e300, 2.675, 1.005, math.nan, math.inf]])
    for digits in (1, 2, 4):
        got = py_round(values, digits)
        want = [round(v, digits) if math.isfinite(v) else v for v in values.tolist()]
        assert [g == w or (math.isnan(g) and math.isnan(w))
                for g, w in zip(got.tolist(), want, strict=True)] == [True] * len(values)


def test_isoformat_writes_as_datetime_and_timestamp_do() -> None:
    times = pd.Series(pd.to_datetime(["2005-02-28T21:00:00", "2005-02-28T21:00:00.001500",
                                      "1969-12-31T23:59:59.000000001"],
                                     utc=True, format="ISO8601"))
    assert isoformat(times, pandas=True).tolist() == [t.isoformat() for t in times]
    micro = times.iloc[:2]
    assert isoformat(micro, pandas=False).tolist() == [
        t.to_pydatetime().isoformat() for t in micro]
    local = micro.dt.tz_convert("America/New_York")
    assert isoformat(local, pandas=True).tolist() == [t.isoformat() for t in local]


def test_distinct_numbers_combinations_in_order_of_appearance() -> None:
    first, inverse = distinct(np.array([3, 1, 3, 1, 3]),
                              np.array(["a", None, "a", "b", "b"], dtype=object))
    assert first.tolist() == [0, 1, 3, 4]
    assert inverse.tolist() == [0, 1, 0, 2, 3]
