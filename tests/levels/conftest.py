"""Fixtures of the key-levels tests: the real sample series and a store with the job's rows."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from buddy.store import Store


@pytest.fixture(scope="session")
def levels_store(sample_store: Store, tmp_path_factory: pytest.TempPathFactory) -> Store:
    """Return a copy of the sample store with every series' key_levels rows written by the
    job (two worker processes); read-only by convention."""
    from buddy.jobs.levels import run_levels_job

    path = tmp_path_factory.mktemp("levels") / "buddy.duckdb"
    shutil.copy(sample_store.path, path)
    store = Store(path)
    run_levels_job(store, workers=2, progress=False)
    return store


@pytest.fixture(scope="session")
def sample_series(sample_store: Store):
    """Return a function (symbol, timeframe) -> (as-traded bars, the symbol's splits)."""
    cache: dict[tuple[str, str], tuple[pd.DataFrame, pd.DataFrame]] = {}

    def series(symbol: str, timeframe: str) -> tuple[pd.DataFrame, pd.DataFrame]:
        if (symbol, timeframe) not in cache:
            cache[(symbol, timeframe)] = (sample_store.bars(symbol, timeframe),
                                          sample_store.corporate_actions(symbol))
        return cache[(symbol, timeframe)]

    return series
