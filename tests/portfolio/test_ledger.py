"""Positions as of t sliced from one grouping of the fills (``PositionLedger``) equal a regroup
of the fills by t (the oracle below: the trade history's own ``build_trade_rows`` over every
fill by t, intent and stop known by t, all on t's split basis), at and just before many t:
exactly at fills, a microsecond around them, at the demo trader's intents, between fills;
with partial fills, a fill crossing zero, a stop given by hand later, and a split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from buddy.portfolio.positions import (
    BASE_COLUMNS,
    FillInputs,
    basis_divisor,
    positions_from_fills,
)
from buddy.portfolio.state import (
    DAILY_1Y,
    WEEKLY_2Y,
    PortfolioState,
    ReturnsWindow,
    portfolio_state_with_reason,
    weekly_closes,
)
from buddy.store import Store
from buddy.store.core import insert_frame
from buddy.store.fills import insert_fills
from buddy.store.trades import read_trades
from buddy.trades.service import build_trade_rows, rebuild_trades

TICK = pd.Timedelta(microseconds=1)


def regroup_at(store: Store, inputs: FillInputs, t: pd.Timestamp, *, before: bool = False
               ) -> pd.DataFrame:
    """Return the open positions (BASE_COLUMNS, by symbol) of a regroup of every fill by t
    (``before``: strictly before t) on t's split basis: the oracle."""
    times = pd.to_datetime(inputs.fills["ts"], utc=True)
    fills = inputs.fills[(times < t) if before else (times <= t)].copy()
    last = t - TICK if before else t
    for symbol in set(fills["symbol"]):
        rows = fills.index[fills["symbol"] == symbol]
        divisor = basis_divisor(store, symbol, fills.loc[rows, "ts"], t)
        fills.loc[rows, "price"] = fills.loc[rows, "price"].to_numpy(np.float64) / divisor
        fills.loc[rows, "qty"] = fills.loc[rows, "qty"].to_numpy(np.float64) * divisor
    intents = inputs.intents
    if len(intents):
        intents = intents[(pd.to_datetime(intents["as_of"], utc=True) <= last).to_numpy()
                          ].reset_index(drop=True)
        for symbol in set(intents["symbol"]):
            rows = intents.index[intents["symbol"] == symbol]
            divisor = basis_divisor(store, symbol, intents.loc[rows, "as_of"], t)
            for column in ("proposed_entry", "proposed_stop", "proposed_target"):
                intents.loc[rows, column] = intents.loc[rows, column] / divisor
    stops = {}
    for trade_id, stop, given_at, symbol in inputs.user_stops.itertuples(index=False):
        if pd.Timestamp(given_at) <= last:
            stops[str(trade_id)] = float(stop) / (
                1.0 if not isinstance(symbol, str)
                else float(basis_divisor(store, symbol, [given_at], t)[0]))
    trades, _, _ = build_trade_rows(fills, {"intents": intents, "user_stops": stops,
                                            "multipliers": inputs.multipliers, "tags": {}},
                                    now=t)
    open_trades = trades[trades["status"] == "open"].sort_values("symbol")
    return pd.DataFrame({
        "symbol": open_trades["symbol"].astype(str).to_numpy(object),
        "qty": open_trades["open_position"].to_numpy(np.float64),
        "avg_price": open_trades["open_cost_basis"].to_numpy(np.float64),
        "open_ts": pd.DatetimeIndex(pd.to_datetime(open_trades["open_ts"], utc=True)),
        "stop": open_trades["initial_stop"].astype("float64").to_numpy(),
        "stop_source": open_trades["r_source"].astype(str).to_numpy(object),
        "trade_id": open_trades["trade_id"].astype(str).to_numpy(object)})


