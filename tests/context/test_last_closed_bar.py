"""Every piece as of t reads the bar that closed at or before t, the one closing exactly at t
included, and never a bar still forming (issue #12, section 3): market data and features
(ContextPackBuilder and the batch builder), the regime snapshot (rule labels and the HMM
state of that bar), each MTFA timeframe's last closed bar, and the schedule's sessions ahead.

The points are real bars' closes in the bundled data: AAPL's 2012-06-01 session (a Friday:
its 1w bar closes at the same moment), IBM's Friday 2012-06-08, EURUSD's 14:00Z hour and a
01:00Z four-hour close (the 1h bar closes then too). One microsecond earlier that bar is
still forming and the previous one is the last closed. A store truncated at t (only bars
closed by t, features recomputed from them) gives the same pieces at t.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest

from buddy.batch.builder import build_batch_context
from buddy.context.builder import ContextPackBuilder
from buddy.context.pack import ContextPack
from buddy.events.provider import schedule_provider
from buddy.mtfa.provider import mtfa_provider
from buddy.regime.provider import regime_provider
from buddy.store import Store
from buddy.timeframes import Timeframe

#: (symbol, timeframe, the close of one of its bars)
EXACT_CLOSES = [
    ("AAPL", "1d", "2012-06-01T20:00Z"),
    ("IBM", "1d", "2012-06-08T20:00Z"),
    ("EURUSD", "1h", "2017-06-15T14:00Z"),
    ("EURUSD", "4h", "2017-11-03T01:00Z"),
]
ONE_TICK = pd.Timedelta(microseconds=1)


def providers() -> dict[str, Any]:
    return {"regime": regime_provider, "mtfa": mtfa_provider, "schedule": schedule_provider}


def last_closed_ts(store: Store, symbol: str, tf: str, t: pd.Timestamp) -> pd.Timestamp:
    """Return the open time of the last ``tf`` bar with ts_close <= t, read independently."""
    bars = store.bars(symbol, tf)
    closed = bars[pd.to_datetime(bars["ts_close"], utc=True) <= t]
    return pd.Timestamp(closed["ts"].iloc[-1])


def packs(store: Store, symbol: str, tf: str, t: pd.Timestamp) -> tuple[ContextPack,
                                                                        ContextPack]:
    builder = ContextPackBuilder(store, providers=providers())
    return (builder.build("u", symbol, Timeframe(tf), t.to_pydatetime()),
            builder.build("u", symbol, Timeframe(tf), (t - ONE_TICK).to_pydatetime()))


def intents(symbol: str, tf: str, times: list[pd.Timestamp], close: float) -> pd.DataFrame:
    n = len(times)
    return pd.DataFrame({
        "intent_id": [f"i{k}" for k in range(n)], "user_id": ["u"] * n, "symbol": [symbol] * n,
        "side": ["long"] * n, "timeframe": [tf] * n, "as_of": times,
        "proposed_entry": [close] * n, "proposed_stop": [close * 0.97] * n,
        "proposed_target": [close * 1.06] * n, "proposed_size": [1.0] * n,
        "holding_horizon": [10] * n, "order_type": ["limit"] * n, "source": ["test"] * n,
        "linked_trade_id": [None] * n})


@pytest.mark.parametrize(("symbol", "tf", "as_of"), EXACT_CLOSES)
def test_the_bar_closing_exactly_at_t_is_read_by_every_piece(
        sample_store: Store, symbol: str, tf: str, as_of: str) -> None:
    t = pd.Timestamp(as_of)
    bars = sample_store.bars(symbol, tf)
    closing = bars[pd.to_datetime(bars["ts_close"], utc=True) == t]
    assert len(closing) == 1, "the point must be a real bar's close"
    bar_ts = pd.Timestamp(closing["ts"].iloc[0])
    previous_ts = last_closed_ts(sample_store, symbol, tf, t - ONE_TICK)
    assert previous_ts < bar_ts

    at, before = packs(sample_store, symbol, tf, t)
    # market and features: the window ends on the bar closing at t
    assert at.market is not None and before.market is not None
    assert pd.Timestamp(at.market.bars["ts"].iloc[-1]) == bar_ts
    assert pd.Timestamp(at.market.last_bar_close) == t
    assert pd.Timestamp(at.market.features["ts"].iloc[-1]) == bar_ts
    assert pd.Timestamp(before.market.bars["ts"].iloc[-1]) == previous_ts
    # regime: the rule labels and the HMM state are those of that bar
    assert at.regime is not None and before.regime is not None
    assert pd.Timestamp(at.regime.ts) == bar_ts
    assert pd.Timestamp(before.regime.ts) == previous_ts
    assert at.regime.fitted_through is None or pd.Timestamp(at.regime.fitted_through) <= bar_ts
    # mtfa: each stack timeframe's last closed bar, the forming one never
    for pack, moment in ((at, t), (before, t - ONE_TICK)):
        assert pack.mtfa is not None, pack.missing.get("mtfa")
        for trend in pack.mtfa.stack:
            assert pd.Timestamp(trend.bar_ts) == last_closed_ts(
                sample_store, symbol, trend.timeframe, moment), (trend.timeframe, moment)
    own = [s for s in at.mtfa.stack if s.timeframe == tf]
    assert [pd.Timestamp(s.bar_ts) for s in own] == [bar_ts]
    # schedule: the session that closed at t is behind us, not ahead
    assert at.schedule is not None
    assert all(pd.Timestamp(close) > t for _, close in at.schedule.sessions)


@pytest.mark.parametrize(("symbol", "tf", "as_of"), EXACT_CLOSES)
def test_the_batch_builder_reads_the_same_bars_as_the_packs(
        sample_store: Store, symbol: str, tf: str, as_of: str) -> None:
    t = pd.Timestamp(as_of)
    at, before = packs(sample_store, symbol, tf, t)
    assert at.market is not None
    ctx = build_batch_context(sample_store, intents(symbol, tf, [t, t - ONE_TICK],
                                                    round(at.market.last_close, 2)),
                              providers=providers())
    last_close = pd.to_datetime(ctx.market["last_bar_close"], utc=True)
    assert last_close.iloc[0] == t
    assert last_close.iloc[1] == pd.Timestamp(before.market.last_bar_close)  # type: ignore[union-attr]
    data = ctx.bars.data
    for row, pack in ((0, at), (1, before)):
        window = data.iloc[ctx.bars.start[row]:ctx.bars.stop[row]]
        assert pack.market is not None
        assert pd.Timestamp(window["ts"].iloc[-1]) == pd.Timestamp(pack.market.bars["ts"].iloc[-1])
        assert ctx.pieces["regime"][row] == pack.regime
        assert ctx.pieces["mtfa"][row] == pack.mtfa
        assert ctx.pieces["schedule"][row] == pack.schedule


@pytest.mark.parametrize(("symbol", "tf", "as_of"), EXACT_CLOSES[:2])
def test_truncating_the_data_at_t_changes_nothing_at_t(
        sample_store: Store, truncated_store: Callable[[str, datetime], Store],
        symbol: str, tf: str, as_of: str) -> None:
    t = pd.Timestamp(as_of)
    full, _ = packs(sample_store, symbol, tf, t)
    cut = ContextPackBuilder(truncated_store(symbol, t.to_pydatetime()),
                             providers=providers()).build("u", symbol, Timeframe(tf),
                                                          t.to_pydatetime())
    assert full.market is not None and cut.market is not None
    pd.testing.assert_frame_equal(full.market.bars, cut.market.bars)
    pd.testing.assert_frame_equal(full.market.features, cut.market.features, rtol=1e-9)
    assert full.regime == cut.regime
    assert full.mtfa is not None and cut.mtfa is not None
    assert [s.bar_ts for s in full.mtfa.stack] == [s.bar_ts for s in cut.mtfa.stack]
    np.testing.assert_allclose([s.strength for s in full.mtfa.stack],
                               [s.strength for s in cut.mtfa.stack], rtol=1e-9)
    assert full.mtfa.alignment_score == pytest.approx(cut.mtfa.alignment_score, rel=1e-9)
    assert full.schedule == cut.schedule
