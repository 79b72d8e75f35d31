"""Replay evidence as typed fact columns (migration 0016, buddy.store.replay_facts): no JSON
string per issue row, and the evidence rendered on demand byte for byte as the modules
emitted it (replay.evidence)."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pytest

from buddy.config import ScoringConfig
from buddy.store import Store
from buddy.store.replay_facts import FACT_COLUMNS, insert_typed_issues, issue_facts
from replay.evidence import declared_facts, render_evidence
from replay.executors import SerialExecutor

from .conftest import file_at_version

#: Evidence as modules write it (json.dumps of Fact.as_dict, sort_keys): floats, integers,
#: labels, lists, flags, missing values and thresholds of each kind, a unit resolved per row.
EVIDENCE = [
    [{"name": "stop_distance_atr", "threshold": 1.0, "unit": "ATR", "value": 0.37},
     {"name": "min_stop_atr", "threshold": None, "unit": "ATR", "value": 1.0}],
    [{"name": "stop_distance_atr", "threshold": 1.0, "unit": "ATR", "value": -0.0},
     {"name": "min_stop_atr", "threshold": None, "unit": "ATR", "value": 1e-05}],
    [{"name": "n_levels", "threshold": 2, "unit": "", "value": 3},
     {"name": "levels", "threshold": None, "unit": "price",
      "value": [101.5, 103.25, "pdh \u00e9"]},
     {"name": "nearest_level", "threshold": None, "unit": "", "value": "prior-day high"},
     {"name": "same_direction", "threshold": None, "unit": "", "value": True},
     {"name": "risk_amount", "threshold": 250.0, "unit": "EUR", "value": None}],
    [],
]


def _json(facts: list[dict[str, object]]) -> str:
    return json.dumps(facts, sort_keys=True)


def version_15_file(path: Path) -> None:
    """Write a file at schema 15 holding one run's issues with JSON evidence (0015's shape)."""
    con = file_at_version(path, 15)
    con.execute("INSERT INTO replay_codes VALUES (7, 0, 'risk_reward', 'STOP_INSIDE_NOISE'), "
                "(7, 1, 'missing_scanner', 'LEVELS_BETWEEN_ENTRY_AND_TARGET'), "
                "(7, 2, 'mtfa', 'EMPTY')")
    rows = [(7, 0, 1, 0, 0, 2, _json(EVIDENCE[0])), (7, 1, 1, 0, 0, 2, _json(EVIDENCE[1])),
            (7, 1, 4, 0, 1, 1, _json(EVIDENCE[2])), (7, 2, 0, 0, 2, 0, _json(EVIDENCE[3]))]
    con.executemany("INSERT INTO replay_issues VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    con.close()


def test_a_version_15_file_keeps_every_fact_as_typed_columns(tmp_path: Path) -> None:
    path = tmp_path / "v15.duckdb"
    version_15_file(path)
    store = Store(path)  # migrates to the latest schema
    columns = store.query("SELECT table_name, column_name, data_type FROM "
                          "information_schema.columns WHERE table_name IN "
                          "('replay_issues', 'replay_facts')")
    types = dict(zip(columns["column_name"], columns["data_type"], strict=True))
    assert "evidence_json" not in types
    # the facts live in replay_facts (migration 0022), one set per old issue
    facts_columns = set(columns.loc[columns["table_name"] == "replay_facts", "column_name"])
    assert set(FACT_COLUMNS) <= facts_columns
    assert {name: types[name] for name in FACT_COLUMNS} == FACT_COLUMNS
    facts = issue_facts(store, 7)
    assert render_evidence(facts).tolist() == [_json(e) for e in EVIDENCE]
    # numbers are numbers: a float fact is read without parsing anything
    first = facts.iloc[0]
    assert list(first["fact_values"]) == [0.37, 1.0]
    plain = store.query("SELECT f.fact_json IS NULL AS no_text, f.fact_thresholds[1] AS first, "
                        "f.fact_thresholds[2] IS NULL AS second_none FROM replay_issues i "
                        "JOIN replay_facts f ON f.run_key = i.run_key AND "
                        "f.facts_no = i.facts_no WHERE i.intent_no = 0").iloc[0]
    assert bool(plain["no_text"]) and plain["first"] == 1.0 and bool(plain["second_none"])
    # an old run's codes take the names and units of their first issue
    codes = store.query("SELECT code_no, fact_names, fact_units FROM replay_codes "
                        "WHERE run_key = 7 ORDER BY code_no")
    assert list(codes["fact_names"].iloc[0]) == ["stop_distance_atr", "min_stop_atr"]
    assert list(codes["fact_units"].iloc[1]) == ["", "price", "", "", "EUR"]


def _codes_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE TABLE replay_codes (run_key INTEGER, code_no USMALLINT, module VARCHAR,"
                " code VARCHAR, fact_names VARCHAR[], fact_units VARCHAR[])")
    con.execute("CREATE TABLE replay_issues (run_key INTEGER, intent_no INTEGER, module_no "
                "UTINYINT, issue_no USMALLINT, code_no USMALLINT, severity UTINYINT, "
                "facts_no INTEGER)")
    con.execute("CREATE TABLE replay_facts (run_key INTEGER, facts_no INTEGER, "
                + ", ".join(f"{name} {kind}" for name, kind in FACT_COLUMNS.items()) + ")")


def test_an_undeclared_code_is_refused_and_nothing_is_written() -> None:
    con = duckdb.connect()
    _codes_table(con)
    names, units = declared_facts("risk_reward", "STOP_INSIDE_NOISE") or ([], [])
    con.execute("INSERT INTO replay_codes VALUES (1, 0, 'risk_reward', 'STOP_INSIDE_NOISE', "
                "?, ?)", [names, units])
    issues = pa.table({"run_key": pa.array([1, 1], pa.int32()),
                       "intent_no": pa.array([0, 1], pa.int32()),
                       "module_no": pa.array([0, 0], pa.uint8()),
                       "issue_no": pa.array([0, 0], pa.uint16()),
                       "code_no": pa.array([0, 9], pa.uint16()),
                       "severity": pa.array([2, 2], pa.uint8()),
                       "evidence_json": [_json(EVIDENCE[0]), _json(EVIDENCE[0])]})
    with pytest.raises(ValueError, match=r"code_no must be declared.*\(1, 9\)"):
        insert_typed_issues(con, issues)
    assert con.execute("SELECT count(*) FROM replay_issues").fetchone() == (0,)
    assert con.execute("SELECT count(*) FROM replay_facts").fetchone() == (0,)


def test_declared_names_are_the_evaluators_declarations() -> None:
    declared = declared_facts("risk_reward", "STOP_INSIDE_NOISE")
    assert declared is not None and declared[0][:2] == ["stop_distance_atr", "min_stop_atr"]
    assert declared_facts("risk_reward", "CONTEXT_MISSING") == (
        ["module_name", "piece", "reason"], ["", "", ""])
    assert declared_facts("no_such_module", "X") is None


def test_a_runs_evidence_renders_as_the_modules_emitted_it(
        replay_store: Store, subset: pd.DataFrame, config: ScoringConfig) -> None:
    """Every issue of a real run with every standard piece, rendered from its typed facts, is
    byte for byte the JSON the modules emitted for the same intents (run again here, in
    memory)."""
    from buddy.batch.builder import build_batch_context
    from buddy.batch.orchestrate import run_batch
    from buddy.orchestrator import Orchestrator
    from replay.engine import issues_frame, normalize_intents, run_replay, standard_providers

    providers = standard_providers()
    intents = subset
    run = run_replay(replay_store, intents, config=config, name="typed-facts", mode="batch",
                     executor=SerialExecutor(), providers=providers, progress=False,
                     label=False)
    stored = issues_frame(replay_store, run.run_id, evidence=True)
    frame = normalize_intents(intents)
    emitted = run_batch(Orchestrator(config), build_batch_context(
        replay_store, frame, providers=providers)).issues
    emitted = emitted.assign(intent_id=frame["intent_id"].to_numpy()[emitted["row"]])
    keys = ["intent_id", "module", "issue_no"]
    both = stored.merge(emitted, on=keys, how="outer", suffixes=("", "_emitted"),
                        validate="one_to_one", indicator=True)
    assert (both["_merge"] == "both").all()
    assert len(both) > 100 and both["code"].nunique() > 5, both["code"].value_counts()
    assert (both["evidence_json"] == both["evidence_json_emitted"]).all()
    # a person asks for one intent: the issues with their evidence in words and as facts
    from click.testing import CliRunner

    from replay.cli import replay

    busiest = stored["intent_id"].value_counts().index[0]
    mine = stored[stored["intent_id"] == busiest]
    runner = CliRunner()
    args = ["--db", str(replay_store.path), "explain", run.run_id, busiest]
    text = runner.invoke(replay, args)
    assert text.exit_code == 0, text.output
    for code in mine["code"]:
        assert code in text.output
    shown = json.loads(runner.invoke(replay, [*args, "--json"]).output)
    assert [json.dumps(i["facts"], sort_keys=True) for i in shown["issues"]] == (
        mine.sort_values(["module", "issue_no"])["evidence_json"].tolist())
    unknown = runner.invoke(replay, [*args[:-1], "no-such-intent"])
    assert unknown.exit_code != 0 and "no evaluated intent 'no-such-intent'" in unknown.output
