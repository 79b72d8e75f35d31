"""The schedule's batch read of the events table: each symbol gets its own events and the
market-wide ones, in the table's order (ts, event_id), the rows a mask per symbol picks."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from buddy.store import Store
from buddy.store.events import symbol_events
from tests.events.helpers import store_with_events
from tests.events.test_schedule import EVENTS_CSV as SCHEDULE_EVENTS_CSV

# the schedule tests' events and one more at the same instant for another symbol
EVENTS_CSV = (SCHEDULE_EVENTS_CSV
              + "other,2012-07-10T13:00Z,AAPL event at the same time,AAPL,2012-07-01T12:00Z\n")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return store_with_events(tmp_path_factory.mktemp("symbol_events"), EVENTS_CSV)


def _masked(every: pd.DataFrame, symbol: str) -> pd.DataFrame:
    """The oracle: the rows whose symbol is ``symbol`` or missing, in table order."""
    keep = (every["symbol"] == symbol).fillna(False) | every["symbol"].isna()
    return every[keep.to_numpy(bool)].reset_index(drop=True)


def test_each_symbol_gets_its_and_the_market_wide_events_in_table_order(store: Store) -> None:
    every = store.query("SELECT event_id, symbol, kind, ts, title, source, announced_at "
                        "FROM events ORDER BY ts, event_id")
    symbols = ["IBM", "AAPL", "MSFT", "IBM"]  # MSFT has none of its own; IBM twice
    found = symbol_events(store, symbols)
    assert [name for name, _ in found] == symbols
    for name, rows in found:
        pd.testing.assert_frame_equal(rows, _masked(every, name))
    titles = list(found[0][1]["title"])
    assert titles == ["IBM Q1 2012 earnings", "US nonfarm payrolls (June)",
                      "IBM investor day", "IBM Q2 2012 earnings", "FOMC statement"]
    assert list(found[2][1]["symbol"].isna()) == [True, True]


def test_no_events_at_all_gives_empty_frames(tmp_path: Path) -> None:
    empty = Store(tmp_path / "empty.duckdb")
    found = symbol_events(empty, ["IBM", "AAPL"])
    assert [(name, len(rows)) for name, rows in found] == [("IBM", 0), ("AAPL", 0)]
