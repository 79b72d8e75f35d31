"""Logging an evaluation: durable the moment it returns (a process killed right after still
leaves the rows), all or nothing, the intent row once; bad rows are refused by name."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from buddy.api import Buddy
from buddy.store import Store
from buddy.store.core import insert_rows
from tests.interactive_path.conftest import CountingStore

IDEA = dict(user="durable", symbol="AAPL", side="long", timeframe="1d", entry=560.99,
            stop=540.0, target=600.0, size=10, as_of="2012-06-01")
REPO = Path(__file__).resolve().parents[2]


def test_a_logged_evaluation_survives_a_kill_right_after_it_returns(
        store_copy: CountingStore) -> None:
    code = textwrap.dedent(f"""
        import os, signal
        from buddy.api import Buddy
        from buddy.store import Store
        report = Buddy(Store({str(store_copy.path)!r})).evaluate(**{IDEA!r}, log=True)
        print(report.eval_id, len(report.item_rows()), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # no close, no exit handlers, no checkpoint
    """)
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    eval_id, n_items = done.stdout.split()
    store = Store(store_copy.path)
    logged = store.evaluations("durable")
    assert logged["eval_id"].tolist() == [eval_id]
    assert len(store.evaluation_items(eval_id, "durable")) == int(n_items)
    intents = store.query("SELECT count(*) FROM trade_intents WHERE user_id = 'durable'")
    assert intents.iloc[0, 0] == 1


def test_re_evaluating_logs_evaluations_and_the_intent_once(store_copy: CountingStore) -> None:
    buddy = Buddy(store_copy)
    first = buddy.evaluate(**IDEA, log=True)
    second = buddy.evaluate_intent(first.intent, log=True)
    frame = store_copy.evaluations("durable")
    assert sorted(frame["eval_id"]) == sorted([first.eval_id, second.eval_id])
    assert frame["created_at"].dt.tz is not None
    row = frame.set_index("eval_id").loc[first.eval_id]
    assert row["overall_severity"] == first.overall_severity.value
    assert row["overall_score"] == pytest.approx(first.overall_score)
    assert store_copy.query("SELECT count(*) FROM trade_intents WHERE user_id = 'durable'"
                            ).iloc[0, 0] == 1


def test_a_bad_row_is_refused_by_name_and_nothing_is_written(store_copy: CountingStore
                                                             ) -> None:
    buddy = Buddy(store_copy)
    report = buddy.evaluate(**IDEA, log=False)
    items = report.item_rows()
    assert items, "the idea must raise issues for this test to write items"
    bad = [*items, {**items[0], "eval_item_id": "x", "not_a_column": 1}]
    with pytest.raises(ValueError, match="row 1 has columns"):
        store_copy.log_evaluation(report.intent.as_row(), report.evaluation_row(), bad[-2:])
    with pytest.raises(duckdb.BinderException, match="not_a_column"):
        store_copy.log_evaluation(report.intent.as_row(), report.evaluation_row(), bad[-1:])
    assert store_copy.evaluations("durable").empty
    assert store_copy.query("SELECT count(*) FROM trade_intents WHERE user_id = 'durable'"
                            ).iloc[0, 0] == 0


def test_insert_rows_writes_each_row_by_column_name(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "t.duckdb"))
    con.execute("CREATE TABLE t (a INTEGER, b VARCHAR, c DOUBLE)")
    assert insert_rows(con, "t", [{"b": "x", "a": 1}, {"a": 2, "b": None}]) == 2
    assert insert_rows(con, "t", []) == 0
    assert con.execute("SELECT a, b, c FROM t ORDER BY a").fetchall() == [(1, "x", None),
                                                                        (2, None, None)]
