"""Migration 0012: replay outcomes gain the fill columns; a file labelled before it is
upgraded in SQL to say what its rows assumed (filled at the proposed entry at as_of). (0015
merges replay_outcomes into the wide replay_results: test_compact_migration.py.)"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from buddy.store import Store
from buddy.store.core import migrations
from replay.model import OUTCOME_COLUMNS

from .conftest import file_at_version

AS_OF = pd.Timestamp("2012-06-01T20:00Z")


def version_11_file(path: Path) -> None:
    """Write a file migrated to version 11 holding one replayed intent and its outcome."""
    con = file_at_version(path, 11)
    con.execute("INSERT INTO replay_intents VALUES ('r', 'i', 'u', 'AAPL', 'long', '1d', ?, "
                "560.99, 537.68, 607.62, 100, 20, 'limit', 'test', NULL)", [AS_OF])
    con.execute("INSERT INTO replay_outcomes VALUES ('r', 'i', 'target', ?, ?, 607.62, 2.0, "
                "-0.5, 2.0, 11.65, 46.63, 7, TRUE, 'simulated')",
                [AS_OF, AS_OF + pd.Timedelta(days=9)])
    con.close()


def _migrated_to_12(path: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(path))
    for version, name, sql in migrations():
        if version == 12:
            con.execute(sql)
            con.execute("INSERT INTO schema_migrations VALUES (?, ?, now())", [version, name])
    return con


def test_an_old_file_gains_the_fill_columns_filled_as_its_rows_assumed(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    version_11_file(path)
    con = _migrated_to_12(path)
    columns = [r[0] for r in con.execute("SELECT column_name FROM information_schema.columns "
                                         "WHERE table_name = 'replay_outcomes' "
                                         "ORDER BY ordinal_position").fetchall()]
    assert columns == ["run_id", *OUTCOME_COLUMNS]
    row = con.execute("SET TimeZone = 'UTC'").execute("SELECT * FROM replay_outcomes").df(
        ).iloc[0]
    con.close()
    assert bool(row["filled"]) and row["fill_ts"] == AS_OF and row["fill_price"] == 560.99
    assert row["realized_r"] == 2.0 and row["exit_reason"] == "target"


def test_an_old_file_upgrades_to_the_latest_schema(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    version_11_file(path)
    store = Store(path)
    applied = store.query("SELECT version FROM schema_migrations")["version"].tolist()
    assert {12, 13, 14, 15} <= set(applied)
    # the intent is kept (numbered); its outcome had no result row, so no wide row holds it
    assert store.query("SELECT intent_no FROM replay_intents")["intent_no"].tolist() == [0]
