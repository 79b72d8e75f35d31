"""Shared portfolio fixtures: the demo trader with its equity on record (built once)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from buddy.jobs.portfolio import DEMO_EQUITY_FROM
from buddy.store import Store
from buddy.store.portfolio import record_equity
from buddy.trades.demo_history import EQUITY

__all__ = ["DEMO_EQUITY_FROM"]


@pytest.fixture(scope="session")
def portfolio_demo(demo_store: Store, tmp_path_factory: pytest.TempPathFactory) -> Store:
    """Return a copy of ``demo_store`` with the demo account's equity (USD 100,000, the
    simulation's constant) on record from 2000-01-03 (read-only by convention)."""
    path = Path(tmp_path_factory.mktemp("portfolio_demo")) / "buddy.duckdb"
    shutil.copy(demo_store.path, path)
    store = Store(path)
    record_equity(store, "demo", DEMO_EQUITY_FROM.to_pydatetime(), EQUITY, "USD",
                  "demo account (simulated at constant equity)")
    return store
