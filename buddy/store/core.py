"""Store: migrations, short-lived connections with lock retry, bulk writes, point-in-time reads."""

from __future__ import annotations

import atexit
import os
import random
import re
import threading
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, TypeAlias

import duckdb
import pandas as pd
import pyarrow as pa

from buddy import paths
from buddy.errors import SchemaVersionError, StoreLockedError
from buddy.retry import retry_while
from buddy.store import pending
from buddy.store.bars import closed_by

#: What bulk writes accept: a pandas DataFrame or an Arrow table with the table's columns.
Frame: TypeAlias = pd.DataFrame | pa.Table

#: The database under the project root (``buddy.paths.default_db_path()`` makes it absolute).
DEFAULT_DB_PATH = paths.DB_RELATIVE
LOCK_TIMEOUT_S = 30.0
#: The longest a logged evaluation waits for the file before its rows are queued instead
#: (``buddy.store.pending``), seconds.
LOG_WAIT_S = 3.0
#: How long the shared connection of a long reader's ``reading(idle_s=...)`` block (a
#: replay chunk's context) may sit unused before it is closed (reopened by the next read),
#: seconds: reads in quick succession share it, while long Python work between reads (an
#: on-demand HMM fit) holds no lock other processes wait on.
READ_IDLE_S = 0.25
#: The longest a Store's construction waits to move queued evaluation logs in, seconds
#: (they stay queued when the file is busy).
FLUSH_WAIT_S = 1.0
#: DuckDB has no queue for its file lock: a writer polls, and readers of other processes
#: that keep opening connections can starve it. A waiting writer therefore leaves a mark
#: (a file per writer in ``<db>.writers/``, touched on every retry); new reads defer to a
#: mark younger than WRITER_FRESH_S seconds (an older one is a crashed writer's) for at
#: most READER_DEFER_S seconds, and a shared read connection is closed at once.
WRITER_FRESH_S = 2.0
READER_DEFER_S = 5.0
#: How often an idle shared read connection looks for a waiting writer, seconds.
WRITER_WATCH_S = 0.1

_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


def resolve_db_path(path: str | os.PathLike[str] | None = None) -> Path:
    """Return the database path: ``path`` if given, else $BUDDY_DB, else
    ``<project root>/data/buddy.duckdb`` (``buddy.paths``: the same file from any folder)."""
    return paths.db_path(path)


