"""Migration 0012: replay outcomes gain the fill columns; a file labelled before it is
upgraded in SQL to say what its rows assumed (filled at the proposed entry at as_of)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from buddy.store import Store
from buddy.store.core import migrations
from replay.model import OUTCOME_COLUMNS

AS_OF = pd.Timestamp("2012-06-01T20:00Z")


def version_11_file(path: Path) -> None:
    """Write a file migrated to version 11 holding one replayed intent and its outcome."""
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR "
                "NOT NULL, applied_at TIMESTAMPTZ NOT NULL)")
    for version, name, sql in migrations():
        if version <= 11:
            con.execute(sql)
            con.execute("INSERT INTO schema_migrations VALUES (?, ?, now())", [version, name])
    con.execute("INSERT INTO replay_intents VALUES ('r', 'i', 'u', 'AAPL', 'long', '1d', ?, "
                "560.99, 537.68, 607.62, 100, 20, 'limit', 'test', NULL)", [AS_OF])
    con.execute("INSERT INTO replay_outcomes VALUES ('r', 'i', 'target', ?, ?, 607.62, 2.0, "
                "-0.5, 2.0, 11.65, 46.63, 7, TRUE, 'simulated')",
                [AS_OF, AS_OF + pd.Timedelta(days=9)])
    con.close()


def test_an_old_file_gains_the_fill_columns_filled_as_its_rows_assumed(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    version_11_file(path)
    store = Store(path)
    assert list(store.tables()["replay_outcomes"]) == ["run_id", *OUTCOME_COLUMNS]
    row = store.query("SELECT * FROM replay_outcomes").iloc[0]
    assert bool(row["filled"]) and row["fill_ts"] == AS_OF and row["fill_price"] == 560.99
    assert row["realized_r"] == 2.0 and row["exit_reason"] == "target"
    applied = store.query("SELECT version FROM schema_migrations")["version"].tolist()
    assert 12 in applied


def test_a_new_file_has_the_fill_columns_in_contract_order(tmp_path: Path) -> None:
    store = Store(tmp_path / "new.duckdb")
    assert list(store.tables()["replay_outcomes"]) == ["run_id", *OUTCOME_COLUMNS]
