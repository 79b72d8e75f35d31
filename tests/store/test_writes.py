"""Bulk writes are atomic; short-lived connections let two processes share the file."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from buddy.store import Store
from buddy.store.core import vacuum_deferred


def _bars(symbol: str, n: int, start: str = "2020-01-01") -> pd.DataFrame:
    ts = pd.date_range(start, periods=n, freq="D", tz="UTC")
    return pd.DataFrame({
        "symbol": symbol, "timeframe": "1d", "ts": ts, "ts_close": ts + pd.Timedelta(hours=6),
        "session": ts.tz_localize(None).normalize(), "open": 10.0, "high": 11.0, "low": 9.0,
        "close": 10.5, "volume": 1000.0, "adj_close": float("nan")})


def _ticker(symbol: str, tick_size: float = 0.01) -> pd.DataFrame:
    return pd.DataFrame([{
        "symbol": symbol, "name": symbol, "asset_class": "equity", "exchange": "XNYS",
        "currency": "USD", "sector": None, "tick_size": tick_size, "lot_size": 1.0,
        "contract_multiplier": 1.0, "trading_calendar": "XNYS", "benchmark": None,
        "timezone": "America/New_York", "source": "test", "licence": "test"}])


def test_bars_round_trip_and_rewrite_is_idempotent(empty_store: Store) -> None:
    bars = _bars("AAA", 50)
    empty_store.write_market_data(tickers=_ticker("AAA"), bars=bars)
    empty_store.write_market_data(tickers=_ticker("AAA"), bars=bars)
    back = empty_store.bars("AAA", "1d")
    assert len(back) == 50
    assert back["ts"].dt.tz is not None
    assert (back["ts"].reset_index(drop=True) == bars["ts"]).all()


def test_a_failed_write_writes_nothing(empty_store: Store) -> None:
    before = empty_store.market_data_version()
    bad_features = _bars("BBB", 10)[["symbol", "timeframe", "ts"]].assign(not_a_column=1.0)
    with pytest.raises(ValueError, match="unknown columns"):
        # tickers and bars go in first; the features frame fails inside the same transaction
        empty_store.write_market_data(tickers=_ticker("BBB"), bars=_bars("BBB", 10),
                                      features=bad_features)
    assert empty_store.query("SELECT count(*) AS n FROM bars").iloc[0, 0] == 0
    assert empty_store.query("SELECT count(*) AS n FROM tickers").iloc[0, 0] == 0
    assert empty_store.market_data_version() == before


def test_a_check_constraint_failure_rolls_back(empty_store: Store) -> None:
    with pytest.raises(duckdb.ConstraintException):
        empty_store.write_market_data(tickers=_ticker("DDD", 0.0), bars=_bars("DDD", 3))
    assert empty_store.query("SELECT count(*) FROM bars").iloc[0, 0] == 0


def test_market_writes_bump_the_context_stamp(empty_store: Store) -> None:
    before = empty_store.context_stamp()
    empty_store.write_market_data(tickers=_ticker("CCC"), bars=_bars("CCC", 5))
    assert empty_store.context_stamp() != before


def _worker(path: str, symbol: str, rounds: int, queue: mp.Queue) -> None:
    try:
        store = Store(path, lock_timeout_s=60)
        for i in range(rounds):
            store.write_market_data(bars=_bars(symbol, 5, start=f"2020-{i + 1:02d}-01"))
            n = store.query("SELECT count(*) FROM bars WHERE symbol = ?", [symbol]).iloc[0, 0]
            assert n == 5 * (i + 1), n
        queue.put(("ok", symbol))
    except Exception as exc:  # report to the parent instead of dying silently
        queue.put(("error", f"{symbol}: {type(exc).__name__}: {exc}"))


def test_two_processes_use_the_same_file_in_turn(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.duckdb")
    Store(path).write_market_data(tickers=pd.concat([_ticker("P1"), _ticker("P2")]))
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(path, s, 12, queue)) for s in ("P1", "P2")]
    for p in procs:
        p.start()
    results = [queue.get(timeout=180) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert all(status == "ok" for status, _ in results), results
    counts = Store(path).query("SELECT symbol, count(*) AS n FROM bars GROUP BY symbol "
                               "ORDER BY symbol")
    assert counts["n"].tolist() == [60, 60]


def test_checkpoints_in_a_vacuum_deferred_block_keep_each_commits_row_group(
        empty_store: Store) -> None:
    """Each transaction's close checkpoints the file. Inside ``vacuum_deferred`` the
    checkpoint leaves every commit's small row group as it is (a replay's chunk writes pay no
    rewrite of them); after the block DuckDB vacuums again, and the next checkpoint merges
    them. The setting is the instance's, back to DuckDB's default after the block."""
    with empty_store.transaction() as con:
        con.execute("CREATE TABLE appended (x INTEGER, y VARCHAR)")

    def append() -> None:
        with empty_store.transaction() as con:
            con.execute("INSERT INTO appended SELECT range, range::VARCHAR FROM range(1000)")

    def row_groups() -> int:
        return int(empty_store.query("SELECT count(DISTINCT row_group_id) AS n FROM "
                                     "pragma_storage_info('appended')")["n"][0])

    def vacuum_tasks() -> int:
        return int(empty_store.query("SELECT current_setting('max_vacuum_tasks') AS v")["v"][0])

    default = vacuum_tasks()
    append()
    with vacuum_deferred(), vacuum_deferred():  # nested: the outer block decides
        assert vacuum_tasks() == 0
        before = row_groups()
        for _ in range(3):
            append()
        kept = row_groups()
    assert kept == before + 3
    assert vacuum_tasks() == default > 0
    append()
    assert row_groups() < kept + 1
    assert int(empty_store.query("SELECT count(*) AS n FROM appended")["n"][0]) == 5000
