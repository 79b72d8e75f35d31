"""The key-levels job: rows equal compute_key_levels, runs are incremental and idempotent, a
version change rewrites a series, and two worker processes write what one does."""

from __future__ import annotations

import pandas as pd
import pytest

from buddy.jobs.levels import run_levels_job
from buddy.levels.compute import LEVELS_VERSION, compute_key_levels, levels_table
from buddy.store import Store

SERIES = [("IBM", "1d"), ("IBM", "1w"), ("AAPL", "1d"), ("EURUSD", "4h")]
STORED = ("SELECT symbol, timeframe, ts, prior_day_high, prior_day_low, prior_day_close, "
          "pivots_json AS pivots, anchored_vwap_levels_json AS vwaps, "
          "rolling_range_high, rolling_range_low, support_resistance_json AS sr, "
          "version FROM key_levels ORDER BY symbol, timeframe, ts")


def make_store(sample_store: Store, path, *, until: str | None = None) -> Store:
    store = Store(path)
    symbols = sorted({s for s, _ in SERIES})
    pairs = " OR ".join(f"(symbol = '{s}' AND timeframe = '{t}')" for s, t in SERIES)
    bars = sample_store.query(f"SELECT * FROM bars WHERE ({pairs})"
                              + (" AND ts_close <= ?" if until else ""),
                              [pd.Timestamp(until)] if until else None)
    store.write_market_data(
        tickers=sample_store.query(f"SELECT * FROM tickers WHERE symbol IN "
                                   f"({', '.join(repr(s) for s in symbols)})"),
        bars=bars, corporate_actions=sample_store.corporate_actions("AAPL"))
    return store


@pytest.fixture(scope="module")
def job_store(sample_store: Store, tmp_path_factory: pytest.TempPathFactory) -> Store:
    store = make_store(sample_store, tmp_path_factory.mktemp("job") / "buddy.duckdb")
    result = run_levels_job(store, workers=1, progress=False)
    n_bars = int(store.query("SELECT count(*) FROM bars").iloc[0, 0])
    assert (result.series, result.series_updated, result.rows_written) == (4, 4, n_bars)
    return store


def test_stored_rows_hold_exactly_what_compute_returns(job_store: Store) -> None:
    bars = job_store.bars("AAPL", "1d")
    frame = compute_key_levels(bars, actions=job_store.corporate_actions("AAPL"))
    stored = job_store.query(STORED)
    stored = stored[(stored["symbol"] == "AAPL") & (stored["timeframe"] == "1d")]
    assert len(stored) == len(frame)
    assert (stored["ts"].to_numpy() == frame["ts"].to_numpy()).all()
    for name in ("prior_day_high", "rolling_range_low"):
        pd.testing.assert_series_equal(stored[name].reset_index(drop=True), frame[name],
                                       check_names=False)
    expected = levels_table(frame)
    for i in (0, 30, 1234, len(frame) - 1):
        row = stored.iloc[i]
        # typed columns: every nested value as computed, bit for bit
        pivots = None if row["pivots"] is pd.NA else row["pivots"]  # a NULL struct
        assert pivots == expected["pivots_json"][i].as_py()
        assert list(row["vwaps"]) == expected["anchored_vwap_levels_json"][i].as_py()
        assert list(row["sr"]) == expected["support_resistance_json"][i].as_py()
    assert (stored["version"] == LEVELS_VERSION).all()
    assert job_store.query("SELECT count(*) FROM key_levels WHERE computed_at IS NULL"
                           ).iloc[0, 0] == 0


def test_a_second_run_writes_nothing(job_store: Store) -> None:
    result = run_levels_job(job_store, workers=1, progress=False)
    assert (result.series, result.series_updated, result.rows_written) == (4, 0, 0)


def test_new_bars_add_only_their_rows_and_equal_a_full_run(sample_store: Store, job_store,
                                                          tmp_path) -> None:
    store = make_store(sample_store, tmp_path / "grow.duckdb", until="2008-06-30T21:00Z")
    first = run_levels_job(store, workers=1, progress=False)
    assert first.series_updated == 3  # EURUSD starts in 2017
    before = store.query("SELECT max(computed_at) FROM key_levels").iloc[0, 0]
    full = make_store(sample_store, tmp_path / "all.duckdb")
    store.write_market_data(bars=full.query("SELECT * FROM bars WHERE ts_close > "
                                            "'2008-06-30T21:00Z'"))
    new_bars = int(full.query("SELECT count(*) FROM bars WHERE ts_close > "
                              "'2008-06-30T21:00Z'").iloc[0, 0])
    second = run_levels_job(store, workers=1, progress=False)
    assert (second.series_updated, second.rows_written) == (4, new_bars)
    assert store.query("SELECT count(*) FROM key_levels WHERE computed_at <= ?",
                       [before]).iloc[0, 0] == first.rows_written
    pd.testing.assert_frame_equal(store.query(STORED), job_store.query(STORED))


def test_another_version_is_rewritten_whole(sample_store: Store, tmp_path) -> None:
    store = make_store(sample_store, tmp_path / "old.duckdb")
    run_levels_job(store, workers=1, progress=False, symbols=["ibm"], timeframes=["1w"])
    expected = store.query(STORED)
    with store.transaction() as con:
        con.execute("UPDATE key_levels SET version = '0.9.0', prior_day_high = NULL")
    result = run_levels_job(store, workers=1, progress=False, symbols=["IBM"],
                            timeframes=["1w"])
    assert (result.series, result.series_updated) == (1, 1)
    assert result.rows_written == len(expected)
    pd.testing.assert_frame_equal(store.query(STORED), expected)


def test_two_worker_processes_write_what_one_does(sample_store: Store, job_store,
                                                  tmp_path) -> None:
    store = make_store(sample_store, tmp_path / "two.duckdb")
    result = run_levels_job(store, workers=2, progress=False)
    assert result.series_updated == 4
    pd.testing.assert_frame_equal(store.query(STORED), job_store.query(STORED))
