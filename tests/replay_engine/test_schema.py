"""The compact replay tables (migration 0015): integer keys, one wide row per intent, every
code numbered from the config, duplicates refused whole."""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from buddy.config import ScoringConfig, default_scoring_config
from buddy.evaluators import registry
from buddy.store import Store
from buddy.store.core import insert_frame
from buddy.store.replay_facts import FACT_COLUMNS
from replay.engine import (
    ORCHESTRATOR_CODES,
    ChunkRows,
    config_codes,
    config_numbering,
    write_chunk,
)
from replay.model import INTENT_COLUMNS, OUTCOME_COLUMNS

from .conftest import file_at_version


def test_the_replay_tables_hold_the_compact_columns(empty_store: Store) -> None:
    tables = empty_store.tables()
    assert set(INTENT_COLUMNS) | {"run_id", "intent_no"} == set(tables["replay_intents"])
    assert tables["replay_results"] == [
        "run_key", "intent_no", "overall_score", "verdict", "n_issues", "module_scores",
        "module_status", "module_severity", "module_n_issues", *OUTCOME_COLUMNS[1:]]
    assert tables["replay_issues"] == ["run_key", "intent_no", "module_no", "issue_no",
                                       "code_no", "severity", "facts_no"]
    assert tables["replay_facts"] == ["run_key", "facts_no", *FACT_COLUMNS]
    assert tables["replay_modules"] == ["run_key", "module_no", "module", "version"]
    assert tables["replay_codes"] == ["run_key", "code_no", "module", "code", "fact_names",
                                      "fact_units"]
    assert {"run_id", "run_key", "name", "config_name", "config_version", "config_hash",
            "config_json", "intent_source", "data_start", "data_end", "n_intents", "status",
            "created_at", "finished_at", "purpose"} <= set(tables["replay_runs"])
    assert not {"replay_module_results", "replay_outcomes"} & set(tables)
    types = empty_store.query(
        "SELECT table_name || '.' || column_name AS c, data_type FROM "
        "information_schema.columns WHERE table_name LIKE 'replay_%'").set_index("c")
    assert types.loc["replay_results.module_scores", "data_type"] == "DOUBLE[]"
    assert types.loc["replay_results.module_status", "data_type"] == "UTINYINT[]"
    assert types.loc["replay_issues.code_no", "data_type"] == "USMALLINT"
    assert types.loc["replay_modules.module_no", "data_type"] == "UTINYINT"


def test_code_numbers_come_from_the_config_alone() -> None:
    config = default_scoring_config()
    table = config_codes(config)
    assert table.equals(config_codes(default_scoring_config()))
    stored = [m["name"] for m in json.loads(config.to_json())["modules"]]
    round_trip = config_codes(ScoringConfig.from_json(config.to_json()))
    assert table.equals(round_trip)  # whatever order the config object holds
    codes = table.to_pandas()
    assert codes["code_no"].tolist() == list(range(len(codes)))
    for module in stored:
        block = codes[codes["module"] == module]
        declared = registry.get(module).codes
        assert block["code"].tolist() == [*ORCHESTRATOR_CODES, *declared]
        # each code carries the fact names and units its declaration gives
        for code, names, units in zip(block["code"], block["fact_names"], block["fact_units"],
                                      strict=True):
            if code in declared:
                assert list(names) == [e.name for e in declared[code].evidence]
                assert list(units) == [e.unit for e in declared[code].evidence]
    assert list(dict.fromkeys(codes["module"])) == stored


def _chunk(intent_nos: list[int], numbering_width: int) -> ChunkRows:
    n = len(intent_nos)
    lists = {name: pa.array([[value] * numbering_width] * n, pa.list_(type_))
             for name, value, type_ in (("module_scores", 50.0, pa.float64()),
                                        ("module_status", 0, pa.uint8()),
                                        ("module_severity", 1, pa.uint8()),
                                        ("module_n_issues", 1, pa.int16()))}
    results = pa.table({"intent_no": pa.array(intent_nos, pa.int32()),
                        "overall_score": pa.array([50.0] * n), "verdict":
                        pa.array([1] * n, pa.uint8()), "n_issues": pa.array([1] * n, pa.int16()),
                        **lists})
    issues = pa.table({"intent_no": pa.array(intent_nos, pa.int32()),
                       "module_no": pa.array([0] * n, pa.uint8()),
                       "issue_no": pa.array([0] * n, pa.uint16()),
                       "code_no": pa.array([2] * n, pa.uint16()),
                       "severity": pa.array([1] * n, pa.uint8()),
                       "evidence_json": pa.array(["[]"] * n)})
    return ChunkRows(chunk_no=0, results=results, issues=issues)


def _declare_code(store: Store) -> None:
    """Declare the code the chunks' issues carry (code_no 2 of run 1): typed evidence is
    written against the run's declared codes."""
    with store.transaction() as con:
        insert_frame(con, "replay_codes", pd.DataFrame({
            "run_key": [1], "code_no": [2], "module": ["m"], "code": ["C"]}))