def assert_same_book(store: Store, inputs: FillInputs, t: pd.Timestamp, *,
                     cold: bool = True) -> int:
    """Assert the ledger's book equals the oracle's at t and just before t, from the whole
    history's grouping and (``cold``) from a cold read as of t; return the number of
    positions compared."""
    compared = 0
    for before in (False, True):
        want = regroup_at(store, inputs, t, before=before)
        # the whole history grouped once, and (cold) only what a first t asks for
        for read_cold in (False, True)[:1 + cold]:
            ours = (positions_from_fills(store, inputs.user_id, t, before=before)
                    if read_cold else inputs.ledger(store, t).positions(t, before=before))
            where = f"at {t} (before={before}, cold={read_cold})"
            assert list(ours.columns) == list(BASE_COLUMNS)
            assert list(ours["symbol"]) == list(want["symbol"]), where
            assert list(ours["trade_id"]) == list(want["trade_id"]), where
            assert list(ours["stop_source"]) == list(want["stop_source"]), where
            np.testing.assert_array_equal(ours["qty"], want["qty"], err_msg=where)
            np.testing.assert_allclose(ours["avg_price"], want["avg_price"], rtol=1e-12,
                                       err_msg=where)
            np.testing.assert_allclose(ours["stop"], want["stop"], rtol=1e-12, err_msg=where)
            assert (pd.DatetimeIndex(ours["open_ts"]).as_unit("ns")
                    == pd.DatetimeIndex(want["open_ts"]).as_unit("ns")).all(), where
            compared += len(ours)
    return compared


def test_slices_equal_a_regroup_on_the_demo_trader(portfolio_demo: Store) -> None:
    inputs = FillInputs.read(portfolio_demo, "demo")
    fill_times = np.unique(pd.DatetimeIndex(pd.to_datetime(inputs.fills["ts"], utc=True)))
    intent_times = np.unique(pd.DatetimeIndex(pd.to_datetime(inputs.intents["as_of"],
                                                             utc=True)))
    rng = np.random.default_rng(20)
    at_fills = [pd.Timestamp(t) for t in rng.choice(fill_times, 4, replace=False)]
    times = sorted({*at_fills, at_fills[0] + TICK, at_fills[1] - TICK,
                    *(pd.Timestamp(t) for t in rng.choice(intent_times, 2, replace=False)),
                    pd.Timestamp(rng.choice(fill_times)) + pd.Timedelta(hours=30),
                    pd.Timestamp("2005-02-25T21:00Z"), pd.Timestamp("2005-03-01T21:00Z")})
    compared = sum(assert_same_book(portfolio_demo, inputs, t, cold=k % 3 == 0)
                   for k, t in enumerate(times))
    assert compared >= 8  # the demo trader holds a few symbols at most of these times
    # one grouping per split basis: AAPL's 2000 and 2005 splits make at most three
    assert 1 <= sum(1 for k in inputs.memo if k[0] == "ledger") <= 3


def _fills(rows: list[tuple[str, str, str, float, float]]) -> pd.DataFrame:
    """Return canonical fills of user u1 from (ISO time, symbol, side, qty, price)."""
    frame = pd.DataFrame([
        {"user_id": "u1", "account": "U1", "symbol": symbol, "ts": pd.Timestamp(ts),
         "side": side, "qty": qty, "price": price, "commission": 1.0, "fees": 0.0,
         "currency": "USD", "exec_id": f"e{n}", "source": "test", "source_file": "t.csv",
         "source_row": n + 1, "open_close": None, "order_id": None, "venue": None,
         "imported_at": pd.Timestamp("2026-01-01T00:00Z")}
        for n, (ts, symbol, side, qty, price) in enumerate(rows)])
    for column in ("ts", "imported_at"):
        frame[column] = frame[column].astype("datetime64[us, UTC]")
    return frame


