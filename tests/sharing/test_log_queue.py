"""An evaluation whose log cannot get the file still returns its report, says so, and its
rows wait in a durable queue that the next write moves in exactly once; readers let a
waiting writer in; a long reader's idle connection closes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from buddy.api import Buddy
from buddy.store import Store
from buddy.store.pending import read_entries, spool_dir
from tests.sharing.conftest import REPO, idea, run_cli


@contextmanager
def read_only_holder(path: Path) -> Iterator[None]:
    """Hold a read-only connection to ``path`` from another process (what a replay worker
    did for a whole chunk): other processes may read, none may write."""
    code = textwrap.dedent(f"""
        import sys, duckdb
        con = duckdb.connect({str(path)!r}, read_only=True)
        con.execute("SELECT count(*) FROM tickers").fetchall()
        print("HOLDING", flush=True)
        sys.stdin.readline()
    """)
    holder = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "HOLDING"
        yield
    finally:
        holder.communicate("go\n", timeout=60)


def _write_from_another_process(path: Path, timeout_s: float
                                ) -> subprocess.CompletedProcess[str]:
    """Write one no-op update from a fresh process that waits ``timeout_s`` for the file."""
    code = textwrap.dedent(f"""
        import time
        from buddy.store import Store
        store = Store({str(path)!r}, lock_timeout_s={timeout_s}, migrate=False)
        print("READY", flush=True)
        started = time.monotonic()
        with store.transaction() as con:
            con.execute("UPDATE store_meta SET value = value WHERE key = 'market_data_version'")
        print("WROTE", round(time.monotonic() - started, 3))
    """)
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=300, check=False)


def _logged(store: Store, eval_id: str) -> int:
    return int(store.query("SELECT count(*) FROM trade_evaluations WHERE eval_id = ?",
                           [eval_id]).iloc[0, 0])


def test_a_log_that_cannot_get_the_file_returns_the_report_and_is_queued_then_flushed_once(
        shared_db: Path) -> None:
    buddy = Buddy(Store(shared_db))
    values = idea("queued")
    warm = buddy.evaluate(**values, log=False)  # the pack is cached: only the log needs the file
    assert warm.logging.state == "not_logged"
    with read_only_holder(shared_db):
        started = time.monotonic()
        report = buddy.evaluate(**values, log=True)
        waited = time.monotonic() - started
        assert report.logging.state == "queued", report.logging
        assert "busy" in report.logging.text() and str(spool_dir(shared_db)) in (
            report.logging.detail)
        assert report.overall_severity == warm.overall_severity  # the report stands
        assert waited < 10.0
        queued = list(read_entries(shared_db))
        assert [e.eval_id for e in queued] == [report.eval_id]
        assert _logged(buddy.store, report.eval_id) == 0  # reading is still allowed
    saved = queued[0].path.read_bytes() if queued[0].path else b""
    store = Store(shared_db)  # the next command moves the queue in
    assert _logged(store, report.eval_id) == 1
    assert not list(read_entries(shared_db))
    items = store.evaluation_items(report.eval_id, "queued")
    assert len(items) == len(report.item_rows())
    # a crash after the commit but before the file's removal: the entry comes back, and
    # is removed without a second row
    (spool_dir(shared_db) / f"{report.eval_id}.json").write_bytes(saved)
    assert store.flush_pending() == 0
    assert _logged(store, report.eval_id) == 1
    assert not list(read_entries(shared_db))
    # the next evaluation's log moves nothing twice
    again = buddy.evaluate(**values, log=True)
    assert again.logging.logged and _logged(store, again.eval_id) == 1
    assert store.query("SELECT count(*) FROM trade_evaluations WHERE user_id = 'queued'"
                       ).iloc[0, 0] == 2


def test_a_queued_log_survives_a_kill_right_after_the_evaluation_returns(
        shared_db: Path) -> None:
    code = textwrap.dedent(f"""
        import os, signal
        from buddy.api import Buddy
        from buddy.store import Store
        report = Buddy(Store({str(shared_db)!r})).evaluate(**{idea("killed")!r}, log=True)
        print(report.eval_id, report.logging.state, len(report.item_rows()), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # no close, no exit handlers
    """)
    with read_only_holder(shared_db):
        done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                              text=True, timeout=300, check=False)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    eval_id, state, n_items = done.stdout.split()
    assert state == "queued"
    store = Store(shared_db)
    assert _logged(store, eval_id) == 1
    assert len(store.evaluation_items(eval_id, "killed")) == int(n_items)
    assert not list(read_entries(shared_db))


def test_the_cli_prints_the_report_and_says_the_log_is_queued(shared_db: Path) -> None:
    with read_only_holder(shared_db):
        done = run_cli(shared_db, idea("cli-queued"))
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert "Log queued" in done.stderr
    assert [e.eval_id for e in read_entries(shared_db)] == [report["eval_id"]]
    store = Store(shared_db)
    assert _logged(store, report["eval_id"]) == 1
    assert not list(read_entries(shared_db))


def test_a_waiting_writer_gets_in_between_a_readers_reads(shared_db: Path) -> None:
    store = Store(shared_db)
    result: list[subprocess.CompletedProcess[str]] = []
    writer = threading.Thread(target=lambda: result.append(
        _write_from_another_process(shared_db, timeout_s=10.0)))
    reads = 0
    with store.reading():  # one connection, a read every 10 ms: never idle
        store.tickers()
        writer.start()
        while writer.is_alive():
            store.tickers()
            reads += 1
            time.sleep(0.01)
    writer.join()
    done = result[0]
    assert done.returncode == 0 and "WROTE" in done.stdout, done.stderr[-2000:]
    assert reads > 10


def test_an_idle_shared_connection_closes_for_a_long_reader_or_a_waiting_writer(
        shared_db: Path) -> None:
    store = Store(shared_db)
    with store.reading(idle_s=0.2):
        store.tickers()
        done = _write_from_another_process(shared_db, timeout_s=1.0)  # seconds of start-up
        assert done.returncode == 0 and "WROTE" in done.stdout, done.stderr[-2000:]
        assert len(store.tickers()) > 0  # reopened
    with store.reading(yield_to_writers=True):  # an evaluation's: handed to a writer
        store.tickers()
        done = _write_from_another_process(shared_db, timeout_s=1.0)
        assert done.returncode == 0 and "WROTE" in done.stdout, done.stderr[-2000:]
        assert len(store.tickers()) > 0
    with store.reading():  # neither: the block's one connection stays while it is idle
        store.tickers()
        held = _write_from_another_process(shared_db, timeout_s=1.0)
    assert held.returncode != 0 and "locked" in held.stderr
