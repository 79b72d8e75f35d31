"""A copy of the sample store the command-line edge tests may write to (built once)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from buddy.store import Store


@pytest.fixture(scope="package")
def edge_db(sample_store: Store, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return the path of a private copy of the sample store."""
    path = tmp_path_factory.mktemp("cli-edges") / "buddy.duckdb"
    shutil.copy(sample_store.path, path)
    return path
