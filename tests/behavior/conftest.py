"""Shared fixtures of the behaviour tests.

``behavior_store``: a copy of the session's ``demo_store`` (the demo trader with its injected
behaviours) with the CLEAN trader (``demo-clean``: the same generator and seed, nothing
injected) loaded beside it and its entry facts refreshed; built once per session and worker
(about 8 s). Tests may write behaviour events into it (nothing else reads them); nothing
else may be changed.
"""

from __future__ import annotations

import shutil

import pytest

from buddy.store import Store


@pytest.fixture(scope="session")
def behavior_store(demo_store: Store, tmp_path_factory: pytest.TempPathFactory) -> Store:
    """Return a store with the demo trader and the clean trader (see the module docstring)."""
    from buddy.behavior.validation import ensure_clean_trader

    folder = tmp_path_factory.mktemp("behavior")
    path = folder / "buddy.duckdb"
    shutil.copy(demo_store.path, path)
    store = Store(path)
    ensure_clean_trader(store, "demo-clean")
    return store