def migrations() -> list[tuple[int, str, str]]:
    """Return the packaged migrations as (version, name, sql), in version order."""
    found = []
    for entry in resources.files("buddy.store.migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), match.group(2), entry.read_text()))
    return sorted(found)


LATEST_SCHEMA_VERSION = max(v for v, _, _ in migrations())


#: Stores inside a ``reading(idle_s=...)`` or ``reading(yield_to_writers=True)`` block,
#: looked at by one watcher thread per process every WRITER_WATCH_S / 2 seconds (a timer
#: per read would start a thread per read: hundreds of thousands in a replay).
_WATCHED: weakref.WeakSet[Store] = weakref.WeakSet()
_WATCHER: list[threading.Thread] = []
_WATCHER_LOCK = threading.Lock()


_WATCHER_STOP = threading.Event()


def _watch(store: Store) -> None:
    """Have the process's watcher thread look at ``store`` (started when none runs; it
    ends when no store is watched)."""
    with _WATCHER_LOCK:
        _WATCHED.add(store)
        if not _WATCHER and not _WATCHER_STOP.is_set():
            thread = threading.Thread(target=_watch_idle_readers, name="buddy-store-idle",
                                      daemon=True)
            _WATCHER.append(thread)
            thread.start()


def _watch_idle_readers() -> None:
    while not _WATCHER_STOP.wait(WRITER_WATCH_S / 2):
        with _WATCHER_LOCK:
            stores = list(_WATCHED)
            if not stores:
                _WATCHER.clear()
                return
        for store in stores:
            with suppress(Exception):  # a watcher that dies would leave locks held
                store._close_if_idle()
        del stores, store


def _stop_watcher() -> None:
    """End the watcher before the interpreter tears down (a daemon thread frozen mid-loop
    leaves DuckDB's bindings with objects they report as leaked)."""
    _WATCHER_STOP.set()
    for thread in list(_WATCHER):
        thread.join(timeout=1.0)


def _forget_watcher() -> None:
    _WATCHER.clear()  # a forked child has no watcher thread: the next block starts one


#: One in-memory DuckDB instance per process, to which each file is ATTACHed while a
#: connection to it is open: starting a DuckDB instance costs about 30 ms of CPU (even
#: for ':memory:'), attaching a file about 8 (read-only) and a logged write about 15
#: instead of 45. The connections handed out are cursors of the instance, each USE-ing
#: its file's alias; the file is DETACHed (checkpointed, its lock released) when the last
#: of them closes, so no lock outlives the connections, as with a connect per use.
_INSTANCE: list[duckdb.DuckDBPyConnection] = []
_INSTANCE_LOCK = threading.Lock()
#: Per attached file (its real path): [alias, read_only, connections open].
_ATTACHED: dict[str, list[Any]] = {}
#: Per open connection (id of the cursor): the real path of its file.
_CONNECTION_FILE: dict[int, str] = {}
_ALIASES = iter(range(1, 1 << 62))
#: Instances inherited over a fork: never used nor destroyed in the child (their threads
#: are gone there; destroying one would wait for them).
_INHERITED: list[duckdb.DuckDBPyConnection] = []


#: DuckDB threads of this process's instance (``limit_threads``; None: DuckDB's default).
_THREADS: list[int | None] = [None]


def limit_threads(threads: int | None) -> None:
    """Run this process's DuckDB queries on at most ``threads`` threads (None: DuckDB's
    default, one per core), from now on. A replay worker runs on one: its run's parallelism
    is across processes that already fill the cores, and a query's extra threads there only
    add their scheduling and merging to the machine's work."""
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1 or None (got {threads})")
    with _INSTANCE_LOCK:
        _THREADS[0] = threads
        if _INSTANCE:
            _set_threads(_INSTANCE[0])


def threads_limit() -> int | None:
    """Return this process's DuckDB thread limit (``limit_threads``; None: none)."""
    return _THREADS[0]


@contextmanager
def threads_limited(threads: int | None) -> Iterator[None]:
    """Limit this process's DuckDB threads to ``threads`` inside the block
    (``limit_threads``), then go back to the limit before it. Process-wide: the process's
    other threads' queries run under it meanwhile too."""
    before = threads_limit()
    if threads == before:
        yield
        return
    limit_threads(threads)
    try:
        yield
    finally:
        limit_threads(before)


#: Blocks inside ``vacuum_deferred`` (any thread); while > 0 the instance does not vacuum.
_VACUUM_DEFERRED: list[int] = [0]


@contextmanager
def vacuum_deferred() -> Iterator[None]:
    """Inside the block, checkpoints of this process's files do not merge small row groups
    (DuckDB's ``max_vacuum_tasks`` = 0); after the outermost block they do again.

    A file is checkpointed when its last connection closes. Each chunk a replay writes
    leaves a partial row group in each table, and DuckDB's vacuum then rewrites those
    (reading and compressing them again) at every chunk's close: about half the cost of a
    chunk's own insert. Deferred, the partial row groups stay as they are, and a later
    checkpoint outside such a block may still merge them. Process-wide: checkpoints of the
    process's other threads skip the vacuum meanwhile too."""
    with _INSTANCE_LOCK:
        _VACUUM_DEFERRED[0] += 1
        try:
            if _VACUUM_DEFERRED[0] == 1 and _INSTANCE:
                _set_vacuum(_INSTANCE[0])
        except BaseException:  # not deferred: leave no count behind
            _VACUUM_DEFERRED[0] -= 1
            raise
    try:
        yield
    finally:
        with _INSTANCE_LOCK:
            _VACUUM_DEFERRED[0] -= 1
            if _VACUUM_DEFERRED[0] == 0 and _INSTANCE:
                _set_vacuum(_INSTANCE[0])


def _set_vacuum(instance: duckdb.DuckDBPyConnection) -> None:
    if _VACUUM_DEFERRED[0]:
        instance.execute("SET max_vacuum_tasks = 0")
    else:
        instance.execute("RESET max_vacuum_tasks")


def _set_threads(instance: duckdb.DuckDBPyConnection) -> None:
    if _THREADS[0] is None:
        instance.execute("RESET threads")
    else:
        instance.execute(f"SET threads = {int(_THREADS[0])}")


def _forget_instance() -> None:
    _INHERITED.extend(_INSTANCE)
    _INSTANCE.clear()
    _ATTACHED.clear()
    _CONNECTION_FILE.clear()


def _attach(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    """Return a new connection to the file ``path``: a cursor of the process's instance,
    on which the file is attached. Raises duckdb.IOException naming the lock while another
    process holds the file, or while this process holds it read-only and a write is asked
    for (the caller retries it as any lock)."""
    key = os.path.realpath(path)
    with _INSTANCE_LOCK:
        if not _INSTANCE:
            _INSTANCE.append(duckdb.connect(":memory:"))
            if _THREADS[0] is not None:
                _set_threads(_INSTANCE[0])
            if _VACUUM_DEFERRED[0]:
                _set_vacuum(_INSTANCE[0])
        instance = _INSTANCE[0]
        entry = _ATTACHED.get(key)
        if entry is not None and entry[1] and not read_only:
            raise duckdb.IOException(
                f"Could not set lock on file {str(path)!r} for writing: this process has it "
                "open read-only")
        if entry is None:
            alias = f"buddy_file_{next(_ALIASES)}"
            literal = str(path).replace("'", "''")
            mode = " (READ_ONLY)" if read_only else ""
            instance.execute(f"ATTACH '{literal}' AS {alias}{mode}")
            entry = _ATTACHED[key] = [alias, read_only, 0]
        entry[2] += 1
        con = instance.cursor()
        _CONNECTION_FILE[id(con)] = key
    try:
        con.execute(f"USE {entry[0]}")
    except BaseException:
        _release(con)
        raise
    return con


def _release(con: duckdb.DuckDBPyConnection) -> None:
    """Close a connection from ``_attach``; detach its file with the last one (DuckDB
    checkpoints the file then and releases its lock)."""
    with _INSTANCE_LOCK:
        key = _CONNECTION_FILE.pop(id(con), None)
        with suppress(duckdb.Error):  # an open transaction is rolled back by the close
            con.close()
        entry = _ATTACHED.get(key) if key is not None else None
        if key is None or entry is None:
            return
        entry[2] -= 1
        if entry[2] == 0:  # forgotten only once detached: a failed DETACH is retried
            _INSTANCE[0].execute(f"DETACH {entry[0]}")
            del _ATTACHED[key]


os.register_at_fork(after_in_child=_forget_watcher)
os.register_at_fork(after_in_child=_forget_instance)
atexit.register(_stop_watcher)


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc).lower()
    return "lock" in text or "conflicting lock" in text or "resource temporarily" in text


class Store:
    """The workbench's DuckDB file: schema, writes and reads.

    Construction creates the file if missing, upgrades an older schema, and refuses a file
    written by a newer version (SchemaVersionError). Each method opens its own short-lived
    connection, so several processes can use the file in turn.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *,
                 lock_timeout_s: float = LOCK_TIMEOUT_S, migrate: bool = True) -> None:
        self.path = resolve_db_path(path)
        self._stamp_str = str(self.stamp_path)
        self.lock_timeout_s = lock_timeout_s
        # inside ``reading()``: the thread in the block and the shared read-only connection,
        # opened at its first read
        self._reading: int | None = None
        self._reader: duckdb.DuckDBPyConnection | None = None
        self._reader_users = 0
        # the process's idle watcher (_watch_idle_readers) closes the shared connection
        # from its own thread: both go through this lock
        self._reader_lock = threading.Lock()
        self._idle_since: float | None = None  # monotonic time the shared one went unused
        self._read_idle_s: float | None = None  # the current block's idle close, if any
        self._watch_writers = False  # the current block closes an idle one for a writer
        self._flushing = False
        self._writers_dir = self.path.with_name(self.path.name + ".writers")
        self._writers_checked = (0.0, False)  # (monotonic time, answer): at most every 50 ms
        if migrate:
            self.migrate()
            self.flush_pending(lock_timeout_s=FLUSH_WAIT_S, quiet=True)

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    # ------------------------------------------------------------------ connections
    @contextmanager
    def reading(self, *, idle_s: float | None = None, yield_to_writers: bool = False
                ) -> Iterator[Store]:
        """Serve every read-only connection asked for inside the block from ONE connection
        (opening a DuckDB file costs 20-30 ms of CPU; an evaluation's reads need not pay it
        six times). The connection opens at the block's first read and closes when the
        outermost block exits, when another process waits to write (at the end of the read
        in progress; with ``yield_to_writers`` also within WRITER_WATCH_S while it sits
        unused), or, with ``idle_s``, once it has sat unused that many seconds (a long
        reader's work between reads then holds no lock: the next read reopens it; an
        evaluation keeps its one connection unless a writer waits). No read lock is held
        between blocks, so other processes can write then. A write inside the block closes
        the shared connection first (DuckDB refuses a read-write and a read-only connection
        to one file in one process); the next read reopens it. Only the thread that entered
        the block shares the connection (DuckDB connections are not for concurrent use):
        other threads open their own."""
        if self._reading is not None:  # nested, or another thread's block: nothing to add
            yield self
            return
        self._reading = threading.get_ident()
        self._read_idle_s = idle_s
        self._watch_writers = yield_to_writers
        if idle_s is not None or yield_to_writers:
            _watch(self)
        try:
            yield self
        finally:
            _WATCHED.discard(self)
            self._reading = None
            self._read_idle_s = None
            self._watch_writers = False
            self._close_reader()

    def _close_reader(self) -> None:
        with self._reader_lock:
            reader, self._reader, self._idle_since = self._reader, None, None
        if reader is not None:
            self._close(reader)

    def _close_if_idle(self) -> None:
        """Close the shared connection when unused for the block's ``idle_s``, or unused
        while another process waits to write (the block yields to writers); called by the
        watcher thread, which skips a store whose lock is busy (a connection opening)."""
        if not self._reader_lock.acquire(blocking=False):
            return
        try:
            since = self._idle_since
            if self._reader is None or self._reader_users or since is None:
                return
            idle_s = self._read_idle_s
            close = idle_s is not None and time.monotonic() - since >= idle_s
            if not close and (self._watch_writers or idle_s is not None):
                close = self.writer_waiting()
            if not close:
                return
            reader, self._reader, self._idle_since = self._reader, None, None
        finally:
            self._reader_lock.release()
        self._close(reader)

    def _open(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        """Return a new DuckDB connection to the file: the one place that opens one (a
        subclass may count or wrap them); close it with ``_close``."""
        return _attach(self.path, read_only)

    @staticmethod
    def _close(con: duckdb.DuckDBPyConnection) -> None:
        """Close a connection from ``_open`` (the file is detached with its last one)."""
        _release(con)

    def writer_waiting(self, *, fresh: bool = False) -> bool:
        """Return True when a process waits to write to the file (a mark in ``<db>.writers/``
        younger than WRITER_FRESH_S); the answer is reused for 50 ms unless ``fresh``."""
        now = time.monotonic()
        at, answer = self._writers_checked
        if not fresh and now - at < 0.05:
            return answer
        answer = False
        with suppress(FileNotFoundError), os.scandir(self._writers_dir) as found:
            wall = time.time()
            for entry in found:
                with suppress(FileNotFoundError):
                    if wall - entry.stat().st_mtime < WRITER_FRESH_S:
                        answer = True
                        break
        self._writers_checked = (now, answer)
        return answer

    def _defer_to_writers(self) -> None:
        """Wait (at most READER_DEFER_S) while another process waits to write."""
        deadline = time.monotonic() + READER_DEFER_S
        while self.writer_waiting(fresh=True) and time.monotonic() < deadline:
            time.sleep(0.01 + 0.01 * random.random())

    def _new_connection(self, read_only: bool, lock_timeout_s: float | None = None
                        ) -> duckdb.DuckDBPyConnection:
        """Open a connection in UTC, retrying while another process holds the file (for
        ``lock_timeout_s`` seconds, the store's ``lock_timeout_s`` when None). A reader
        first lets waiting writers go; a writer that must wait says so (WRITER_FRESH_S)."""
        wait_s = self.lock_timeout_s if lock_timeout_s is None else lock_timeout_s
        mark: Path | None = None
        if read_only:
            self._defer_to_writers()

        def waiting(_exc: Exception) -> None:
            nonlocal mark
            if not read_only:
                mark = self._mark_waiting(mark)

        try:
            con = retry_while(lambda: self._open(read_only), busy=_is_lock_error,
                              catch=(duckdb.IOException, duckdb.ConnectionException),
                              first_s=0.02, max_s=0.25 if not read_only else 0.5,
                              timeout_s=wait_s, on_wait=waiting)
        except (duckdb.IOException, duckdb.ConnectionException) as exc:
            if _is_lock_error(exc):
                raise StoreLockedError(f"{self.path} stayed locked by another process for "
                                       f"{wait_s:g} s: {exc}") from exc
            raise
        finally:
            if mark is not None:
                with suppress(FileNotFoundError):
                    mark.unlink()
        try:
            con.execute("SET TimeZone = 'UTC'")
        except BaseException:
            self._close(con)
            raise
        return con

    def _mark_waiting(self, mark: Path | None) -> Path | None:
        """Create or refresh this writer's mark; None when the folder cannot be written."""
        if mark is None:
            mark = self._writers_dir / f"{os.getpid()}-{threading.get_ident()}"
        try:
            self._writers_dir.mkdir(exist_ok=True)
            mark.touch()
        except OSError:
            return None
        return mark

    @contextmanager
    def connect(self, *, read_only: bool = False, lock_timeout_s: float | None = None
                ) -> Iterator[duckdb.DuckDBPyConnection]:
        """Yield a connection, retrying while another process holds the file for
        ``lock_timeout_s`` seconds (the store's when None); inside ``reading()``, read-only
        ones are the block's shared connection."""
        if read_only and self._reading == threading.get_ident():
            with self._reader_lock:
                self._idle_since = None
                if self._reader is None:
                    self._reader = self._new_connection(True, lock_timeout_s)
                self._reader_users += 1
                shared = self._reader
            try:
                yield shared
            finally:
                with self._reader_lock:
                    self._reader_users -= 1
                    if not self._reader_users:
                        self._idle_since = time.monotonic()
                if not self._reader_users and self.writer_waiting():
                    self._close_reader()  # let the writer in; the next read reopens
            return
        if (not read_only and self._reader is not None and not self._reader_users
                and self._reading == threading.get_ident()):
            self._close_reader()  # see reading(): reopened by the next read
        con = self._new_connection(read_only, lock_timeout_s)
        try:
            yield con
        finally:
            self._close(con)

    @contextmanager
    def transaction(self, *, lock_timeout_s: float | None = None
                    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """Yield a read-write connection inside one transaction; roll back on any error.

        After the commit, queued evaluation logs (``buddy.store.pending``) are moved in on
        the same connection, in their own transaction: the caller's write never fails or
        rolls back because of them."""
        with self.connect(lock_timeout_s=lock_timeout_s) as con:
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
            if not self._flushing and pending.has_entries(self.path):
                with suppress(Exception):  # they stay queued for the next write
                    self._flush_into(con)

    # ------------------------------------------------------------------ schema
    def schema_version(self) -> int:
        """Return the schema version recorded in the file (0 for an empty file)."""
        if not self.path.exists():
            return 0
        with self.connect(read_only=True) as con:
            return _recorded_version(con)

    def _all_applied(self) -> bool:
        """Return True when every packaged migration is recorded (a file can hold the latest
        version yet miss an earlier one that was added after it was created)."""
        with self.connect(read_only=True) as con:
            applied = _applied_versions(con)
        return applied >= {v for v, _, _ in migrations()}

    def migrate(self) -> int:
        """Create or upgrade the schema to the latest version; return the version."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            # one connection for both checks: a Store is made per command, so this is on
            # every fresh process's path
            with self.connect(read_only=True) as con:
                current = _recorded_version(con)
                applied = _applied_versions(con) if current == LATEST_SCHEMA_VERSION else set()
            if current > LATEST_SCHEMA_VERSION:
                raise SchemaVersionError(
                    f"{self.path} has schema version {current}, newer than this workbench "
                    f"supports ({LATEST_SCHEMA_VERSION}); upgrade trading-buddy or open "
                    "another file")
            if current == LATEST_SCHEMA_VERSION and applied >= {v for v, _, _ in migrations()}:
                return current
        with self.connect() as con:
            con.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY "
                        "KEY, name VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL)")
            applied = {r[0] for r in con.execute("SELECT version FROM schema_migrations"
                                                  ).fetchall()}
            for version, name, sql in migrations():
                if version in applied:
                    continue
                con.execute("BEGIN TRANSACTION")
                try:
                    con.execute(sql)
                    con.execute("INSERT INTO schema_migrations VALUES (?, ?, now())",
                                [version, name])
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
                con.execute("COMMIT")
            return _recorded_version(con)

    def tables(self) -> dict[str, list[str]]:
        """Return every table with its column names."""
        frame = self.query("SELECT table_name, column_name FROM information_schema.columns "
                           "WHERE table_schema = 'main' AND table_catalog = current_database() "
                           "ORDER BY table_name, ordinal_position")
        return {t: list(g["column_name"]) for t, g in frame.groupby("table_name", sort=True)}

    # ------------------------------------------------------------------ generic
    def query(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None
              ) -> pd.DataFrame:
        """Run a read-only query and return a DataFrame."""
        with self.connect(read_only=True) as con:
            return con.execute(sql, params).df()

    # ------------------------------------------------------------------ market data writes
    def write_market_data(self, *, tickers: Frame | None = None, bars: Frame | None = None,
                          corporate_actions: Frame | None = None,
                          features: Frame | None = None,
                          synthetic_regimes: Frame | None = None) -> dict[str, int]:
        """Write market data frames in ONE transaction, replacing what they cover.

        Tickers and corporate actions replace rows of the same symbols; bars, features and
        synthetic regimes replace each (symbol, timeframe)'s rows in the frame's ts range.
        Either everything is written or nothing is. Returns rows written per table.
        """
        written: dict[str, int] = {}
        with self.transaction() as con:
            if tickers is not None and len(tickers):
                written["tickers"] = _replace_by_symbol(con, "tickers", tickers)
            if corporate_actions is not None and len(corporate_actions):
                written["corporate_actions"] = _replace_by_symbol(con, "corporate_actions",
                                                                  corporate_actions)
            if bars is not None and len(bars):
                written["bars"] = _replace_ranges(con, "bars", bars)
            if features is not None and len(features):
                written["ta_features"] = _replace_ranges(con, "ta_features", features)
            if synthetic_regimes is not None and len(synthetic_regimes):
                written["synthetic_regimes"] = _replace_ranges(con, "synthetic_regimes",
                                                               synthetic_regimes)
            if written:
                con.execute("UPDATE store_meta SET value = value + 1 "
                            "WHERE key = 'market_data_version'")
        if written:
            self.touch_context_stamp()
        return written

    @property
    def stamp_path(self) -> Path:
        """Return the sidecar file whose mtime changes after every context-affecting write."""
        return self.path.with_name(self.path.name + ".stamp")

    def touch_context_stamp(self) -> None:
        """Mark that data a ContextPack reads has changed (call after the commit)."""
        self.stamp_path.write_text(str(time.time_ns()))

    def context_stamp(self) -> int:
        """Return the sidecar's content (0 when absent): part of every ContextPack cache key."""
        try:
            fd = os.open(self._stamp_str, os.O_RDONLY)
        except FileNotFoundError:
            return 0
        try:
            return int(os.read(fd, 32) or 0)
        except ValueError:
            return 0
        finally:
            os.close(fd)

    def write_snapshots(self, table: str, frame: Frame) -> int:
        """Replace each (symbol, timeframe)'s rows of a snapshot table (regime_snapshots,
        key_levels, ...) in the frame's ts range, in one transaction; return rows written."""
        if table not in SNAPSHOT_TABLES:
            raise ValueError(f"{table} is not a snapshot table ({', '.join(SNAPSHOT_TABLES)})")
        if not len(frame):
            return 0
        with self.transaction() as con:
            written = _replace_ranges(con, table, frame)
        self.touch_context_stamp()
        return written

    def market_data_version(self) -> int:
        """Return a counter bumped by every market data write (cache invalidation)."""
        return int(self.query("SELECT value FROM store_meta WHERE key = "
                              "'market_data_version'").iloc[0, 0])

    # ------------------------------------------------------------------ market data reads
    def tickers(self) -> pd.DataFrame:
        """Return the tickers table."""
        return self.query("SELECT * FROM tickers ORDER BY symbol")

    def instrument(self, symbol: str) -> dict[str, Any] | None:
        """Return the tickers row for ``symbol`` as a dict, or None when unknown."""
        frame = self.query("SELECT * FROM tickers WHERE symbol = ?", [symbol])
        return None if frame.empty else frame.iloc[0].to_dict()

    def bar_coverage(self) -> pd.DataFrame:
        """Return first/last bar and count per (symbol, timeframe)."""
        return self.query("SELECT symbol, timeframe, min(ts) AS first_ts, max(ts_close) AS "
                          "last_ts_close, count(*) AS n_bars FROM bars GROUP BY ALL "
                          "ORDER BY symbol, timeframe")

    def bars(self, symbol: str, timeframe: str, *, as_of: datetime | None = None,
             start: datetime | None = None) -> pd.DataFrame:
        """Return bars closed at ``as_of`` (all when None) from ``start``, as traded, by ts."""
        sql = "SELECT * FROM bars WHERE symbol = ? AND timeframe = ?"
        params: list[Any] = [symbol, str(timeframe)]
        if as_of is not None:
            sql += f" AND {closed_by()}"
            params.append(as_of)
        if start is not None:
            sql += " AND ts >= ?"
            params.append(start)
        return self.query(sql + " ORDER BY ts", params)

    def corporate_actions(self, symbol: str | None = None) -> pd.DataFrame:
        """Return corporate actions (all symbols when None), by ex_date."""
        if symbol is None:
            return self.query("SELECT * FROM corporate_actions ORDER BY symbol, ex_date")
        return self.query("SELECT * FROM corporate_actions WHERE symbol = ? ORDER BY ex_date",
                          [symbol])

    def features(self, symbol: str, timeframe: str, *, as_of: datetime | None = None
                 ) -> pd.DataFrame:
        """Return the TA feature rows of bars closed at ``as_of`` (all when None)."""
        sql = ("SELECT f.* FROM ta_features f JOIN bars b USING (symbol, timeframe, ts) "
               "WHERE f.symbol = ? AND f.timeframe = ?")
        params: list[Any] = [symbol, str(timeframe)]
        if as_of is not None:
            sql += f" AND {closed_by('b')}"
            params.append(as_of)
        return self.query(sql + " ORDER BY f.ts", params)

    def last_feature_ts(self) -> pd.DataFrame:
        """Return the newest feature ts and feature set version per (symbol, timeframe)."""
        return self.query("SELECT symbol, timeframe, max(ts) AS last_ts, "
                          "any_value(feature_set_version) AS feature_set_version "
                          "FROM ta_features GROUP BY ALL")

    def context_inputs(self, symbol: str, timeframe: str, as_of: datetime, lookback: int
                       ) -> dict[str, Any]:
        """Return what a ContextPack needs, read in one connection, nothing after ``as_of``.

        Keys: instrument (dict or None), bars and features (the last ``lookback`` closed bars
        and their feature rows), corporate_actions (ex_date <= as_of), market_data_version.
        """
        with self.connect(read_only=True) as con:
            return {
                "instrument": _record(con, "SELECT * FROM tickers WHERE symbol = ?",
                                      [symbol]),
                "bars": con.execute(CONTEXT_BARS_SQL, [symbol, str(timeframe), as_of, lookback]
                                    ).df(),
                "features": con.execute(CONTEXT_FEATURES_SQL,
                                        [symbol, str(timeframe), as_of, lookback]).df(),
                "corporate_actions": con.execute(CONTEXT_ACTIONS_SQL, [symbol, as_of]).df(),
                "market_data_version": scalar(
                    con, "SELECT value FROM store_meta WHERE key = 'market_data_version'"),
            }

    # ------------------------------------------------------------------ evaluation logging
    def log_evaluation(self, intent_row: Mapping[str, Any], evaluation_row: Mapping[str, Any],
                       item_rows: Sequence[Mapping[str, Any]], *,
                       lock_timeout_s: float | None = None,
                       created_at: datetime | None = None) -> None:
        """Write an intent, its evaluation and its items in ONE transaction.

        The intent row is inserted once (re-evaluating an intent adds evaluations only);
        ``created_at`` is stamped here, at the edge, with the wall clock (unless given).
        Durable when it returns (committed; the connection's close checkpoints: leaving the
        WAL to grow instead made every later open replay it, which cost more than the
        checkpoint). One prepared statement per table: registering frames and looking up
        columns cost more than the rows. Queued logs are moved in after the commit.
        Raises StoreLockedError when the file stays busy for ``lock_timeout_s`` seconds.
        """
        now = created_at or datetime.now(UTC)
        with self.transaction(lock_timeout_s=lock_timeout_s) as con:
            _insert_evaluation(con, intent_row, evaluation_row, item_rows, now)

    def log_or_queue(self, intent_row: Mapping[str, Any], evaluation_row: Mapping[str, Any],
                     item_rows: Sequence[Mapping[str, Any]], *,
                     lock_timeout_s: float = LOG_WAIT_S) -> tuple[str, str]:
        """Log an evaluation, waiting at most ``lock_timeout_s`` seconds for the file; when
        it stays busy, queue the rows durably instead (``buddy.store.pending``; moved in by
        the next write). Return (state, detail): ('logged', ''), ('queued', why) or
        ('failed', why) when even the queue refused (the disk); other errors (a bad row)
        raise as ``log_evaluation``'s do."""
        now = datetime.now(UTC)
        try:
            self.log_evaluation(intent_row, evaluation_row, item_rows,
                                lock_timeout_s=lock_timeout_s, created_at=now)
        except StoreLockedError as exc:
            reason = (f"the database was busy for {lock_timeout_s:g} s ({exc.__cause__ or exc}"
                      ")")
            try:
                where = pending.write_entry(self.path, intent_row, evaluation_row, item_rows,
                                            now)
            except (OSError, ValueError) as spool_exc:
                return "failed", f"{reason}; queueing it failed too: {spool_exc}"
            return "queued", f"{reason}; queued in {where}, logged by the next write"
        return "logged", ""

    def pending_logs(self) -> int:
        """Return how many evaluation logs wait in the queue."""
        return sum(1 for _ in pending.read_entries(self.path))

    def flush_pending(self, *, lock_timeout_s: float | None = None, quiet: bool = False
                      ) -> int:
        """Move queued evaluation logs into the database; return how many were inserted.

        Each entry is inserted unless its eval_id is already logged (exactly once), its
        file removed after the commit. ``quiet``: a busy file leaves them queued (returns
        0) instead of raising StoreLockedError."""
        if not pending.has_entries(self.path):
            return 0
        try:
            with self.connect(lock_timeout_s=lock_timeout_s) as con:
                return self._flush_into(con)
        except StoreLockedError:
            if quiet:
                return 0
            raise

    def _flush_into(self, con: duckdb.DuckDBPyConnection) -> int:
        """Insert the queued entries on the read-write ``con``, each in its own transaction,
        its file removed after the commit; return how many were new. An entry the database
        refuses stays queued (the first such error is raised after the others went in)."""
        self._flushing = True
        inserted = 0
        refused: Exception | None = None
        try:
            for entry in pending.read_entries(self.path):
                con.execute("BEGIN TRANSACTION")
                try:
                    if scalar(con, "SELECT count(*) FROM trade_evaluations WHERE eval_id = ?",
                              [entry.eval_id]):
                        con.execute("ROLLBACK")  # logged before its file could be removed
                    else:
                        _insert_evaluation(con, entry.intent_row, entry.evaluation_row,
                                           entry.item_rows, entry.created_at)
                        con.execute("COMMIT")
                        inserted += 1
                except Exception as exc:
                    with suppress(duckdb.Error):  # a failed COMMIT has ended it already
                        con.execute("ROLLBACK")
                    refused = refused or exc
                    continue
                pending.remove_entry(entry)
        finally:
            self._flushing = False
        if refused is not None:
            raise refused
        return inserted

    def evaluations(self, user_id: str) -> pd.DataFrame:
        """Return one user's logged evaluations, newest first."""
        return self.query("SELECT * FROM trade_evaluations WHERE user_id = ? "
                          "ORDER BY created_at DESC", [user_id])

    def evaluation_items(self, eval_id: str, user_id: str) -> pd.DataFrame:
        """Return the items of one evaluation, scoped to its user."""
        return self.query("SELECT i.* FROM trade_evaluation_items i JOIN trade_evaluations e "
                          "USING (eval_id) WHERE i.eval_id = ? AND e.user_id = ? "
                          "ORDER BY i.eval_item_id", [eval_id, user_id])


def _insert_evaluation(con: duckdb.DuckDBPyConnection, intent_row: Mapping[str, Any],
                       evaluation_row: Mapping[str, Any], item_rows: Sequence[Mapping[str, Any]],
                       created_at: datetime) -> None:
    """Insert one evaluation's rows on ``con`` (inside the caller's transaction)."""
    # a lookup and a plain insert: ON CONFLICT DO NOTHING costs twice the insert (~4 ms)
    if not scalar(con, "SELECT count(*) FROM trade_intents WHERE intent_id = ?",
                  [intent_row["intent_id"]]):
        insert_rows(con, "trade_intents", [{**intent_row, "created_at": created_at}])
    insert_rows(con, "trade_evaluations", [{**evaluation_row, "created_at": created_at}])
    insert_rows(con, "trade_evaluation_items",
                [{**row, "created_at": created_at} for row in item_rows])


def series_where(symbols: Sequence[str] | None, timeframes: Sequence[str] | None
                 ) -> tuple[str, list[object]]:
    """Return a WHERE clause (or '') and its parameters selecting symbols and timeframes."""
    clauses: list[str] = []
    params: list[object] = []
    if symbols:
        clauses.append(f"symbol IN ({', '.join('?' * len(symbols))})")
        params.extend(s.upper() for s in symbols)
    if timeframes:
        clauses.append(f"timeframe IN ({', '.join('?' * len(timeframes))})")
        params.extend(timeframes)
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params


#: Tables keyed by (symbol, timeframe, ts) that snapshot jobs write with write_snapshots().
SNAPSHOT_TABLES = ("regime_snapshots", "key_levels", "regime_models", "mtfa_snapshots")

CONTEXT_BARS_SQL = f"""
SELECT * FROM (
    SELECT * FROM bars WHERE symbol = ? AND timeframe = ? AND {closed_by()}
    ORDER BY ts DESC LIMIT ?
) ORDER BY ts
"""
CONTEXT_FEATURES_SQL = f"""
SELECT * FROM (
    SELECT f.* FROM ta_features f JOIN bars b USING (symbol, timeframe, ts)
    WHERE f.symbol = ? AND f.timeframe = ? AND {closed_by("b")}
    ORDER BY f.ts DESC LIMIT ?
) ORDER BY ts
"""
CONTEXT_ACTIONS_SQL = """
SELECT * FROM corporate_actions WHERE symbol = ? AND ex_date <= CAST(? AS DATE) ORDER BY ex_date
"""


def _recorded_version(con: duckdb.DuckDBPyConnection) -> int:
    # this file's catalog only: other files may be attached to the process's instance
    exists = scalar(con, "SELECT count(*) FROM information_schema.tables WHERE table_name = "
                         "'schema_migrations' AND table_catalog = current_database()")
    if not exists:
        return 0
    return int(scalar(con, "SELECT coalesce(max(version), 0) FROM schema_migrations"))


def _applied_versions(con: duckdb.DuckDBPyConnection) -> set[int]:
    return {int(r[0]) for r in con.execute("SELECT version FROM schema_migrations").fetchall()}


#: What a table-family read takes: the store (a read connection of its own) or a connection
#: the caller holds (inside its transaction, or one read connection for many reads).
StoreOrCon = Store | duckdb.DuckDBPyConnection


@contextmanager
def reader(source: StoreOrCon) -> Iterator[duckdb.DuckDBPyConnection]:
    """Yield a read connection of ``source``: its own for a Store, else the connection."""
    if isinstance(source, Store):
        with source.connect(read_only=True) as con:
            yield con
    else:
        yield source


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] = ()) -> Any:
    """Run ``sql`` and return the first value of its first row (an aggregate, a setting).

    Raises LookupError when the query returns no row."""
    row = con.execute(sql, list(params)).fetchone()
    if row is None:
        raise LookupError(f"no row from: {' '.join(sql.split())}")
    return row[0]


def _record(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any]
            ) -> dict[str, Any] | None:
    """Return the first row of ``sql`` as a dict of Python values, or None (a frame for
    one row costs several times the query)."""
    row = con.execute(sql, list(params)).fetchone()
    if row is None:
        return None
    return dict(zip([d[0] for d in con.description], row, strict=True))


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
        "AND table_catalog = current_database() ORDER BY ordinal_position", [table]
    ).fetchall()]


