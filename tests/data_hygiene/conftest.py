"""Shared fixtures of the data-hygiene tests: a real clean series and one real store."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path

import pandas as pd
import pytest

from buddy.data.sample import load_sample
from buddy.jobs.load import import_file_into
from buddy.store import Store

#: IBM daily bars, 2005-02-01 on: they hold the real -8% gap of 2005-04-15 (a 7.9x move).
CLEAN_START = "2005-02-01"
CLEAN_BARS = 100


@pytest.fixture(scope="session")
def clean_table() -> pd.DataFrame:
    """Return real IBM daily bars as a user's file would hold them (one row per session)."""
    bars = load_sample().bars
    ibm = bars[(bars["symbol"] == "IBM") & (bars["session"] >= pd.Timestamp(CLEAN_START))]
    ibm = ibm.head(CLEAN_BARS)
    return pd.DataFrame({
        "Date": pd.DatetimeIndex(ibm["session"]).strftime("%Y-%m-%d"),
        "Open": ibm["open"].to_numpy(), "High": ibm["high"].to_numpy(),
        "Low": ibm["low"].to_numpy(), "Close": ibm["close"].to_numpy(),
        "Volume": ibm["volume"].to_numpy(),
    })


def write_csv(table: pd.DataFrame, path: Path) -> Path:
    """Write ``table`` as a CSV bar file at ``path`` and return the path."""
    table.to_csv(path, index=False)
    return path


def import_options(**overrides: object) -> dict[str, object]:
    """Return the keyword options of ``import_file_into`` for a new daily equity."""
    options: dict[str, object] = {
        "symbol": "NEWCO", "timeframe": "1d", "tz": None, "calendar": "XNYS",
        "asset_class": "equity", "currency": "USD", "tick_size": 0.01, "lot_size": 1.0}
    options.update(overrides)
    return options


@cache
def _table_names(path: Path) -> tuple[str, ...]:
    return tuple(sorted(Store(path).tables()))


def table_contents(store: Store) -> dict[str, pd.DataFrame]:
    """Return, per table of ``store``, its row count and a digest of all its rows (sorted
    text of each row): every table compared in full, in one query (each query opens the
    file anew)."""
    digests = " UNION ALL ".join(
        f"SELECT '{name}' AS name, count(*) AS n, md5(coalesce(string_agg(CAST(t AS VARCHAR),"
        f" chr(10) ORDER BY CAST(t AS VARCHAR)), '')) AS digest FROM \"{name}\" t"
        for name in _table_names(store.path))
    frame = store.query(f"SELECT * FROM ({digests}) ORDER BY name")
    return {"tables": frame}


def assert_unchanged(before: dict[str, pd.DataFrame], after: dict[str, pd.DataFrame]) -> None:
    """Assert two ``table_contents`` are equal, table by table and row by row."""
    assert sorted(before) == sorted(after)
    for name in before:
        pd.testing.assert_frame_equal(after[name], before[name], obj=name)


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory, clean_table: pd.DataFrame) -> Store:
    """Return a real store holding one clean import (BASE): refused imports must leave it
    exactly as it is."""
    folder = tmp_path_factory.mktemp("hygiene")
    store = Store(folder / "buddy.duckdb")
    import_file_into(store, write_csv(clean_table, folder / "base.csv"),
                     **import_options(symbol="BASE"))  # type: ignore[arg-type]
    return store


@pytest.fixture(scope="session")
def store_baseline(store: Store) -> dict[str, pd.DataFrame]:
    """Return the contents of ``store`` after its one clean import: no test may change them."""
    return table_contents(store)


@pytest.fixture
def refused_leaves_store_unchanged(store: Store, store_baseline: dict[str, pd.DataFrame]
                                  ) -> Callable[[Callable[[], object]], Exception]:
    """Return a runner: it calls an import that must fail, asserts the store's tables are
    still as the clean import left them, and returns the exception."""
    def run(attempt: Callable[[], object]) -> Exception:
        with pytest.raises(ValueError) as caught:
            attempt()
        assert_unchanged(store_baseline, table_contents(store))
        return caught.value
    return run
