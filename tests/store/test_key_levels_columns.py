"""Migration 0011: key_levels' nested levels become typed columns; a file holding JSON rows
is converted in place, and a row the types cannot hold stops the upgrade with nothing changed."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from buddy.store import Store
from buddy.store.core import migrations

PIVOTS = {"classic": {"P": 10.5, "R1": 11.0, "R2": 11.75, "R3": 12.25, "S1": 9.75,
                      "S2": 9.25, "S3": 8.5},
          "fibonacci": {"P": 10.5, "R1": 10.882, "R2": 11.118, "R3": 11.5, "S1": 10.118,
                        "S2": 9.882, "S3": 9.5},
          "camarilla": {"R1": 10.4166666667, "R2": 10.5833333333, "R3": 10.75, "R4": 11.25,
                        "S1": 10.0833333333, "S2": 9.9166666667, "S3": 9.75, "S4": 9.25}}
VWAPS = [{"anchor": "session", "anchor_ts": "2005-02-28 14:30:00+00", "vwap": 0.1 + 0.2,
          "upper_1": 0.5, "lower_1": 0.25, "upper_2": 0.75, "lower_2": 0.125}]
LEVELS = [{"price": 44.86, "kind": "support", "touches": 3,
           "last_touch": "2005-01-03 14:30:00+00"}]


def version_10_file(path: Path, pivots: object) -> None:
    """Write a file migrated to version 10 holding one key_levels row in JSON."""
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR "
                "NOT NULL, applied_at TIMESTAMPTZ NOT NULL)")
    for version, name, sql in migrations():
        if version <= 10:
            con.execute(sql)
            con.execute("INSERT INTO schema_migrations VALUES (?, ?, now())", [version, name])
    con.execute("INSERT INTO key_levels VALUES ('AAPL', '1d', '2005-03-01 14:30:00+00', 45.1, "
                "44.0, 44.86, ?, ?, 46.2, 41.9, ?, now(), '1.0.0'), ('AAPL', '1d', "
                "'2005-03-02 14:30:00+00', NULL, NULL, NULL, NULL, '[]', NULL, NULL, '[]', "
                "now(), '1.0.0')", [json.dumps(pivots), json.dumps(VWAPS), json.dumps(LEVELS)])
    con.close()


def test_a_file_with_json_rows_upgrades_to_typed_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    version_10_file(path, PIVOTS)
    store = Store(path)  # opening migrates
    assert store.schema_version() >= 11
    columns = store.tables()["key_levels"]
    assert columns == ["symbol", "timeframe", "ts", "prior_day_high", "prior_day_low",
                       "prior_day_close", "pivots_json", "anchored_vwap_levels_json",
                       "rolling_range_high", "rolling_range_low", "support_resistance_json",
                       "computed_at", "version"]
    rows = store.query("SELECT *, pivots_json AS pivots, anchored_vwap_levels_json AS "
                       "anchored_vwap_levels, support_resistance_json AS support_resistance "
                       "FROM key_levels ORDER BY ts").to_dict("records")
    first, second = rows
    assert first["pivots"] == PIVOTS
    (vwap,) = first["anchored_vwap_levels"]
    assert vwap["vwap"] == 0.1 + 0.2  # bit for bit through the JSON text
    assert pd.Timestamp(vwap["anchor_ts"]) == pd.Timestamp("2005-02-28 14:30:00Z")
    (level,) = first["support_resistance"]
    assert (level["price"], level["kind"], level["touches"]) == (44.86, "support", 3)
    assert pd.Timestamp(level["last_touch"]) == pd.Timestamp("2005-01-03 14:30:00Z")
    assert first["prior_day_close"] == 44.86 and first["version"] == "1.0.0"
    assert second["pivots"] is None
    assert len(second["anchored_vwap_levels"]) == len(second["support_resistance"]) == 0
    types = dict(store.query("SELECT column_name, data_type FROM duckdb_columns() WHERE "
                             "table_name = 'key_levels'").itertuples(index=False))
    assert types["support_resistance_json"].startswith("STRUCT(price DOUBLE, kind VARCHAR")
    assert "JSON" not in " ".join(types.values())


def test_a_row_the_types_cannot_hold_stops_the_upgrade_with_nothing_changed(
        tmp_path: Path) -> None:
    path = tmp_path / "odd.duckdb"
    version_10_file(path, {**PIVOTS, "woodie": {"P": 1.0}})
    with pytest.raises(duckdb.Error, match="woodie"):
        Store(path)
    con = duckdb.connect(str(path), read_only=True)
    assert con.execute("SELECT max(version) FROM schema_migrations").fetchone() == (10,)
    assert con.execute("SELECT count(*) FROM key_levels WHERE pivots_json IS NOT NULL"
                       ).fetchone() == (1,)
    con.close()
