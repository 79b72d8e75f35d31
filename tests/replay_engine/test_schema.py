"""The replay tables: every contract column stored, duplicates refused."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from buddy.store import Store
from replay.model import INTENT_COLUMNS, ISSUE_COLUMNS, OUTCOME_COLUMNS, RESULT_COLUMNS


def test_the_replay_tables_hold_the_contract_columns(empty_store: Store) -> None:
    tables = empty_store.tables()
    assert set(INTENT_COLUMNS) | {"run_id"} == set(tables["replay_intents"])
    assert list(tables["replay_results"]) == list(RESULT_COLUMNS)
    assert set(ISSUE_COLUMNS) | {"issue_no", "evidence_json"} == set(tables["replay_issues"])
    assert list(tables["replay_outcomes"]) == ["run_id", *OUTCOME_COLUMNS]
    assert {"run_id", "intent_id", "module", "version", "status", "score", "severity",
            "n_issues"} == set(tables["replay_module_results"])
    assert {"run_id", "name", "config_name", "config_version", "config_hash", "config_json",
            "intent_source", "data_start", "data_end", "n_intents", "status", "created_at",
            "finished_at"} <= set(tables["replay_runs"])


@pytest.mark.parametrize("table, row", [
    ("replay_results", {"run_id": "r", "intent_id": "i", "symbol": "AAPL", "timeframe": "1d",
                        "side": "long", "as_of": pd.Timestamp("2012-06-01T20:00Z"),
                        "overall_score": 50.0, "overall_severity": "low", "n_issues": 0}),
    ("replay_outcomes", {"run_id": "r", "intent_id": "i", "exit_reason": "stop",
                         "entry_ts": pd.Timestamp("2012-06-01T20:00Z"),
                         "exit_price": 1.0, "realized_r": -1.0, "mae_r": -1.0, "mfe_r": 0.0,
                         "mae_price": 1.0, "mfe_price": 0.0, "bars_held": 1, "win": False,
                         "outcome_source": "simulated"}),
])
def test_a_second_row_with_the_same_key_is_refused(empty_store: Store, table: str,
                                                   row: dict) -> None:
    columns = ", ".join(row)
    marks = ", ".join("?" for _ in row)
    with empty_store.connect() as con:
        con.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", list(row.values()))
        with pytest.raises(duckdb.ConstraintException):
            con.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})",
                        list(row.values()))


def test_a_chunk_written_twice_is_refused_whole(empty_store: Store) -> None:
    """The detail tables have no keys of their own: the result row's key, written in the
    same transaction, refuses a second write of an intent, and nothing of it is kept."""
    from replay.engine import ChunkRows, write_chunk

    results = pd.DataFrame([{"intent_id": "i", "symbol": "AAPL", "timeframe": "1d",
                             "side": "long", "as_of": pd.Timestamp("2012-06-01T20:00Z"),
                             "overall_score": 50.0, "overall_severity": "low",
                             "n_issues": 1}])
    modules = pd.DataFrame([{"intent_id": "i", "module": "m", "version": "1", "status": "ok",
                             "score": 1.0, "severity": "low", "n_issues": 1}])
    issues = pd.DataFrame([{"intent_id": "i", "module": "m", "issue_no": 0, "code": "X",
                            "severity": "low", "evidence_json": "[]"}])
    rows = ChunkRows(chunk_no=0, results=results, module_results=modules, issues=issues)
    write_chunk(empty_store, "r", rows, None)
    again = ChunkRows(chunk_no=1, results=pd.concat([results.assign(intent_id="j"), results]),
                      module_results=modules.assign(intent_id="j"),
                      issues=issues.assign(intent_id="j"))
    with pytest.raises(duckdb.ConstraintException):
        write_chunk(empty_store, "r", again, None)
    for table in ("replay_results", "replay_module_results", "replay_issues"):
        counted = empty_store.query(f"SELECT count(*) AS n FROM {table}")["n"].iloc[0]
        assert counted == 1, table


def test_a_run_status_outside_the_three_is_refused(empty_store: Store) -> None:
    with empty_store.connect() as con, pytest.raises(duckdb.ConstraintException):
        con.execute("INSERT INTO replay_runs (run_id, name, config_name, config_version, "
                    "config_hash, config_json, intent_source, intents_hash, context_json, "
                    "market_data_version, n_intents, status, created_at) VALUES ('r', 'n', "
                    "'c', 'v', 'h', '{}', 's', 'x', '{}', 0, 0, 'paused', now())")
