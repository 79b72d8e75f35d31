"""Session fixtures of the strategy tests: the demo trader's store with its entry facts.

``demo_store`` is a copy of ``sample_store`` with the demo trader's whole history (every
DEMO_SERIES, 881 trades) loaded through the broker import and its entry facts refreshed
(about 6 s once per session). Read-only by convention: a test that writes copies it first
(``demo_store_copy``).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from buddy.store import Store

DEMO_USER = "demo"


@pytest.fixture(scope="session")
def demo_store(sample_store: Store, tmp_path_factory: pytest.TempPathFactory) -> Store:
    """Return a store holding the bundled real data, the demo trader's history over every
    demo series and its entry facts (built once; read-only by convention)."""
    from buddy.jobs.strategy import refresh_entry_facts
    from buddy.trades.demo_history import load_demo_history

    folder = tmp_path_factory.mktemp("demo")
    path = folder / "buddy.duckdb"
    shutil.copy(sample_store.path, path)
    store = Store(path)
    load_demo_history(store, user_id=DEMO_USER, folder=folder / "files")
    refresh_entry_facts(store, DEMO_USER)
    return store


@pytest.fixture(scope="session")
def demo_facts(demo_store: Store) -> pd.DataFrame:
    """Return the demo trader's stored entry facts (read_entry_facts, every trade)."""
    from buddy.store.strategy import read_entry_facts

    return read_entry_facts(demo_store, DEMO_USER)


@pytest.fixture
def demo_store_copy(demo_store: Store, tmp_path: Path) -> Callable[[], Store]:
    """Return a factory of writable copies of ``demo_store`` (one file per call)."""
    made = 0

    def copy() -> Store:
        nonlocal made
        made += 1
        path = tmp_path / f"demo_copy_{made}.duckdb"
        shutil.copy(demo_store.path, path)
        return Store(path)

    return copy
