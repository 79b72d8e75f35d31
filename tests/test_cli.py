"""The command line, run as a user runs it: a real process on a real database file."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from buddy.store import Store


@pytest.fixture(scope="module")
def db(sample_store: Store, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "buddy.duckdb"
    shutil.copy(sample_store.path, path)
    return path


def _buddy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "buddy.cli", *args], capture_output=True,
                          text=True, timeout=120)


EVALUATE = ["evaluate", "--user", "cli-user", "--symbol", "AAPL", "--side", "long",
            "--timeframe", "1d", "--entry", "560.99", "--target", "600", "--size", "10",
            "--as-of", "2012-06-01"]


def test_a_stop_above_a_long_entry_exits_non_zero_naming_the_stop(db: Path) -> None:
    before = Store(db).query("SELECT count(*) FROM trade_evaluations").iloc[0, 0]
    run = _buddy("--db", str(db), *EVALUATE, "--stop", "580")
    assert run.returncode == 2
    assert "proposed_stop" in run.stderr and "below the entry" in run.stderr
    assert "580" in run.stderr
    after = Store(db).query("SELECT count(*) FROM trade_evaluations").iloc[0, 0]
    assert after == before  # nothing written


def test_json_report_is_logged_in_all_three_tables(db: Path) -> None:
    run = _buddy("--db", str(db), *EVALUATE, "--stop", "540", "--json")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert set(report) >= {"overall_score", "overall_severity", "issues", "modules_run",
                           "config_hash", "eval_id"}
    store = Store(db)
    row = store.query("SELECT * FROM trade_evaluations WHERE eval_id = ?", [report["eval_id"]])
    assert len(row) == 1 and row["user_id"].iloc[0] == "cli-user"
    modules = json.loads(row["modules_run_json"].iloc[0])
    assert modules["config"]["hash"] == report["config_hash"]
    assert {m["name"]: m["version"] for m in modules["modules"]}
    intent = store.query("SELECT * FROM trade_intents WHERE intent_id = ?",
                         [report["intent"]["intent_id"]])
    assert intent["proposed_stop"].iloc[0] == 540.0
    items = store.query("SELECT count(*) FROM trade_evaluation_items WHERE eval_id = ?",
                        [report["eval_id"]]).iloc[0, 0]
    summary = json.loads(row["summary_json"].iloc[0])
    assert items == summary["n_issues_total"] >= len(report["issues"])


def test_env_var_selects_the_database(db: Path, tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "buddy.cli", "data", "info"],
                         capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "BUDDY_DB": str(db)})
    assert run.returncode == 0 and str(db) in run.stdout and "EURUSD" in run.stdout


def test_import_rejects_a_bad_file_whole(db: Path, tmp_path: Path) -> None:
    csv = tmp_path / "bad.csv"
    csv.write_text("date,open,high,low,close,volume\n"
                   "2020-01-02,10,11,9,10.5,100\n"
                   "2020-01-03,10,9,11,10.5,100\n")
    run = _buddy("--db", str(db), "data", "import", str(csv), "--symbol", "NEWCO",
                 "--timeframe", "1d", "--tz", "America/New_York")
    assert run.returncode == 2
    assert "HIGH_BELOW_LOW" in run.stderr
    assert Store(db).instrument("NEWCO") is None