@pytest.fixture
def partial(sample_db: Path) -> Store:
    """Return a store with u1's AAPL and MSFT fills: scale-ins and partial exits, a sale that
    crosses from long to short, two fills at one time, a round trip across AAPL's 2005
    split, an intent for the first trade and a stop given by hand for the short."""
    store = Store(sample_db)
    fills = _fills([
        ("2005-02-14T15:00Z", "AAPL", "buy", 100, 80.0),
        ("2005-02-15T15:00Z", "AAPL", "buy", 50, 82.5),
        ("2005-02-16T15:00Z", "AAPL", "sell", 30, 84.0),
        ("2005-02-16T15:00Z", "AAPL", "sell", 20, 84.1),      # same time: arrival order
        ("2005-02-22T15:00Z", "AAPL", "buy", 25, 88.0),
        ("2005-03-02T15:00Z", "AAPL", "sell", 300, 45.0),     # after the 2:1 split: crosses
        ("2005-03-04T15:00Z", "AAPL", "buy", 40, 43.0),
        ("2005-03-08T15:00Z", "AAPL", "buy", 10, 42.0),       # flat again
        ("2005-02-15T16:00Z", "MSFT", "sell", 200, 25.0),
        ("2005-02-18T16:00Z", "MSFT", "buy", 80, 25.2),
        ("2005-02-24T16:00Z", "MSFT", "sell", 10, 25.1)])
    intent = pd.DataFrame([{
        "intent_id": "i1", "user_id": "u1", "symbol": "AAPL", "side": "long",
        "timeframe": "1d", "proposed_entry": 80.2, "proposed_stop": 76.0,
        "proposed_target": 90.0, "proposed_size": 100.0, "proposed_risk_amount": None,
        "holding_horizon": 10, "order_type": "limit", "exit_template": None,
        "as_of": pd.Timestamp("2005-02-14T14:00Z"), "created_at": pd.Timestamp(
            "2026-01-01T00:00Z"), "status": "submitted"}])
    with store.transaction() as con:
        insert_fills(con, fills)
        insert_frame(con, "trade_intents", intent)
    rebuild_trades(store, "u1")
    short = read_trades(store, "u1").query("symbol == 'MSFT'").iloc[0]
    with store.transaction() as con:  # given while the short was open
        insert_frame(con, "trade_user_stops", pd.DataFrame([{
            "user_id": "u1", "trade_id": str(short["trade_id"]), "stop": 26.0,
            "given_at": pd.Timestamp("2005-02-17T12:00Z")}]))
    store.touch_context_stamp()
    return store


def test_slices_equal_a_regroup_through_partial_fills_a_crossing_and_a_split(
        partial: Store) -> None:
    inputs = FillInputs.read(partial, "u1")
    fill_times = sorted(set(pd.to_datetime(inputs.fills["ts"], utc=True)))
    # every fill's time, a microsecond after the same-time sales, the crossing and the
    # last fill, a microsecond before the first fill and the crossing
    times = sorted({*fill_times, *(fill_times[k] + TICK for k in (3, 7, 9)),
                    *(fill_times[k] - TICK for k in (0, 7)), pd.Timestamp("2005-02-17T12:00Z"),
                    pd.Timestamp("2005-02-28T00:00Z"), pd.Timestamp("2005-02-27T23:00Z"),
                    pd.Timestamp("2005-03-20T00:00Z")})
    assert sum(assert_same_book(partial, inputs, t, cold=k % 2 == 0)
               for k, t in enumerate(times)) >= 25
    # spot checks of what the oracle says at a few moments
    ledger = inputs.ledger(partial, pd.Timestamp("2005-02-16T15:00Z"))
    at = ledger.positions(pd.Timestamp("2005-02-16T15:00Z"))
    aapl = at.set_index("symbol").loc["AAPL"]
    assert aapl["qty"] == 100.0  # both sales at that time count
    assert aapl["avg_price"] == pytest.approx((50 * 80.0 + 50 * 82.5) / 100)  # FIFO
    assert aapl["stop"] == 76.0 and aapl["stop_source"] == "intent"
    assert ledger.positions(pd.Timestamp("2005-02-16T15:00Z"), before=True).set_index(
        "symbol").loc["AAPL", "qty"] == 150.0
    msft = at.set_index("symbol").loc["MSFT"]
    assert msft["qty"] == -200.0 and msft["stop_source"] == "none"  # not given yet
    later = ledger.positions(pd.Timestamp("2005-02-17T12:00Z")).set_index("symbol")
    assert later.loc["MSFT", "stop"] == 26.0 and later.loc["MSFT", "stop_source"] == "user"
    after_split = pd.Timestamp("2005-03-02T15:00Z")
    crossed = inputs.ledger(partial, after_split).positions(after_split).set_index("symbol")
    assert crossed.loc["AAPL", "qty"] == -50.0  # 2 x 125 held, 300 sold
    assert crossed.loc["AAPL", "avg_price"] == 45.0
    assert sum(1 for k in inputs.memo if k[0] == "ledger") == 2  # one per split basis


def test_the_book_before_t_at_an_ex_date_midnight_is_on_ts_basis(partial: Store) -> None:
    ex_date = pd.Timestamp("2005-02-28T00:00Z")  # AAPL 2:1, the position held over it
    inputs = FillInputs.read(partial, "u1")
    before = inputs.ledger(partial, ex_date).positions(ex_date, before=True)
    day_before = inputs.ledger(partial, ex_date - TICK).positions(ex_date - TICK)
    row = before.set_index("symbol").loc["AAPL"]
    assert row["qty"] == 2 * day_before.set_index("symbol").loc["AAPL", "qty"]


