"""Whole-table reads of the batch context build: cached per process while the file is
unchanged (never served from a changed file, cut point-in-time after the read), and the MTFA
piece's short-circuit when a stack timeframe has no bars at all.

A small synthetic store: two symbols, daily bars only (the stock stack's weekly timeframe has
no bars), with features.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from buddy.batch.context import INSTRUMENT_FIELDS
from buddy.batch.pieces import BatchPieceRequest
from buddy.context.pack import Instrument
from buddy.jobs.features import run_features_job
from buddy.jobs.load import synth_into
from buddy.mtfa.provider import mtfa_provider
from buddy.store import Store, tables
from buddy.store.bars import all_bars, bars_closed_by, features_closed_by, instrument_row
from buddy.timeframes import Timeframe


@pytest.fixture(scope="module")
def daily_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """Two synthetic symbols x 1.5 years of daily bars with features."""
    store = Store(Path(tmp_path_factory.mktemp("reads")) / "daily.duckdb")
    synth_into(store, n_symbols=2, years=1.5, timeframe=Timeframe.D1, seed=5)
    run_features_job(store, progress=False)
    return store


def _copy(store: Store, root: Path) -> Store:
    target = root / "copy.duckdb"
    target.write_bytes(store.path.read_bytes())
    return Store(target)


# ---------------------------------------------------------------------------- the cache
def test_reads_equal_the_point_in_time_queries(daily_store: Store) -> None:
    symbol = str(daily_store.tickers()["symbol"].iloc[0])
    closes = daily_store.bars(symbol, "1d")["ts_close"]
    for as_of in (closes.iloc[0] - pd.Timedelta(seconds=1), closes.iloc[0], closes.iloc[200],
                  closes.iloc[200] + pd.Timedelta(hours=5), closes.iloc[-1]):
        expected = daily_store.bars(symbol, "1d", as_of=as_of.to_pydatetime())
        got = bars_closed_by(daily_store, symbol, "1d", as_of)
        # DuckDB types an empty result's text columns as object: compare values then
        pd.testing.assert_frame_equal(got, expected, check_dtype=len(expected) > 0)
        assert (got["ts_close"] <= as_of).all()
        expected = daily_store.features(symbol, "1d", as_of=as_of.to_pydatetime())
        pd.testing.assert_frame_equal(features_closed_by(daily_store, symbol, "1d", as_of),
                                      expected, check_dtype=len(expected) > 0)
    assert instrument_row(daily_store, symbol) == daily_store.instrument(symbol)
    assert instrument_row(daily_store, "NOT_A_SYMBOL") is None


def test_one_read_while_the_file_is_unchanged(daily_store: Store) -> None:
    tables.clear()
    first = all_bars(daily_store)
    assert all_bars(daily_store) is first


def test_a_write_is_never_served_from_the_cache(daily_store: Store, tmp_path: Path) -> None:
    store = _copy(daily_store, tmp_path)
    symbol = str(store.tickers()["symbol"].iloc[0])
    before = bars_closed_by(store, symbol, "1d", pd.Timestamp("2100-01-01", tz="UTC"))
    last = before.iloc[[-1]].copy()
    last["ts"] = last["ts"] + pd.Timedelta(days=7)
    last["ts_close"] = last["ts_close"] + pd.Timedelta(days=7)
    last["session"] = last["session"] + pd.Timedelta(days=7)
    last["close"] = 123.25
    store.write_market_data(bars=last)  # the store's own write: the stamp moves
    after = bars_closed_by(store, symbol, "1d", pd.Timestamp("2100-01-01", tz="UTC"))
    assert len(after) == len(before) + 1 and after["close"].iloc[-1] == 123.25
    # a write through a connection is seen once the writer moves the stamp, as every
    # writer of context data does
    with store.transaction() as con:
        con.execute("UPDATE bars SET close = 77.5 WHERE symbol = ? AND ts = ?",
                    [symbol, after["ts"].iloc[-1].to_pydatetime()])
    store.touch_context_stamp()
    again = bars_closed_by(store, symbol, "1d", pd.Timestamp("2100-01-01", tz="UTC"))
    assert again["close"].iloc[-1] == 77.5
    pd.testing.assert_frame_equal(
        again, store.bars(symbol, "1d", as_of=pd.Timestamp("2100-01-01", tz="UTC")))


def test_a_file_replaced_at_the_same_path_is_read_again(daily_store: Store,
                                                         tmp_path: Path) -> None:
    store = _copy(daily_store, tmp_path)
    assert len(all_bars(store).spans) == 2
    other = Store(tmp_path / "other.duckdb")
    synth_into(other, n_symbols=1, years=0.5, timeframe=Timeframe.D1, seed=9)
    stamp = store.context_stamp()
    os.replace(other.path, store.path)  # a new file; the stamp beside the path is unchanged
    assert store.context_stamp() == stamp
    assert set(all_bars(store).spans) == {(s, "1d") for s in store.tickers()["symbol"]}
    assert len(all_bars(store).spans) == 1


def test_a_write_outside_the_context_keeps_the_cache(daily_store: Store,
                                                     tmp_path: Path) -> None:
    store = _copy(daily_store, tmp_path)
    first = all_bars(store)
    with store.transaction() as con:  # e.g. a replay run writing its results
        con.execute("CREATE TABLE scratch AS SELECT 1 AS x")
    assert all_bars(store) is first


def test_a_read_from_another_file_is_not_served_from_the_cache(daily_store: Store,
                                                               tmp_path: Path) -> None:
    other = Store(tmp_path / "other.duckdb")
    synth_into(other, n_symbols=1, years=0.5, timeframe=Timeframe.D1, seed=9)
    all_bars(daily_store)
    mine = set(all_bars(other).spans)
    assert mine == {(s, "1d") for s in other.tickers()["symbol"]}
    assert set(all_bars(daily_store).spans) != mine


# ---------------------------------------------------------------------------- MTFA
def _request(store: Store, rows: list[tuple[str, pd.Timestamp]]) -> BatchPieceRequest:
    intents = pd.DataFrame({"user_id": "u", "symbol": [s for s, _ in rows], "timeframe": "1d",
                            "as_of": pd.to_datetime([t for _, t in rows], utc=True)})
    instruments = [dataclasses.asdict(Instrument.from_row(store.instrument(s)))
                   for s, _ in rows]
    return BatchPieceRequest(store=store, intents=intents,
                             instrument=pd.DataFrame(instruments,
                                                     columns=list(INSTRUMENT_FIELDS)),
                             market=pd.DataFrame(index=range(len(rows))),
                             market_data=lambda i: None)


def test_mtfa_short_circuit_gives_the_scalar_pieces(daily_store: Store) -> None:
    """Every row of a stack whose weekly timeframe has no bars: before the first bar,
    during the features' warm-up, on clean daily bars, and long after the last bar (stale
    daily), each with the reason the row-by-row provider gives."""
    rows = []
    for symbol in daily_store.tickers()["symbol"]:
        closes = daily_store.bars(str(symbol), "1d")["ts_close"]
        stamps = [closes.iloc[0] - pd.Timedelta(days=3), closes.iloc[0], closes.iloc[5],
                  closes.iloc[30] + pd.Timedelta(hours=1), closes.iloc[120], closes.iloc[-1],
                  closes.iloc[-1] + pd.Timedelta(days=40), closes.iloc[120]]
        rows += [(str(symbol), t) for t in stamps]
    request = _request(daily_store, rows)
    assert not len(daily_store.bars(rows[0][0], "1w"))
    pieces, reasons = mtfa_provider.batch(request)
    for i in range(len(request)):
        piece, reason = mtfa_provider(request.request(i))
        assert pieces[i] is None and piece is None
        assert reasons[i] == reason, (i, reasons[i], reason)
    texts = " ".join(reasons)
    assert "1w: no bar closed" in texts and "(stale)" in texts
    assert "undefined on the last closed bar" in texts or "no feature row" in texts
    # rows with equal requests get equal reasons; a clean daily bar adds no daily problem
    assert reasons[4] == reasons[7]
    assert "1d:" not in reasons[4]
    assert np.all([r.startswith("MTFA stack 1w/1d of ") for r in reasons])


def test_the_account_piece_follows_a_user_write(daily_store: Store, tmp_path: Path) -> None:
    from buddy.users.provider import account_provider
    from buddy.users.store import set_user

    store = _copy(daily_store, tmp_path)
    symbol = str(store.tickers()["symbol"].iloc[0])
    request = _request(store, [(symbol, pd.Timestamp("2024-01-02", tz="UTC"))] * 3)
    pieces, reasons = account_provider.batch(request)
    assert pieces[0] is None and reasons[0] is not None and "no account" in reasons[0]
    set_user(store, "u", equity=50_000.0, base_currency="USD")
    pieces, _ = account_provider.batch(request)
    assert pieces[0].account.equity_snapshot == 50_000.0 and pieces[0] is pieces[2]
    assert account_provider.batch(request)[0][0] is pieces[0]  # one read per process
    set_user(store, "u", equity=75_000.0)
    assert account_provider.batch(request)[0][0].account.equity_snapshot == 75_000.0
