"""DataQuality: each check fires on its case, and results are point-in-time."""

from __future__ import annotations

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
