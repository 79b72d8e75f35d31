"""ContextPackBuilder: point-in-time, split-aware, cached until the data changes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from buddy.context.builder import ContextPackBuilder
from buddy.store import Store
from buddy.timeframes import Timeframe

# (symbol, timeframe, as_of) points across the real data, including both sides of AAPL's
# 2005-02-28 2:1 split, FX hours and weekly bars.
POINTS = [
    ("AAPL", "1d", "2005-02-25T21:00Z"),
    ("AAPL", "1d", "2005-03-01T21:00Z"),
    ("AAPL", "1d", "2012-06-01T21:00Z"),
    ("AAPL", "1w", "2008-10-10T21:00Z"),
    ("MSFT", "1d", "2003-02-20T21:00Z"),
    ("IBM", "1d", "2001-09-20T21:00Z"),
    ("EURUSD", "1h", "2017-06-15T14:00Z"),
    ("EURUSD", "1h", "2017-03-26T23:30Z"),
    ("EURUSD", "4h", "2017-11-03T02:00Z"),
    ("SP500", "1d", "2008-09-15T21:00Z"),
]


@pytest.mark.parametrize(("symbol", "tf", "as_of"), POINTS)
def test_pack_at_t_equals_pack_from_data_truncated_at_t(sample_store: Store, truncated_store,
                                                        symbol: str, tf: str, as_of: str) -> None:
    t = pd.Timestamp(as_of).to_pydatetime()
    full = ContextPackBuilder(sample_store).build("u", symbol, Timeframe(tf), t)
    cut = ContextPackBuilder(truncated_store(symbol, t)).build("u", symbol, Timeframe(tf), t)
    assert full.market is not None and cut.market is not None
    assert (full.market.bars["ts_close"] <= pd.Timestamp(t)).all()
    pd.testing.assert_frame_equal(full.market.bars, cut.market.bars)
    pd.testing.assert_frame_equal(full.market.features, cut.market.features, rtol=1e-9)
    assert full.market.missing_sessions == cut.market.missing_sessions
    assert full.market.sessions_since_last_bar == cut.market.sessions_since_last_bar
    assert full.market.splits_applied == cut.market.splits_applied
    assert full.missing == cut.missing


def test_split_adjusted_to_the_as_of_basis(sample_store: Store) -> None:
    builder = ContextPackBuilder(sample_store, lookback_bars=10)
    before = builder.build("u", "AAPL", Timeframe.D1, pd.Timestamp("2005-02-25T21:00Z"))
    after = builder.build("u", "AAPL", Timeframe.D1, pd.Timestamp("2005-03-03T21:00Z"))
    raw = sample_store.bars("AAPL", "1d", as_of=pd.Timestamp("2005-03-03T21:00Z")).tail(10)
    # before the split the window is as traded; after it, earlier bars are halved
    assert before.market.last_close == pytest.approx(
        float(sample_store.bars("AAPL", "1d", as_of=pd.Timestamp("2005-02-25T21:00Z"))
              ["close"].iloc[-1]))
    pre_split = raw["session"] < pd.Timestamp("2005-02-28")
    np.testing.assert_allclose(after.market.bars["close"][pre_split.to_numpy()].to_numpy(),
                               raw["close"][pre_split].to_numpy() / 2)
    assert after.market.splits_applied[-1][1] == 2.0
    returns = np.diff(np.log(after.market.bars["close"].to_numpy()))
    assert np.abs(returns).max() < 0.2  # no -50% artefact


def test_cache_hits_until_a_write_invalidates(sample_store: Store, tmp_path) -> None:
    store = Store(tmp_path / "copy.duckdb")
    store.write_market_data(
        tickers=sample_store.query("SELECT * FROM tickers WHERE symbol = 'IBM'"),
        bars=sample_store.query("SELECT * FROM bars WHERE symbol = 'IBM' AND timeframe = '1d'"))
    builder = ContextPackBuilder(store)
    t = pd.Timestamp("2010-01-05T21:00Z")
    first = builder.build("u", "IBM", Timeframe.D1, t)
    assert builder.build("u", "IBM", Timeframe.D1, t) is first
    assert (builder.hits, builder.misses) == (1, 1)
    store.write_market_data(
        tickers=sample_store.query("SELECT * FROM tickers WHERE symbol = 'IBM'"))
    assert builder.build("u", "IBM", Timeframe.D1, t) is not first
    assert builder.misses == 2


def test_missing_pieces_carry_reasons(sample_store: Store) -> None:
    pack = ContextPackBuilder(sample_store).build("u", "IBM", Timeframe.D1,
                                                  pd.Timestamp("2010-01-05T21:00Z"))
    assert pack.regime is None and "regime" in pack.missing
    assert all(reason for reason in pack.missing.values())


def test_no_market_before_the_first_bar(sample_store: Store) -> None:
    pack = ContextPackBuilder(sample_store).build("u", "IBM", Timeframe.D1,
                                                  pd.Timestamp("1990-01-05T21:00Z"))
    assert pack.market is None and "no 1d bars of IBM" in pack.missing["market"]
