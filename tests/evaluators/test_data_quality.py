"""DataQuality: each check fires on its case, and results are point-in-time."""

from __future__ import annotations

import dataclasses
from typing import Any

import pandas as pd
import pytest

from buddy.context.builder import ContextPackBuilder
from buddy.evaluators.data_quality import DataQualityConfig, DataQualityEvaluator
from buddy.store import Store
from buddy.timeframes import Timeframe
from tests import factories

from .test_point_in_time_cases import PIT_POINTS


def _codes(result) -> set[str]:
    return {i.code for i in result.issues}


def test_clean_data_raises_nothing() -> None:
    result = DataQualityEvaluator().evaluate(factories.intent(), factories.pack())
    assert result.issues == () and result.score == 100.0


def test_stale_data_names_the_sessions() -> None:
    ctx = factories.pack(market=factories.market(sessions_since_last_bar=3))
    (issue,) = DataQualityEvaluator().evaluate(factories.intent(), ctx).issues
    assert issue.code == "STALE_DATA"
    assert issue.fact("sessions_since_last_bar").value == 3
    assert issue.fact("sessions_since_last_bar").threshold == 1


def test_missing_features_short_history_and_gaps() -> None:
    gaps = tuple(pd.Timestamp("2012-01-02").date() + pd.Timedelta(days=i) for i in range(10))
    ctx = factories.pack(market=factories.market(n_bars=50, with_features=False,
                                                 missing_sessions=gaps))
    result = DataQualityEvaluator().evaluate(factories.intent(), ctx)
    assert _codes(result) == {"MISSING_FEATURES", "SHORT_HISTORY", "DATA_GAPS"}
    gap = next(i for i in result.issues if i.code == "DATA_GAPS")
    assert gap.fact("gap_pct").value == pytest.approx(20.0)
    assert gap.fact("period").value == "sessions"


def _weekly(store: Store, as_of: str) -> tuple[Any, Any]:
    t = pd.Timestamp(as_of).to_pydatetime()
    intent = factories.intent(symbol="AAPL", timeframe=Timeframe.W1, as_of=t)
    return intent, ContextPackBuilder(store).build("u", "AAPL", Timeframe.W1, t)


def test_weekly_bars_are_counted_in_weeks(sample_store: Store) -> None:
    """A weekly bar covers its week's sessions: a complete weekly history has no gap and a
    Wednesday evaluation after last Friday's bar is not stale (counted in sessions, four of
    five sessions looked missing and two sessions had closed since the bar)."""
    intent, pack = _weekly(sample_store, "2012-06-06T20:00:00+00:00")  # a Wednesday
    assert pack.market is not None and len(pack.market.bars) > 100
    result = DataQualityEvaluator().evaluate(intent, pack)
    assert not _codes(result) & {"DATA_GAPS", "STALE_DATA"}
    facts = {f.name: f.value for f in result.explain_facts}
    assert facts["period"] == "weeks" and facts["gap_pct"] == 0.0
    assert facts["sessions_since_last_bar"] == 0
    # two weekly bars taken out of the window: two weeks of it have no bar
    bars = pack.market.bars.drop(index=pack.market.bars.index[[5, 40]])
    holed = dataclasses.replace(pack, market=dataclasses.replace(pack.market, bars=bars))
    facts = {f.name: f.value
             for f in DataQualityEvaluator().evaluate(intent, holed).explain_facts}
    window = len(pack.market.bars)
    assert facts["gap_pct"] == pytest.approx(round(100.0 * 2 / window, 2))
    gap = next(i for i in DataQualityEvaluator({"max_gap_pct": 0.1}).evaluate(
        intent, holed).issues if i.code == "DATA_GAPS")
    assert (gap.fact("n_missing_sessions").value, gap.fact("window_sessions").value,
            gap.fact("period").value) == (2, window, "weeks")
    # the last three weekly bars gone: the weeks of 05-14, 05-21 and 05-28 closed without one
    old = dataclasses.replace(pack, market=dataclasses.replace(
        pack.market, bars=pack.market.bars.iloc[:-3]))
    issue = next(i for i in DataQualityEvaluator().evaluate(intent, old).issues
                 if i.code == "STALE_DATA")
    assert issue.fact("sessions_since_last_bar").value == 3
    assert issue.fact("period").value == "weeks"


def test_every_code_declares_its_harm_and_none_claims_an_outcome() -> None:
    for code, spec in DataQualityEvaluator.codes.items():
        assert spec.harm and spec.measure is None and spec.kind == "issue", code


def test_thresholds_come_from_config() -> None:
    ctx = factories.pack(market=factories.market(sessions_since_last_bar=3))
    relaxed = DataQualityEvaluator(DataQualityConfig(max_stale_sessions=5))
    assert relaxed.evaluate(factories.intent(), ctx).issues == ()


@pytest.mark.parametrize(("symbol", "tf", "as_of"), PIT_POINTS)
def test_point_in_time(sample_store: Store, truncated_store, symbol, tf, as_of) -> None:
    t = pd.Timestamp(as_of).to_pydatetime()
    intent = factories.intent(symbol=symbol, timeframe=Timeframe(tf), as_of=t)
    full = ContextPackBuilder(sample_store).build("u", symbol, Timeframe(tf), t)
    cut = ContextPackBuilder(truncated_store(symbol, t)).build("u", symbol, Timeframe(tf), t)
    evaluator = DataQualityEvaluator()
    assert evaluator.evaluate(intent, full) == evaluator.evaluate(intent, cut)
