"""A writable copy of the sample data per test, and a Store that counts the connections it
opens (through its one opening method, ``Store._open``: the real DuckDB file, nothing patched)."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest

from buddy.store import Store


class CountingStore(Store):
    """A Store recording each connection it opens: True for read-only, False for read-write."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        self.opened: list[bool] = []
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def _open(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        self.opened.append(read_only)
        return super()._open(read_only)


@pytest.fixture
def store_copy(sample_store: Store, tmp_path: Path) -> CountingStore:
    """Return a counting store over a private copy of the sample data (nothing opened yet)."""
    path = tmp_path / "buddy.duckdb"
    shutil.copy(sample_store.path, path)
    store = CountingStore(path)
    store.opened.clear()  # the schema check at construction is not the evaluation's
    return store
