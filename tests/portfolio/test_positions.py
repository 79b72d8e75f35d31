"""Positions as of t from a user's fills (buddy.portfolio.positions, buddy.portfolio.state):
regrouped by the trade history's code, marked to the last closed daily bar on the split basis
of t, open risk to a known stop only, equity as of t, and no positions source said so."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from buddy.portfolio.snapshot import build_snapshot
from buddy.portfolio.state import portfolio_state, portfolio_state_with_reason
from buddy.store import Store
from buddy.store.bars import bars_closed_by
from buddy.store.fills import insert_fills
from buddy.store.portfolio import record_equity
from buddy.store.trades import read_trades, set_user_stop
from buddy.trades.service import rebuild_trades

USER = "u1"
# AAPL split 2:1 with ex-date 2005-02-28 (in the bundled corporate actions)
BEFORE_SPLIT = pd.Timestamp("2005-02-25T22:00Z")
AFTER_SPLIT = pd.Timestamp("2005-03-01T22:00Z")


def _fills(rows: list[tuple[str, str, float, float]]) -> pd.DataFrame:
    """Return canonical AAPL fills from (ISO time, side, qty, price)."""
    out = [{"user_id": USER, "account": "U1", "symbol": "AAPL", "ts": pd.Timestamp(ts),
            "side": side, "qty": qty, "price": price, "commission": 0.0, "fees": 0.0,
            "currency": "USD", "exec_id": f"e{n}", "source": "test", "source_file": "t.csv",
            "source_row": n + 1, "open_close": None, "order_id": None, "venue": None,
            "imported_at": pd.Timestamp("2026-01-01T00:00Z")}
           for n, (ts, side, qty, price) in enumerate(rows)]
    frame = pd.DataFrame(out)
    for column in ("ts", "imported_at"):
        frame[column] = frame[column].astype("datetime64[us, UTC]")
    return frame


@pytest.fixture
def traded(sample_db: Path) -> Store:
    """Return a store with user u1's AAPL fills around the 2005 split (trades rebuilt)."""
    store = Store(sample_db)
    fills = _fills([("2005-02-22T15:00Z", "buy", 100, 80.0),
                    ("2005-02-23T15:00Z", "buy", 50, 86.0),
                    ("2005-02-24T15:00Z", "sell", 30, 88.0),
                    ("2005-01-10T15:00Z", "buy", 10, 65.0),   # a closed round trip before
                    ("2005-01-11T15:00Z", "sell", 10, 66.0)])
    with store.transaction() as con:
        insert_fills(con, fills)
    rebuild_trades(store, USER)
    return store


def _aapl_close(store: Store, t: pd.Timestamp) -> float:
    return float(bars_closed_by(store, "AAPL", "1d", t).iloc[-1]["close"])


def test_positions_from_fills_are_marked_to_the_last_closed_daily_bar(traded: Store) -> None:
    record_equity(traded, USER, pd.Timestamp("2005-01-01T00:00Z").to_pydatetime(), 50_000.0,
                  "USD", "test")
    state = portfolio_state(traded, USER, BEFORE_SPLIT)
    assert state is not None and state.source == "fills"
    row = state.positions.iloc[0]
    assert list(state.positions["symbol"]) == ["AAPL"]
    assert row["qty"] == 120.0
    # FIFO: the 30 sold come out of the first 100 bought at 80
    assert row["avg_price"] == pytest.approx((70 * 80.0 + 50 * 86.0) / 120)
    mark = _aapl_close(traded, BEFORE_SPLIT)
    assert row["mark"] == pytest.approx(mark)
    assert row["mark_ts"] <= BEFORE_SPLIT
    assert row["weight_pct"] == pytest.approx(120 * mark / 50_000 * 100)
    assert row["unrealized_pnl"] == pytest.approx((mark - row["avg_price"]) * 120)
    assert state.equity == 50_000.0 and state.base_currency == "USD"
    # no stop known: the open risk is unknown, never 0, and the heat says what it left out
    assert math.isnan(row["stop"]) and math.isnan(row["open_risk"])
    assert row["stop_source"] == "none"
    assert state.unknown_risk_symbols == ("AAPL",)
    assert state.heat_pct == 0.0
    assert state.position_in("AAPL") == 120.0 and state.position_in("MSFT") == 0.0


def test_a_split_after_the_fills_puts_the_position_on_the_basis_of_t(traded: Store) -> None:
    before = portfolio_state(traded, USER, BEFORE_SPLIT)
    after = portfolio_state(traded, USER, AFTER_SPLIT)
    assert before is not None and after is not None
    b, a = before.positions.iloc[0], after.positions.iloc[0]
    assert a["qty"] == 2 * b["qty"]
    assert a["avg_price"] == pytest.approx(b["avg_price"] / 2)
    assert a["mark"] == pytest.approx(_aapl_close(traded, AFTER_SPLIT))  # traded post-split
    # the returns are on one basis: no -50% day at the split
    returns = after.returns()["AAPL"].dropna()
    assert returns.abs().max() < 0.25
    assert after.returns()["AAPL"].index.max() <= AFTER_SPLIT.tz_localize(None)


def test_a_stop_given_by_hand_counts_only_from_when_it_was_given(traded: Store) -> None:
    open_trade = read_trades(traded, USER, status="open").iloc[0]
    set_user_stop(traded, USER, str(open_trade["trade_id"]), 30.0)  # given now (2026)
    record_equity(traded, USER, pd.Timestamp("2005-01-01T00:00Z").to_pydatetime(), 50_000.0,
                  "USD", "test")
    then = portfolio_state(traded, USER, AFTER_SPLIT)
    assert then is not None and math.isnan(then.positions.iloc[0]["stop"])
    now = portfolio_state(traded, USER, pd.Timestamp.now(tz="UTC"))
    assert now is not None
    row = now.positions.iloc[0]
    # given today on today's basis (no split since): the loss from the mark to the stop
    assert row["stop"] == 30.0 and row["stop_source"] == "user"
    assert row["open_risk"] == pytest.approx(max(row["mark"] - 30.0, 0.0) * row["qty"])
    assert now.heat_pct == pytest.approx(row["open_risk"] / 50_000 * 100)
    assert now.unknown_risk_symbols == ()


def test_without_equity_as_of_t_every_percent_is_not_checked(traded: Store) -> None:
    state = portfolio_state(traded, USER, BEFORE_SPLIT)
    assert state is not None and state.equity is None
    assert math.isnan(state.positions.iloc[0]["weight_pct"]) and math.isnan(state.heat_pct)
    snapshot = build_snapshot(state)
    assert "equity" in snapshot.not_checked
    assert math.isnan(snapshot.gross_pct) and math.isnan(snapshot.vol_pct)
    assert math.isnan(snapshot.var_historical_pct)
    # the account's currency is unknown too: no amount in it either
    assert math.isnan(snapshot.gross_exposure)
    assert state.positions.iloc[0]["market_value"] > 0


def test_before_any_fill_or_statement_there_is_no_portfolio(traded: Store) -> None:
    state, reason = portfolio_state_with_reason(traded, USER, "2004-12-31T00:00Z")
    assert state is None and reason is not None and "no broker fills" in reason
    flat = portfolio_state(traded, USER, "2005-01-12T00:00Z")  # after the round trip: flat
    assert flat is not None and flat.positions.empty and flat.heat_pct == 0.0
