"""Whole-table reads shared between a run's processes: one read per table and file state,
the others memory-map the written file; a changed file is read again; a second reader waits
for the first instead of reading beside it; directories of dead processes are swept."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pytest

from buddy.batch.builder import build_batch_context, whole_queries
from buddy.store import Store, tables
from buddy.store.bars import all_bars
from buddy.store.tables import arrow_table, query_arrow, reads_shared, share_ahead
from replay.engine import standard_providers
from replay.intents import generate_intents

SQL = "SELECT symbol, timeframe, ts, close FROM bars ORDER BY symbol, timeframe, ts"


@pytest.fixture
def store(sample_store: Store, tmp_path: Path) -> Store:
    path = tmp_path / "buddy.duckdb"
    shutil.copy(sample_store.path, path)
    return Store(path, migrate=False)


def counting_read(calls: list[int], delay_s: float = 0.0) -> Callable[[Store], pa.Table]:
    def read(store: Store) -> pa.Table:
        calls.append(1)
        time.sleep(delay_s)
        with store.connect(read_only=True) as con:
            return con.sql(SQL).to_arrow_table()

    return read


def test_a_shared_read_is_made_once_and_mapped_after(store: Store, tmp_path: Path) -> None:
    calls: list[int] = []
    alone = arrow_table(store, "closes", counting_read(calls))  # not shared: a plain read
    assert len(calls) == 1
    shared = tmp_path / "shared"
    shared.mkdir()
    with reads_shared(shared):
        first = arrow_table(store, "closes", counting_read(calls))
        again = arrow_table(store, "closes", counting_read(calls))
    assert len(calls) == 2  # the second came from the file
    assert first.equals(alone) and again.equals(alone)
    assert len(list(shared.glob("*.arrow"))) == 1
    # another process maps the same file: it reads nothing from the database
    code = ("import sys\n"
            "from buddy.store import Store\n"
            "from buddy.store.tables import arrow_table, share_reads\n"
            "def read(store):\n"
            "    raise SystemExit('read the database')\n"
            "share_reads(sys.argv[2])\n"
            "print(arrow_table(Store(sys.argv[1], migrate=False), 'closes', read).num_rows)\n")
    out = subprocess.run([sys.executable, "-c", code, str(store.path), str(shared)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(out.stdout.strip()) == alone.num_rows


def test_a_changed_file_is_read_again_and_its_old_tables_removed(store: Store,
                                                                tmp_path: Path) -> None:
    calls: list[int] = []
    with reads_shared(tmp_path):
        arrow_table(store, "closes", counting_read(calls))
        before = set(tmp_path.glob("*.arrow"))
        store.touch_context_stamp()  # what every write of context data does
        arrow_table(store, "closes", counting_read(calls))
        after = set(tmp_path.glob("*.arrow"))
    assert len(calls) == 2
    assert len(after) == 1 and not before & after


def test_a_second_reader_waits_for_the_first(store: Store, tmp_path: Path) -> None:
    calls: list[int] = []
    results: list[pa.Table] = []
    tables.share_reads(tmp_path)
    try:
        workers = [threading.Thread(target=lambda: results.append(
            arrow_table(store, "closes", counting_read(calls, delay_s=0.5))))
            for _ in range(2)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)
    finally:
        tables.share_reads(None)
    assert len(calls) == 1 and len(results) == 2 and results[0].equals(results[1])


def test_whole_table_reads_equal_with_and_without_sharing(store: Store,
                                                          tmp_path: Path) -> None:
    tables.clear()
    plain = all_bars(store).frame
    tables.clear()
    with reads_shared(tmp_path):
        shared = all_bars(store).frame
        mapped = query_arrow(store, SQL)
    tables.clear()
    assert shared.equals(plain) and list(shared.dtypes) == list(plain.dtypes)
    assert mapped.num_rows == len(plain) and any(tmp_path.glob("*.arrow"))


def test_directories_of_dead_processes_are_swept(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    left = tmp_path / f"buddy-tables-{dead.pid}-abc"
    left.mkdir()
    (left / "x.arrow").write_bytes(b"old")
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    monkeypatch.setattr(tables, "_process_directory", [])
    mine = tables.process_reads_directory()
    assert not left.exists() and mine.is_dir() and mine.parent == tmp_path
    assert tables.process_reads_directory() == mine
    tables.forget_process_reads()  # the next run of this process reads its tables anew
    assert not mine.exists() and tables.process_reads_directory() != mine
    tables.forget_process_reads()


def test_a_process_keeps_the_shared_tables_of_its_newest_databases_only(
        store: Store, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    copies = []
    for k in range(3):
        path = tmp_path / f"copy{k}.duckdb"
        shutil.copy(store.path, path)
        copies.append(Store(path, migrate=False))
    calls: list[int] = []
    with reads_shared(shared):
        for copy in copies:
            arrow_table(copy, "closes", counting_read(calls))
            time.sleep(0.01)  # distinct modification times
        assert len(list(shared.glob("*.arrow"))) == tables.SHARED_DATABASES
        arrow_table(copies[-1], "closes", counting_read(calls))  # still there: mapped
        assert len(calls) == 3
        arrow_table(copies[0], "closes", counting_read(calls))  # dropped: read again
        assert len(calls) == 4


def test_the_queries_shared_ahead_are_every_whole_table_a_batch_context_reads(
        store: Store, tmp_path: Path) -> None:
    """What a run's parent reads ahead (``share_ahead`` of ``whole_queries``) is exactly what
    the workers' batch context then reads: it maps each and reads none itself."""
    providers = standard_providers()
    queries = whole_queries(providers)
    intents = generate_intents(store, "random", timeframe="1d", seed=3, user_id="ahead",
                               entry_probability=1.0).head(40)
    share_ahead(store, queries)  # no shared directory: nothing is read
    assert not any(tmp_path.glob("*.arrow"))
    tables.clear()
    with reads_shared(tmp_path):
        share_ahead(store, queries)
        ahead = {path.name: path.stat().st_mtime_ns for path in tmp_path.glob("*.arrow")}
        tables.clear()  # a worker: nothing held yet
        build_batch_context(store, intents, providers=providers)
        after = {path.name: path.stat().st_mtime_ns for path in tmp_path.glob("*.arrow")}
    tables.clear()
    assert len(ahead) == len(queries) == len({repr(q) for q in queries}) >= 5
    assert after == ahead  # no table read again, none missed


def test_a_whole_table_read_is_one_chunk_that_frames_map_without_a_copy(
        store: Store, tmp_path: Path) -> None:
    # more rows than one of DuckDB's default Arrow batches: read as it comes, it is cut up
    sql = "SELECT range AS i, range::DOUBLE / 2 AS x FROM range(600000) ORDER BY i"
    shared = tmp_path / "shared"
    shared.mkdir()
    with reads_shared(shared):
        query_arrow(store, sql)  # written
        mapped = query_arrow(store, sql)  # mapped from the file
    assert mapped.num_rows == 600_000
    assert [column.num_chunks for column in mapped.columns] == [1, 1]
    frame = tables.arrow_frame(mapped)
    x = frame["x"].to_numpy()
    assert x[-1] == 299_999.5
    # the frame's numbers are the mapped file's memory, not a copy of it
    buffer = mapped.column("x").chunk(0).buffers()[1]
    assert x.ctypes.data == buffer.address
