"""rebuild_trades on a real DuckDB file: grouping, links, R, positions, idempotency."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from buddy.store import Store
from buddy.store.trades import read_positions, read_trade_fills, read_trades, set_user_stop
from buddy.trades.service import rebuild_trades
from tests.trades.conftest import T0, fill_rows, log_intent, write_fills


def test_rebuild_writes_trades_fills_positions_and_is_idempotent(empty_store: Store) -> None:
    write_fills(empty_store, fill_rows([(0, "buy", 100, 100.0, 1.0), (60, "sell", 100, 103.0, 1.0),
                                        (120, "buy", 50, 101.0)]))
    log_intent(empty_store, "i1", entry=100.2, stop=98.0)
    first = rebuild_trades(empty_store, "u1")
    trades = read_trades(empty_store, "u1")
    assert first.n_trades == 2 and first.n_open == 1 and first.n_positions == 1
    closed = trades.iloc[0]
    assert closed["linked_intent_id"] == "i1" and closed["r_source"] == "intent"
    assert closed["initial_risk"] == pytest.approx(2.0 * 100)  # |100 - 98| x 100 units
    assert closed["pnl"] == pytest.approx(300 - 2.0)
    assert closed["pnl_r"] == pytest.approx(298 / 200)
    assert closed["slippage_est"] == pytest.approx(100.0 - 100.2)  # better than planned
    assert closed["outcome_label"] == "win" and closed["match_method"] == "fifo"
    second = trades.iloc[1]
    assert second["status"] == "open" and pd.isna(second["pnl_r"])
    assert second["r_source"] == "none" and second["link_status"] == "none"
    positions = read_positions(empty_store, "u1")
    assert positions[["symbol", "qty", "avg_price"]].values.tolist() == [["AAPL", 50.0, 101.0]]

    parts = read_trade_fills(empty_store, "u1", trades["trade_id"].tolist())
    assert parts["fill_type"].tolist() == ["open", "close", "open"]
    again = rebuild_trades(empty_store, "u1")
    assert again == first
    retrades = read_trades(empty_store, "u1")
    assert retrades["trade_id"].tolist() == trades["trade_id"].tolist()
    pd.testing.assert_frame_equal(retrades.drop(columns="built_at"),
                                  trades.drop(columns="built_at"))


def test_a_stop_the_user_gives_sets_r_when_no_intent_is_linked(empty_store: Store) -> None:
    write_fills(empty_store, fill_rows([(0, "sell", 10, 50.0), (30, "buy", 10, 52.0)]))
    rebuild_trades(empty_store, "u1")
    (trade_id,) = read_trades(empty_store, "u1")["trade_id"]
    set_user_stop(empty_store, "u1", trade_id, 51.0)
    rebuild_trades(empty_store, "u1")
    trade = read_trades(empty_store, "u1").iloc[0]
    assert trade["r_source"] == "user" and trade["initial_stop"] == 51.0
    assert trade["pnl_r"] == pytest.approx(-20.0 / 10.0)
    assert trade["outcome_label"] == "loss"
    with pytest.raises(KeyError, match="trade_id"):
        set_user_stop(empty_store, "someone-else", trade_id, 51.0)


def test_two_intents_matching_one_trade_are_reported_not_picked(empty_store: Store) -> None:
    write_fills(empty_store, fill_rows([(0, "buy", 100, 100.0), (60, "sell", 100, 99.0)]))
    log_intent(empty_store, "i-a", entry=100.5, as_of=T0 - pd.Timedelta(hours=2))
    log_intent(empty_store, "i-b", entry=99.8, as_of=T0 - pd.Timedelta(hours=1))
    log_intent(empty_store, "i-far", entry=110.0)  # entry 10% away: not a candidate
    log_intent(empty_store, "i-short", side="short")  # other side: not a candidate
    summary = rebuild_trades(empty_store, "u1")
    trade = read_trades(empty_store, "u1").iloc[0]
    assert trade["link_status"] == "ambiguous" and trade["linked_intent_id"] is None
    assert json.loads(trade["link_candidates_json"]) == ["i-a", "i-b"]
    assert summary.ambiguous == {trade["trade_id"]: ("i-a", "i-b")}
    assert trade["r_source"] == "none" and pd.isna(trade["pnl_r"])


def test_rebuild_of_one_symbol_leaves_the_others_and_other_users_alone(
        empty_store: Store) -> None:
    write_fills(empty_store, pd.concat([
        fill_rows([(0, "buy", 1, 10.0)], symbol="AAPL"),
        fill_rows([(0, "buy", 2, 20.0)], symbol="MSFT"),
        fill_rows([(0, "buy", 3, 30.0)], symbol="AAPL", user="u2")], ignore_index=True))
    rebuild_trades(empty_store, "u1")
    rebuild_trades(empty_store, "u2")
    summary = rebuild_trades(empty_store, "u1", ["MSFT"], method="lifo")
    assert summary.symbols == ("MSFT",) and summary.n_trades == 1
    assert read_trades(empty_store, "u1")["match_method"].tolist() == ["fifo", "lifo"]
    assert read_trades(empty_store, "u2")["qty"].tolist() == [3.0]
