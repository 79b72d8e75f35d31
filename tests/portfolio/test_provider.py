"""The ``portfolio`` piece (buddy.portfolio.provider) on the demo trader: the book held just
before t (the intent's own fill at t left out) marked at t, its figures equal to the
PortfolioState's, the batch form equal to the scalar one row by row, a user without fills
or statement "not checked", and the cache keyed by the store's state."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from buddy.batch.builder import build_batch_context
from buddy.portfolio.provider import PortfolioPiece, PortfolioProvider
from buddy.portfolio.state import portfolio_state
from buddy.store import Store

#: The demo trader's logged MSFT long: it buys 1,639 MSFT at this close, holding GOOG and IBM.
T = pd.Timestamp("2013-02-22T21:00Z")


def _piece(store: Store, symbol: str, t: pd.Timestamp = T,
           provider: PortfolioProvider | None = None) -> PortfolioPiece:
    benchmark = "SP500" if symbol != "EURUSD" else None
    piece, reason = (provider or PortfolioProvider()).piece_at(
        store, "demo", t.to_pydatetime(), symbol, benchmark)
    assert piece is not None, reason
    return piece


def test_the_book_is_held_before_t_and_marked_at_t(portfolio_demo: Store) -> None:
    piece = _piece(portfolio_demo, "MSFT")
    state = portfolio_state(portfolio_demo, "demo", T)
    assert state is not None
    # at t the fill of the MSFT intent is in the state; the idea is judged without it
    assert state.position_in("MSFT") == 1639.0
    assert piece.position_in("MSFT") == 0.0
    assert piece.held == ("GOOG", "IBM")
    assert piece.symbols == ("GOOG", "IBM", "MSFT")
    assert piece.cand_index == 2
    held = state.positions.set_index("symbol").loc[["GOOG", "IBM"]]
    np.testing.assert_allclose(piece.weights[:2], held["weight_pct"] / 100.0)
    np.testing.assert_allclose(piece.open_risk[:2], held["open_risk_pct"] / 100.0)
    assert piece.weights[2] == 0.0 and piece.open_risk[2] == 0.0
    assert piece.equity == 100_000.0 and piece.currency == "USD"
    # the returns are the state's, point-in-time, with each column's benchmark beside it
    frame = state.returns(["MSFT", "SP500"])
    np.testing.assert_array_equal(piece.returns, frame[["GOOG", "IBM", "MSFT"]].to_numpy())
    for k in range(3):
        np.testing.assert_array_equal(piece.benchmark_returns[:, k],
                                      frame["SP500"].to_numpy())
    assert frame.index.max() <= T.tz_localize(None)
    assert 240 <= len(frame) <= 253 and piece.window == "1 year of daily log returns"


def test_fx_has_no_benchmark_column(portfolio_demo: Store) -> None:
    piece = _piece(portfolio_demo, "EURUSD", pd.Timestamp("2017-06-15T14:00Z"))
    assert piece.symbols[-1] == "EURUSD"
    assert not piece.has_benchmark[-1]
    assert np.isnan(piece.benchmark_returns[:, -1]).all()


def test_batch_equals_the_scalar_answers(portfolio_demo: Store) -> None:
    rows = [("demo", "MSFT", T), ("demo", "IBM", T), ("demo", "MSFT", T),
            ("nobody", "AAPL", T), ("demo", "AAPL", pd.Timestamp("2012-06-01T20:00Z"))]
    intents = pd.DataFrame({
        "intent_id": [f"i{k}" for k in range(len(rows))],
        "user_id": [r[0] for r in rows], "symbol": [r[1] for r in rows],
        "side": "long", "timeframe": "1d", "as_of": [r[2] for r in rows],
        "proposed_entry": 100.0, "proposed_stop": 95.0, "proposed_target": 110.0,
        "proposed_size": 10.0, "holding_horizon": 10, "order_type": "limit",
        "status": "submitted"})
    batch = build_batch_context(portfolio_demo, intents,
                                providers={"portfolio": PortfolioProvider()})
    pieces, missing = batch.piece("portfolio"), batch.missing["portfolio"]
    assert pieces[0] is pieces[2]  # the same (user, t, symbol): one piece
    scalar = PortfolioProvider()
    for k, (user, symbol, t) in enumerate(rows):
        want, reason = scalar.piece_at(portfolio_demo, user, t.to_pydatetime(), symbol,
                                       "SP500")
        if want is None:
            assert pieces[k] is None and missing[k] == reason
            continue
        got = pieces[k]
        assert missing[k] is None
        assert got.symbols == want.symbols and got.window == want.window
        for name in ("weights", "open_risk", "has_benchmark", "returns",
                     "benchmark_returns"):
            np.testing.assert_array_equal(getattr(got, name), getattr(want, name))


def test_no_fills_and_no_statement_is_not_checked(portfolio_demo: Store) -> None:
    piece, reason = PortfolioProvider().piece_at(portfolio_demo, "nobody",
                                                 T.to_pydatetime(), "AAPL", "SP500")
    assert piece is None
    assert reason is not None and "no broker fills and no positions statement" in reason


def test_a_write_to_the_store_is_a_new_piece(demo_store_copy: Callable[[], Store]) -> None:
    store = demo_store_copy()
    provider = PortfolioProvider()
    first = _piece(store, "IBM", provider=provider)
    assert _piece(store, "IBM", provider=provider) is first  # cached
    assert first.equity is None  # no equity on record yet
    from buddy.store.portfolio import record_equity

    record_equity(store, "demo", pd.Timestamp("2000-01-03T00:00Z").to_pydatetime(),
                  100_000.0, "USD", "test")
    again = _piece(store, "IBM", provider=provider)
    assert again is not first and again.equity == pytest.approx(100_000.0)