def test_a_chunk_written_twice_is_refused_whole(empty_store: Store) -> None:
    """The issue table has no key of its own: the result row's key, written in the same
    transaction, refuses a second write of an intent, and nothing of that chunk is kept."""
    width = len(config_numbering(default_scoring_config()).modules)
    outcomes = pd.DataFrame({"intent_id": ["i"], "intent_no": [0], "exit_reason": ["stop"],
                             "entry_ts": [pd.Timestamp("2012-06-01T20:00Z")],
                             "exit_ts": [pd.NaT], "exit_price": [1.0], "realized_r": [-1.0],
                             "mae_r": [-1.0], "mfe_r": [0.0], "mae_price": [1.0],
                             "mfe_price": [0.0], "bars_held": [1], "win": [False],
                             "outcome_source": ["simulated"], "filled": [True],
                             "fill_ts": [pd.Timestamp("2012-06-01T20:00Z")],
                             "fill_price": [2.0]})
    _declare_code(empty_store)
    write_chunk(empty_store, 1, _chunk([0], width), outcomes)
    stored = empty_store.query("SELECT exit_reason, outcome_source, realized_r, exit_ts "
                               "FROM replay_results").iloc[0]
    assert (stored["exit_reason"], stored["outcome_source"], stored["realized_r"]) == (
        0, 0, -1.0)
    assert pd.isna(stored["exit_ts"])
    with pytest.raises(duckdb.ConstraintException):
        write_chunk(empty_store, 1, _chunk([1, 0], width), None)
    for table in ("replay_results", "replay_issues"):
        counted = empty_store.query(f"SELECT count(*) AS n FROM {table}")["n"].iloc[0]
        assert counted == 1, table


def test_an_unknown_outcome_value_is_refused_naming_it(empty_store: Store) -> None:
    from replay.engine import ReplayError

    width = len(config_numbering(default_scoring_config()).modules)
    outcomes = pd.DataFrame({column: [np.nan] for column in OUTCOME_COLUMNS})
    outcomes = outcomes.assign(intent_id="i", intent_no=0, exit_reason="gone",
                               outcome_source="simulated")
    with pytest.raises(ReplayError, match="exit_reason: 'gone'"):
        write_chunk(empty_store, 1, _chunk([0], width), outcomes)
    assert empty_store.query("SELECT count(*) AS n FROM replay_results")["n"].iloc[0] == 0


def test_a_run_status_outside_the_three_is_refused(empty_store: Store) -> None:
    with empty_store.connect() as con, pytest.raises(duckdb.ConstraintException):
        con.execute("INSERT INTO replay_runs (run_id, name, config_name, config_version, "
                    "config_hash, config_json, intent_source, intents_hash, context_json, "
                    "market_data_version, n_intents, status, created_at, run_key) VALUES "
                    "('r', 'n', 'c', 'v', 'h', '{}', 's', 'x', '{}', 0, 0, 'paused', now(), 1)")


def test_a_run_key_is_unique(empty_store: Store) -> None:
    insert = ("INSERT INTO replay_runs (run_id, name, config_name, config_version, "
              "config_hash, config_json, intent_source, intents_hash, context_json, "
              "market_data_version, n_intents, status, created_at, run_key) VALUES "
              "(?, 'n', 'c', 'v', 'h', '{}', 's', 'x', '{}', 0, 0, 'done', now(), 1)")
    with empty_store.connect() as con:
        con.execute(insert, ["a"])
        with pytest.raises(duckdb.ConstraintException):
            con.execute(insert, ["b"])


def test_replay_intents_keep_their_rows_and_columns_without_a_key_from_0023(tmp_path
                                                                             ) -> None:
    """0023 drops replay_intents' PRIMARY KEY (normalize_intents refuses repeated ids; no
    reader looks an intent up through it): the stored rows and the column order stay."""
    path = tmp_path / "v22.duckdb"
    con = file_at_version(path, 22)
    row = ("'{run}', '{intent}', 'u', 'AAPL', 'long', '1d', TIMESTAMPTZ '2012-06-01 20:00Z', "
           "10.0, 9.0, NULL, 1.0, 5, 'market', 'random', {trade}, {no}")
    for run, intent, trade, no in (("r1", "b", "NULL", 1), ("r1", "a", "'t1'", 0),
                                   ("r2", "a", "NULL", 0)):
        values = row.format(run=run, intent=intent, trade=trade, no=no)
        con.execute(f"INSERT INTO replay_intents VALUES ({values})")
    before = con.execute("SELECT * FROM replay_intents ORDER BY run_id, intent_no").df()
    columns = [r[0] for r in con.execute("DESCRIBE replay_intents").fetchall()]
    con.close()

    store = Store(path)
    after = store.query("SELECT * FROM replay_intents ORDER BY run_id, intent_no")
    pd.testing.assert_frame_equal(after, before)
    assert list(store.tables()["replay_intents"]) == columns
    keys = store.query("SELECT constraint_type FROM duckdb_constraints() "
                       "WHERE table_name = 'replay_intents'")["constraint_type"]
    assert "PRIMARY KEY" not in set(keys) and "UNIQUE" not in set(keys)
    assert "NOT NULL" in set(keys) and "CHECK" in set(keys)


def test_a_chunk_handed_over_as_files_loads_equal_and_leaves_no_file(tmp_path) -> None:
    # a worker writes its rows as Arrow IPC files; the writer maps them and removes them
    rows = _chunk([3, 4, 5], numbering_width=2)
    facts = pa.table({"facts_no": pa.array([0, 1], pa.int32()),
                      "fact_values": pa.array([[1.5, None], [-0.0]], pa.list_(pa.float64()))})
    for chunk in (rows, ChunkRows(chunk_no=7, results=rows.results, issues=rows.issues,
                                  facts=facts, elapsed_s=1.25)):
        handed = chunk.spilled(tmp_path)
        assert len(list(tmp_path.iterdir())) == (3 if chunk.facts is not None else 2)
        loaded = handed.load()
        assert not list(tmp_path.iterdir())
        assert (loaded.chunk_no, loaded.elapsed_s) == (chunk.chunk_no, chunk.elapsed_s)
        assert loaded.results.equals(chunk.results) and loaded.issues.equals(chunk.issues)
        assert (loaded.facts is None and chunk.facts is None) or (
            loaded.facts is not None and chunk.facts is not None
            and loaded.facts.equals(chunk.facts))
