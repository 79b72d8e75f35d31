"""One read connection per evaluation, closed when it returns: a cold evaluate opens one
read-only connection (and one read-write for its log), a warm one none, and no lock is held
between evaluations, so another process can write to the file."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

from buddy.api import Buddy
from buddy.context.builder import ContextPackBuilder
from buddy.store import Store
from tests.interactive_path.conftest import CountingStore

IDEA = dict(user="one-door", symbol="AAPL", side="long", timeframe="1d", entry=560.99,
            stop=540.0, target=600.0, size=10, as_of="2012-06-01")
REPO = Path(__file__).resolve().parents[2]


def _write_from_another_process(path: Path) -> subprocess.CompletedProcess[str]:
    """Insert a row from a fresh process that waits at most 1 s for the file."""
    code = textwrap.dedent(f"""
        from buddy.store import Store
        store = Store({str(path)!r}, lock_timeout_s=1.0, migrate=False)
        with store.transaction() as con:
            con.execute("UPDATE store_meta SET value = value WHERE key = 'market_data_version'")
        print("WROTE")
    """)
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=120, check=False)


def test_a_cold_evaluate_opens_one_read_connection_and_one_to_log(
        store_copy: CountingStore) -> None:
    buddy = Buddy(store_copy)
    buddy.evaluate(**IDEA, log=False)
    assert store_copy.opened == [True]  # catalogue, validation and every piece: one connection
    store_copy.opened.clear()
    buddy.builder.clear()
    report = buddy.evaluate(**IDEA, log=True)
    assert store_copy.opened == [True, False]  # the pack's reads, then the log's write
    store_copy.opened.clear()
    buddy.evaluate_intent(report.intent, log=False)  # warm: pack and catalogue cached
    assert store_copy.opened == []


def test_a_cold_pack_build_opens_one_connection(store_copy: CountingStore) -> None:
    buddy = Buddy(store_copy)
    intent = buddy.make_intent(**IDEA)
    store_copy.opened.clear()
    builder = ContextPackBuilder(store_copy, providers=buddy.builder.providers)
    pack = builder.build(intent.user_id, intent.symbol, intent.timeframe, intent.as_of)
    assert pack.market is not None and store_copy.opened == [True]


def test_no_lock_is_held_after_an_evaluation_returns(store_copy: CountingStore) -> None:
    buddy = Buddy(store_copy)
    buddy.evaluate(**IDEA, log=True)
    done = _write_from_another_process(store_copy.path)  # while `buddy` is alive
    assert done.returncode == 0 and "WROTE" in done.stdout, done.stderr[-2000:]
    # the same check fails while a read connection is open: it can see a held lock
    with store_copy.reading():
        store_copy.tickers()
        held = _write_from_another_process(store_copy.path)
    assert held.returncode != 0 and "locked" in held.stderr


def test_a_write_inside_a_reading_block_closes_the_shared_connection(
        store_copy: CountingStore) -> None:
    with store_copy.reading():
        before = len(store_copy.tickers())
        with store_copy.transaction() as con:  # DuckDB allows no read-write beside it
            con.execute("UPDATE store_meta SET value = value WHERE key = "
                        "'market_data_version'")
        assert len(store_copy.tickers()) == before
    assert store_copy.opened == [True, False, True]
    assert Store(store_copy.path).market_data_version() >= 0


def test_another_thread_opens_its_own_connection_inside_a_reading_block(
        store_copy: CountingStore) -> None:
    with store_copy.reading():
        store_copy.tickers()
        other = threading.Thread(target=store_copy.tickers)
        other.start()
        other.join()
        store_copy.tickers()
    assert store_copy.opened == [True, True]  # the block's connection, and the thread's own