def test_without_fills_the_ledger_is_empty(sample_store: Store) -> None:
    inputs = FillInputs.read(sample_store, "nobody")
    t = pd.Timestamp("2010-01-04T21:00Z")
    book = inputs.ledger(sample_store, t).positions(t)
    assert book.empty and list(book.columns) == list(BASE_COLUMNS)


def plain_returns(state: PortfolioState, symbols: list[str], window: ReturnsWindow
                  ) -> pd.DataFrame:
    """Return the returns frame by plain pandas alignment (the oracle of ``returns``)."""
    ordered = list(dict.fromkeys((*state.symbols, *state.extra_symbols, *symbols)))
    start = (state.as_of.tz_convert("UTC").tz_localize(None).normalize()
             - pd.Timedelta(days=365.25 * window.years))
    columns = {}
    for s in ordered:
        closes = state.daily_closes(s)
        if window.frequency == "weekly":
            closes = weekly_closes(closes, state.as_of)
        values = np.log(closes.to_numpy()[1:] / closes.to_numpy()[:-1])
        series = pd.Series(values, index=closes.index[1:], dtype="float64")
        columns[s] = series[series.index > start]
    return pd.DataFrame(columns, columns=ordered).sort_index()


@pytest.mark.parametrize("window", [DAILY_1Y, WEEKLY_2Y, ReturnsWindow("daily", 5.0)],
                         ids=["daily-1y", "weekly-2y", "daily-5y"])
def test_returns_equal_a_plain_alignment(portfolio_demo: Store, window: ReturnsWindow
                                         ) -> None:
    inputs = FillInputs.read(portfolio_demo, "demo")
    for t in ("2001-03-05T21:00Z", "2005-02-28T00:00Z", "2013-02-22T21:00Z",
              "2017-06-15T14:00Z"):
        state, _ = portfolio_state_with_reason(portfolio_demo, "demo", t, inputs=inputs,
                                               before=True)
        assert state is not None
        for symbols in (["MSFT", "SP500"], ["EURUSD"], ["NOSUCH"]):
            got = state.returns(symbols, window=window)
            pd.testing.assert_frame_equal(got, plain_returns(state, symbols, window),
                                          check_freq=False)
            assert got.empty or got.index.max() <= state.as_of.tz_localize(None)


def test_the_book_before_the_first_fill_is_flat_and_from_the_fills(partial: Store) -> None:
    first = pd.Timestamp("2005-02-14T15:00Z")
    inputs = FillInputs.read(partial, "u1")
    for source in (inputs, None):  # the fill history read once, or read as of t
        before, _ = portfolio_state_with_reason(partial, "u1", first, inputs=source,
                                                before=True)
        at, _ = portfolio_state_with_reason(partial, "u1", first, inputs=source)
        assert before is not None and at is not None
        assert before.source == at.source == "fills"
        assert before.positions.empty and before.heat_pct == 0.0
        assert at.position_in("AAPL") == 100.0
        assert list(before.positions.columns) == list(at.positions.columns)
    earlier, reason = portfolio_state_with_reason(partial, "u1", first - TICK, before=True)
    assert earlier is None and reason is not None and "no broker fills" in reason


def test_a_position_held_across_a_split_is_open_though_its_raw_quantities_net_to_zero(
        sample_db: Path) -> None:
    # 100 bought before AAPL's 2:1 split are 200 after it: selling 100 leaves 100 open
    store = Store(sample_db)
    with store.transaction() as con:
        insert_fills(con, _fills([("2005-02-22T15:00Z", "AAPL", "buy", 100, 80.0),
                                  ("2005-03-02T15:00Z", "AAPL", "sell", 100, 45.0)]))
    t = pd.Timestamp("2005-03-03T21:00Z")
    for inputs in (None, FillInputs.read(store, "u1")):  # cold, and the history read once
        book = positions_from_fills(store, "u1", t, inputs=inputs)
        assert list(book["qty"]) == [100.0] and list(book["avg_price"]) == [40.0]
    assert_same_book(store, FillInputs.read(store, "u1"), t)
