"""Fact sets (migration 0022): a chunk writes each distinct set of typed facts once and its
issues point at it; a file whose runs hold the 0016 layout (the facts on every issue row) is
upgraded with every reader giving back what it gave before."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pyarrow as pa

from buddy.store import Store
from buddy.store.replay_facts import FACT_COLUMNS
from replay.engine import (
    issues_frame,
    module_results_frame,
    result_table_hash,
    results_frame,
)
from replay.evidence import fact_sets

from .conftest import Reference, file_at_version, same_values

#: Tables a run's rows live in besides the issues, as 0016 left them and 0022 keeps them.
KEPT_TABLES = ("replay_runs", "replay_intents", "replay_modules", "replay_codes",
               "replay_results")



TRICKY = pa.table({
    "fact_values": pa.array([[1.0, None], [1.0, math.nan], [1.0, None], [-0.0], [0.0], None,
                             [], [], None, [1.0, None]], pa.list_(pa.float64())),
    "fact_json": pa.array([["1"], ["1"], ["1"], None, None, None, None, [], None, ['"1"']],
                          pa.list_(pa.string()))})


def test_equal_rows_share_a_set_and_unequal_ones_never_do() -> None:
    distinct, numbers = fact_sets(TRICKY)
    # a missing element is not NaN, -0.0 is not 0.0, an empty list is not a missing one,
    # the number 1 is not the text "1"
    assert numbers.tolist() == [0, 1, 0, 2, 3, 4, 5, 6, 4, 7]
    assert distinct.num_rows == 8
    assert same_values(distinct.take(pa.array(numbers)).to_pylist(), TRICKY.to_pylist())


def test_a_runs_issues_share_their_chunks_fact_sets(subset_reference: Reference) -> None:
    store, run_id = subset_reference.store, subset_reference.run_id
    counts = store.query(
        "SELECT (SELECT count(*) FROM replay_issues WHERE run_key = r.run_key) AS issues, "
        "(SELECT count(*) FROM replay_facts WHERE run_key = r.run_key) AS facts, "
        "(SELECT count(DISTINCT facts_no) FROM replay_issues WHERE run_key = r.run_key) "
        "AS used FROM replay_runs r WHERE r.run_id = ?", [run_id]).iloc[0]
    assert 0 < counts["facts"] < counts["issues"]
    assert counts["used"] == counts["facts"]  # no set written that no issue points at


def _version_21_file(path: Path, reference: Reference) -> None:
    """Write a file at schema 21 holding the reference run as 0016 stored it: each issue
    row with its typed facts."""
    store, run_id = reference.store, reference.run_id
    run_key = int(store.query("SELECT run_key FROM replay_runs WHERE run_id = ?",
                              [run_id])["run_key"].iloc[0])
    by_id = ("replay_runs", "replay_intents")
    with store.connect(read_only=True) as read:  # as Arrow: NULL stays NULL, NaN NaN
        tables = {table: read.sql(f"SELECT * FROM {table} WHERE "
                                  + ("run_id = ?" if table in by_id else "run_key = ?"),
                                  params=[run_id if table in by_id else run_key]
                                  ).to_arrow_table() for table in KEPT_TABLES}
        tables["replay_issues"] = read.sql(
            "SELECT i.* EXCLUDE (facts_no), " + ", ".join(f"f.{c}" for c in FACT_COLUMNS)
            + " FROM replay_issues i JOIN replay_facts f ON f.run_key = i.run_key AND "
            "f.facts_no = i.facts_no WHERE i.run_key = ?", params=[run_key]).to_arrow_table()
    con = file_at_version(path, 21)
    for table, frame in tables.items():
        names = ", ".join(f'"{c}"' for c in frame.column_names)
        con.register("_old", frame)
        con.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM _old")
        con.unregister("_old")
    con.close()


def test_a_version_21_file_reads_the_same_after_the_upgrade(
        subset_reference: Reference, tmp_path: Path) -> None:
    path = tmp_path / "v21.duckdb"
    _version_21_file(path, subset_reference)
    upgraded = Store(path)  # migrates to the latest schema
    before, run_id = subset_reference.store, subset_reference.run_id
    pd.testing.assert_frame_equal(results_frame(upgraded, run_id),
                                  results_frame(before, run_id))
    pd.testing.assert_frame_equal(module_results_frame(upgraded, run_id),
                                  module_results_frame(before, run_id))
    old, new = (issues_frame(s, run_id, evidence=True) for s in (before, upgraded))
    assert len(new) > 100
    pd.testing.assert_frame_equal(new, old)  # the evidence text byte for byte
    assert result_table_hash(upgraded, run_id) == subset_reference.hash
    # one fact set per old issue, numbered in the issues' order
    numbers = upgraded.query("SELECT facts_no FROM replay_issues ORDER BY intent_no, "
                             "module_no, issue_no")["facts_no"].tolist()
    assert numbers == list(range(len(new)))
