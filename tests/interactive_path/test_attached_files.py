"""Connections are cursors of one in-memory DuckDB instance per process, each file attached
while a connection to it is open (``buddy.store.core._attach``): real files, real processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

from buddy.store import Store
from buddy.store.core import LATEST_SCHEMA_VERSION
from tests.interactive_path.conftest import CountingStore


def test_a_second_file_migrates_and_writes_while_the_first_is_open(
        store_copy: CountingStore, tmp_path: Path) -> None:
    """Schema checks and column lookups read the connection's own file: with the sample
    file attached (its schema complete), a new empty file still gets every migration."""
    with store_copy.reading():
        sample_tables = store_copy.tables()
        fresh = Store(tmp_path / "fresh.duckdb")
        assert fresh.schema_version() == LATEST_SCHEMA_VERSION
        assert fresh.tables() == sample_tables  # same schema, no column twice
        fresh.write_market_data(tickers=store_copy.tickers().head(1))
        assert len(store_copy.tickers()) > 1  # the shared read connection still serves
    assert list(fresh.tickers()["symbol"]) == list(store_copy.tickers()["symbol"].head(1))


def test_no_lock_outlives_a_connection(store_copy: CountingStore) -> None:
    """After a read and a write, another process opens the file read-write at once (the
    file was detached: checkpointed, its lock released)."""
    store_copy.tickers()
    with store_copy.transaction() as con:
        con.execute("UPDATE tickers SET sector = 'Tested' WHERE symbol = 'AAPL'")
    code = ("import duckdb, sys\n"
            "con = duckdb.connect(sys.argv[1])\n"
            "print(con.execute(\"SELECT sector FROM tickers WHERE symbol = 'AAPL'\")"
            ".fetchone()[0])\n")
    done = subprocess.run([sys.executable, "-c", code, str(store_copy.path)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "Tested"
    assert not Path(f"{store_copy.path}.wal").exists()


def test_a_failed_write_rolls_back_and_releases_the_file(store_copy: CountingStore) -> None:
    """An error inside a transaction rolls it back; the file is usable right after."""
    before = store_copy.tickers()
    try:
        with store_copy.transaction() as con:
            con.execute("DELETE FROM tickers")
            raise RuntimeError("stop")
    except RuntimeError:
        pass
    pd.testing.assert_frame_equal(store_copy.tickers(), before)
    with store_copy.transaction() as con:
        con.execute("UPDATE tickers SET sector = NULL WHERE symbol = 'AAPL'")
    assert pd.isna(store_copy.tickers().set_index("symbol").loc["AAPL", "sector"])


def test_a_process_limits_its_duckdb_threads_and_can_lift_the_limit(tmp_path: Path) -> None:
    """``limit_threads`` sets the process instance's threads, before or after it exists;
    None gives DuckDB's default back, as leaving a ``threads_limited`` block gives the limit
    before it; a count below one is refused."""
    code = ("import sys\n"
            "from buddy.store import Store\n"
            "from buddy.store.core import limit_threads, threads_limited\n"
            "store = Store(sys.argv[1])\n"
            "def threads():\n"
            "    return int(store.query(\"SELECT current_setting('threads') AS t\")['t'][0])\n"
            "default = threads()\n"
            "limit_threads(1)\n"
            "one = threads()\n"
            "limit_threads(None)\n"
            "back = threads()\n"
            "with threads_limited(1):\n"
            "    inside = threads()\n"
            "after = threads()\n"
            "try:\n"
            "    limit_threads(0)\n"
            "except ValueError as exc:\n"
            "    refused = str(exc)\n"
            "print(default, one, back, inside, after, refused)\n")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "t.duckdb")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    default, one, back, inside, after, *refused = out.stdout.split()
    assert int(one) == 1 and back == default and int(inside) == 1 and after == default
    assert " ".join(refused) == "threads must be >= 1 or None (got 0)"
