"""The features job: incremental (only new bars are written) and idempotent."""

from __future__ import annotations

import pandas as pd

from buddy.features.ta import FEATURE_COLUMNS, compute_features
from buddy.jobs.features import run_features_job
from buddy.store import Store


def _load(store: Store, source: Store, symbol: str, until: str | None = None) -> None:
    sql = "SELECT * FROM bars WHERE symbol = ? AND timeframe = '1d'"
    params: list[object] = [symbol]
    if until:
        sql += " AND ts_close <= ?"
        params.append(pd.Timestamp(until))
    store.write_market_data(
        tickers=source.query("SELECT * FROM tickers WHERE symbol = ?", [symbol]),
        bars=source.query(sql, params),
        corporate_actions=source.query("SELECT * FROM corporate_actions WHERE symbol = ?",
                                       [symbol]))


def test_second_run_writes_nothing(sample_store: Store, tmp_path) -> None:
    store = Store(tmp_path / "f.duckdb")
    _load(store, sample_store, "MSFT")
    first = run_features_job(store, progress=False)
    before = store.query("SELECT * FROM ta_features ORDER BY ts")
    second = run_features_job(store, progress=False)
    assert first.rows_written == len(before) > 3000
    assert (second.series_updated, second.rows_written) == (0, 0)
    pd.testing.assert_frame_equal(before, store.query("SELECT * FROM ta_features ORDER BY ts"))


def test_new_bars_add_only_their_rows_equal_to_a_full_run(sample_store: Store, tmp_path) -> None:
    store = Store(tmp_path / "g.duckdb")
    _load(store, sample_store, "AAPL", until="2004-12-31T23:00Z")  # before the 2005 split
    run_features_job(store, progress=False)
    n_before = store.query("SELECT count(*) FROM ta_features").iloc[0, 0]
    _load(store, sample_store, "AAPL")  # the rest of the history arrives, split included
    result = run_features_job(store, progress=False)
    n_bars = store.query("SELECT count(*) FROM bars").iloc[0, 0]
    assert result.rows_written == n_bars - n_before
    stored = store.features("AAPL", "1d")
    full = compute_features(store.bars("AAPL", "1d"), store.corporate_actions("AAPL"))
    pd.testing.assert_frame_equal(
        stored[list(FEATURE_COLUMNS)].reset_index(drop=True),
        full[list(FEATURE_COLUMNS)].reset_index(drop=True), rtol=1e-12)
