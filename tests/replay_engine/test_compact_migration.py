"""Migration 0015: a file written at schema 14 holding real replays in the OLD shape (a
result row, one row per module, issues with VARCHAR keys, an outcome row per intent) is
upgraded to the compact schema, and the readers give back exactly what the old file held."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pytest

from buddy.store import Store
from replay.engine import issues_frame, module_results_frame, results_frame, run_info
from replay.model import OUTCOME_COLUMNS, RESULT_COLUMNS

from .conftest import Reference, file_at_version

OLD_ISSUE_COLUMNS = ["run_id", "intent_id", "module", "issue_no", "code", "severity",
                     "evidence_json"]


def _old_frames(reference: Reference) -> dict[str, pd.DataFrame]:
    store, run_id = reference.store, reference.run_id
    return {"results": results_frame(store, run_id),
            "modules": module_results_frame(store, run_id),
            "issues": issues_frame(store, run_id, evidence=True),
            "run": store.query("SELECT * EXCLUDE (run_key) FROM replay_runs WHERE run_id = ?",
                               [run_id]),
            "intents": store.query("SELECT * EXCLUDE (intent_no) FROM replay_intents "
                                   "WHERE run_id = ?", [run_id])}


def _renamed(frames: dict[str, pd.DataFrame], run_id: str, created: pd.Timestamp
             ) -> dict[str, pd.DataFrame]:
    renamed = {key: frame.assign(run_id=run_id) for key, frame in frames.items()}
    renamed["run"] = renamed["run"].assign(created_at=created, name=f"old-{run_id}")
    return renamed


def _write_old_shape(con: duckdb.DuckDBPyConnection, frames: dict[str, pd.DataFrame]) -> None:
    """Write one run's frames into the schema-14 tables as the old engine wrote them."""
    results = frames["results"]
    tables = {
        "replay_runs": frames["run"],
        "replay_intents": frames["intents"],
        "replay_results": results.loc[:, list(RESULT_COLUMNS)],
        "replay_module_results": frames["modules"],
        "replay_issues": frames["issues"].loc[:, OLD_ISSUE_COLUMNS],
        "replay_outcomes": results.loc[:, ["run_id", *OUTCOME_COLUMNS]].dropna(
            subset=["exit_reason"]),
    }
    for table, frame in tables.items():
        names = ", ".join(f'"{c}"' for c in frame.columns)
        con.register("_old", frame)
        con.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM _old")
        con.unregister("_old")


def version_14_file(path: Path, runs: list[dict[str, pd.DataFrame]]) -> None:
    """Write a file migrated to schema 14 (migrations 1..14 only) holding ``runs``."""
    con = file_at_version(path, 14)
    for frames in runs:
        _write_old_shape(con, frames)
    con.close()


@pytest.fixture(scope="module")
def upgraded(subset_reference: Reference, tmp_path_factory: pytest.TempPathFactory
             ) -> tuple[Store, dict[str, dict[str, pd.DataFrame]]]:
    """A schema-14 file holding the subset replay twice (a later and an earlier run, so the
    run keys follow created_at, not insertion), then opened: migrated to the latest."""
    frames = _old_frames(subset_reference)
    created = pd.Timestamp(frames["run"]["created_at"].iloc[0])
    runs = {"later": _renamed(frames, "later", created + pd.Timedelta(days=1)),
            "earlier": _renamed(frames, "earlier", created)}
    path = tmp_path_factory.mktemp("v14") / "buddy.duckdb"
    version_14_file(path, list(runs.values()))
    store = Store(path)
    return store, runs


def test_the_old_file_is_migrated_to_the_compact_tables(upgraded) -> None:
    store, _ = upgraded
    tables = store.tables()
    assert not {"replay_module_results", "replay_outcomes"} & set(tables)
    assert "module_scores" in tables["replay_results"]
    keys = store.query("SELECT run_id, run_key FROM replay_runs ORDER BY run_key")
    assert keys["run_id"].tolist() == ["earlier", "later"]  # by created_at
    assert keys["run_key"].tolist() == [1, 2]


@pytest.mark.parametrize("run_id", ["earlier", "later"])
def test_the_readers_give_back_what_the_old_file_held(upgraded, run_id: str) -> None:
    store, runs = upgraded
    old = runs[run_id]
    pd.testing.assert_frame_equal(results_frame(store, run_id), old["results"])
    pd.testing.assert_frame_equal(module_results_frame(store, run_id), old["modules"])
    pd.testing.assert_frame_equal(issues_frame(store, run_id, evidence=True), old["issues"])
    pd.testing.assert_frame_equal(issues_frame(store, run_id),
                                  old["issues"].drop(columns="evidence_json"))
    assert len(old["issues"]) > len(old["results"])  # the replay raised issues to convert
    assert old["results"]["exit_reason"].notna().all()  # and labelled every outcome
    assert run_info(store, run_id)["n_done"] == len(old["results"])


def test_old_code_numbers_are_the_codes_raised_by_module_order(upgraded) -> None:
    store, runs = upgraded
    codes = store.query("SELECT c.code_no, c.module, c.code, m.module_no FROM replay_codes c "
                        "JOIN replay_modules m USING (run_key, module) JOIN replay_runs r "
                        "USING (run_key) WHERE r.run_id = 'earlier' ORDER BY c.code_no")
    assert codes["code_no"].tolist() == list(range(len(codes)))
    assert codes.equals(codes.sort_values(["module_no", "code"], ignore_index=True))
    raised = runs["earlier"]["issues"].loc[:, ["module", "code"]].drop_duplicates()
    assert len(codes) == len(raised)
