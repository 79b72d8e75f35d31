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

from buddy.batch.columns import distinct, iso_utc
from buddy.context.pack import ContextPack
from buddy.domain import TradeIntent
from buddy.evaluators.base import Evaluator
from buddy.evaluators.data_quality import DataQualityEvaluator
from buddy.testing import assert_rows_cover_codes as check
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


def test_iso_utc_writes_utc_with_a_fraction_only_where_there_is_one() -> None:
    times = pd.Series(pd.to_datetime(["2005-02-28T21:00:00", "2005-02-28T21:00:00.001500",
                                      None], utc=True, format="ISO8601"))
    assert iso_utc(times).tolist() == ["2005-02-28T21:00:00+00:00",
                                       "2005-02-28T21:00:00.001500+00:00", None]
    local = times.iloc[:1].dt.tz_convert("America/New_York")
    assert iso_utc(local).tolist() == ["2005-02-28T21:00:00+00:00"]


def test_distinct_numbers_combinations_in_order_of_appearance() -> None:
    first, inverse = distinct(np.array([3, 1, 3, 1, 3]),
                              np.array(["a", None, "a", "b", "b"], dtype=object))
    assert first.tolist() == [0, 1, 3, 4]
    assert inverse.tolist() == [0, 1, 0, 2, 3]


# The real cases (~440 packs built one by one) are a session fixture: one worker builds them.
pytestmark = pytest.mark.xdist_group("batch_cases")