@contextmanager
def registered(con: duckdb.DuckDBPyConnection, name: str, frame: Frame
                ) -> Iterator[None]:
    """Expose ``frame`` to SQL as ``name`` for the duration of the block."""
    con.register(name, frame)
    try:
        yield
    finally:
        # after a failed statement the transaction is aborted; the view dies with it
        with suppress(duckdb.TransactionException):
            con.unregister(name)


def _names(frame: Frame) -> list[str]:
    return list(frame.column_names if isinstance(frame, pa.Table) else frame.columns)


def insert_frame(con: duckdb.DuckDBPyConnection, table: str, frame: Frame, *,
            on_conflict: str | None = None) -> int:
    """Insert ``frame`` into ``table`` by column name in one statement; return the row count.

    ``con`` is the connection of the caller's ``Store.transaction()``, so several tables are
    written all or nothing; ``on_conflict`` is the clause after ON CONFLICT (e.g. 'DO
    NOTHING'). Raises ValueError naming any column the table lacks."""
    given = _names(frame)
    columns = [c for c in _columns(con, table) if c in given]
    extra = sorted(set(given) - set(columns))
    if extra:
        raise ValueError(f"{table}: unknown columns {extra}")
    names = ", ".join(f'"{c}"' for c in columns)
    conflict = f" ON CONFLICT {on_conflict}" if on_conflict else ""
    with registered(con, "_incoming", frame):
        con.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM _incoming{conflict}")
    return len(frame)


