"""A store holding the tickers of tests/events/test_import.py and an events file."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from buddy.events.store import import_events
from buddy.store import Store
from tests.events.test_import import TICKERS


def store_with_events(folder: Path, events_csv: str) -> Store:
    """Return a new store in ``folder`` with the tickers and ``events_csv`` imported (as
    known on 2024-01-01)."""
    store = Store(folder / "buddy.duckdb")
    store.write_market_data(tickers=TICKERS)
    path = folder / "events.csv"
    path.write_text(events_csv)
    import_events(store, path, now=pd.Timestamp("2024-01-01T00:00Z").to_pydatetime())
    return store