def insert_rows(con: duckdb.DuckDBPyConnection, table: str,
                rows: Sequence[Mapping[str, Any]], *, on_conflict: str | None = None) -> int:
    """Insert a few rows (dicts with the same keys) into ``table`` by column name in one
    prepared statement; return the row count.

    For a handful of rows this is several times cheaper than ``insert_frame`` (no frame to
    build and register, no catalogue lookup); DuckDB's error names an unknown column."""
    if not rows:
        return 0
    columns = list(rows[0])
    for n, row in enumerate(rows):
        if set(row) != set(columns):
            raise ValueError(f"{table}: row {n} has columns {sorted(row)}, row 0 has "
                             f"{sorted(columns)}")
    names = ", ".join(f'"{c}"' for c in columns)
    one = "(" + ", ".join("?" * len(columns)) + ")"
    conflict = f" ON CONFLICT {on_conflict}" if on_conflict else ""
    con.execute(f"INSERT INTO {table} ({names}) VALUES {', '.join([one] * len(rows))}{conflict}",
                [row[c] for row in rows for c in columns])
    return len(rows)


def _replace_by_symbol(con: duckdb.DuckDBPyConnection, table: str, frame: Frame) -> int:
    with registered(con, "_replacing", frame):
        con.execute(f"DELETE FROM {table} WHERE symbol IN (SELECT symbol FROM _replacing)")
    return insert_frame(con, table, frame)


def _replace_ranges(con: duckdb.DuckDBPyConnection, table: str, frame: Frame) -> int:
    keys = frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(
        frame[["symbol", "timeframe", "ts"]], preserve_index=False)
    ranges = keys.group_by(["symbol", "timeframe"]).aggregate([("ts", "min"), ("ts", "max")])
    with registered(con, "_ranges", ranges):
        con.execute(f"DELETE FROM {table} t USING _ranges r WHERE t.symbol = r.symbol AND "
                    "t.timeframe = r.timeframe AND t.ts BETWEEN r.ts_min AND r.ts_max")
    return insert_frame(con, table, frame)
