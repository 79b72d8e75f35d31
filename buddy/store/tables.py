"""Whole tables read once per process and kept while the file is unchanged.

A replay worker builds the context of chunk after chunk from one database file. Reading each
table it needs once, whole, as Arrow (then columns), instead of once per chunk and per series
through pandas, is most of what the context build used to cost. The table-family modules
(``buddy.store.bars``, ``levels``, ``regime``) own the queries; this module owns the cache.

The cache key is the file's identity and context state: its resolved path, its inode (a
file replaced at the same path is another file) and the context stamp, which every write of
what a context reads moves (``Store.touch_context_stamp``: market data, snapshots, events,
anchors, accounts; the ContextPack cache keys on the same stamp). Writes that leave the
context alone (replay results, evaluation logs) keep the cache, so a replay worker reads each
table once while the run writes its results to the same file. One file's tables are held at
a time (a new key drops the old tables). Point-in-time cuts are applied by the callers after
the read (``buddy.store.bars``).

Processes that read the same tables at the same time (a replay's workers) can share the
reads: after ``share_reads(directory)`` each query result that ``arrow_table`` reads is
written once to ``directory`` as an Arrow IPC file named by the file's state and the query,
and every other process memory-maps it instead of querying DuckDB again (a lock per file
makes a second reader wait for the first rather than read the same table beside it). The
mapped pages are shared, not copied, between the processes. The directory belongs to whoever
made it (``replay.engine.run_replay`` uses ``process_reads_directory``: one per process,
removed at its exit).
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.ipc as ipc

from buddy.processes import running

if TYPE_CHECKING:
    from buddy.store.core import Store

T = TypeVar("T")

_lock = threading.Lock()
_held: dict[str, Any] = {}
_held_key: list[tuple[Any, ...]] = []


def file_state(store: Store) -> tuple[Any, ...]:
    """Return the cache key of ``store``'s file as it is now: (resolved path, inode or None
    when absent, context stamp)."""
    path = _resolved(str(store.path))
    try:
        # through the link, if the path is one: a link moved to another file is another inode
        inode: int | None = os.stat(store.path).st_ino
    except FileNotFoundError:
        inode = None
    return path, inode, store.context_stamp()


#: Each path's resolved form, as first resolved (a batch asks for the key of the same file a
#: thousand times per chunk, and resolving costs most of asking).
_RESOLVED: dict[str, str] = {}


def _resolved(path: str) -> str:
    resolved = _RESOLVED.get(path)
    if resolved is None:
        resolved = _RESOLVED[path] = os.path.realpath(path)
        if len(_RESOLVED) > 1024:  # a long process that opens many files keeps a few
            _RESOLVED.clear()
            _RESOLVED[path] = resolved
    return resolved


def cached(store: Store, name: str, read: Callable[[Store], T]) -> T:
    """Return ``read(store)`` as cached under ``name`` for the file's current state."""
    key = file_state(store)
    with _lock:
        if not _held_key or _held_key[0] != key:
            _held.clear()
            _held_key[:] = [key]
        if name in _held:
            return _held[name]
    value = read(store)
    with _lock:
        # kept only while nothing moved during the read (a write, another thread's file)
        if file_state(store) == key and _held_key and _held_key[0] == key:
            _held.setdefault(name, value)
    return value


def clear() -> None:
    """Drop every cached table (tests; a process that is done with its file)."""
    with _lock:
        _held.clear()
        _held_key.clear()


#: The directory this process shares whole-table reads through (None: not shared).
_shared: list[Path | None] = [None]


def share_reads(directory: str | Path | None) -> None:
    """Share this process's ``arrow_table`` reads through Arrow IPC files in ``directory``
    (None: stop sharing). The directory must exist; its files are named by the database
    file's state, so a changed file is never read from an older state's files."""
    _shared[0] = None if directory is None else Path(directory)


@contextlib.contextmanager
def reads_shared(directory: str | Path | None) -> Iterator[None]:
    """Share this process's reads through ``directory`` inside the block (``share_reads``),
    then go back to what was set before."""
    before = _shared[0]
    share_reads(directory)
    try:
        yield
    finally:
        _shared[0] = before


#: This process's directory for shared reads (``process_reads_directory``), once made.
_process_directory: list[Path] = []
_PREFIX = "buddy-tables-"


def process_reads_directory() -> Path:
    """Return this process's directory for shared reads, made on first use in the temporary
    directory and removed when the process exits; directories left by processes that died
    without removing theirs are removed on the way.

    It outlives a run on purpose: the next run of this process (a bench's or a weight
    search's series of replays, each with new workers) maps the tables of an unchanged file
    instead of reading them again.
    """
    with _lock:
        if _process_directory:
            return _process_directory[0]
        root = Path(tempfile.gettempdir())
        for stale in root.glob(f"{_PREFIX}*"):
            owner = stale.name.removeprefix(_PREFIX).partition("-")[0]
            if owner.isdigit() and not running(int(owner)):
                shutil.rmtree(stale, ignore_errors=True)
        directory = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-", dir=root))
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
        _process_directory.append(directory)
        return directory


def forget_process_reads() -> None:
    """Remove this process's shared-reads directory (its next run reads every table again,
    as a run in a new process does: benchmarks that compare runs)."""
    with _lock:
        if _process_directory:
            shutil.rmtree(_process_directory.pop(), ignore_errors=True)


def arrow_table(store: Store, name: str, read: Callable[[Store], pa.Table]) -> pa.Table:
    """Return ``read(store)`` (a whole-table query as Arrow, in the chunks it was read in:
    callers that take rows combine them; the others copy columns out anyway).

    With ``share_reads`` on, from the shared directory's IPC file of this file state and
    ``name`` (memory-mapped, no copy) when one exists; else read, written there for the
    other processes (replacing the files of the same database file's older states), and
    returned mapped. ``name`` must say everything that makes the query (its parameters too).
    """
    directory = _shared[0]
    if directory is None or not directory.is_dir():
        return read(store)
    path_key, inode, stamp = file_state(store)
    database = _digest(path_key)
    state = _digest((inode, stamp))
    stem = f"{database}.{state}.{_digest(name)}"
    path = directory / f"{stem}.arrow"
    with _file_lock(directory / f"{stem}.lock"):
        if not path.exists():
            table = read(store)
            partial = directory / f"{stem}.{os.getpid()}.partial"
            with pa.OSFile(str(partial), "wb") as sink, ipc.new_file(sink, table.schema
                                                                       ) as writer:
                writer.write_table(table)
            os.replace(partial, path)  # readers never see half a file
            _drop_older(directory, database, state)
    try:
        # the table's buffers keep the mapping alive (closing the file here would unmap them)
        return ipc.open_file(pa.memory_map(str(path))).read_all()
    except FileNotFoundError:  # dropped meanwhile by a writer of a newer state: read it
        return read(store)


#: The names of the files ``arrow_table`` writes: database.state.query digests + suffix.
_OUR_FILE = re.compile(r"([0-9a-f]{24})\.([0-9a-f]{24})\.([0-9a-f]{24})(?:\.\d+\.partial|"
                       r"\.arrow|\.lock)")
#: Database files whose shared reads a directory keeps (the newest written): a long process
#: that opens many files (a test session) holds the tables of a few, not of all of them.
SHARED_DATABASES = 2


def _drop_older(directory: Path, database: str, state: str) -> None:
    """Remove the files of ``database``'s other states and of all but the newest
    SHARED_DATABASES databases (a process that mapped one keeps reading it: the mapping
    outlives the name)."""
    ours = [(path, found) for path in directory.iterdir()
            if (found := _OUR_FILE.fullmatch(path.name)) is not None]  # nothing else
    newest: dict[str, float] = {}
    for path, found in ours:
        owner, owner_state = found.group(1), found.group(2)
        if owner == database and owner_state != state and path.suffix == ".arrow":
            path.unlink(missing_ok=True)
        elif path.suffix == ".arrow" and owner != database:
            with contextlib.suppress(FileNotFoundError):
                newest[owner] = max(newest.get(owner, 0.0), path.stat().st_mtime)
    keep = {database, *sorted(newest, key=newest.__getitem__, reverse=True)[
        :SHARED_DATABASES - 1]}
    for path, found in ours:
        if found.group(1) not in keep and path.suffix in (".arrow", ".lock"):
            path.unlink(missing_ok=True)


def _digest(value: Any) -> str:
    return hashlib.sha256(repr(value).encode()).hexdigest()[:24]


def query_arrow(store: Store, sql: str, params: list[Any] | None = None) -> pa.Table:
    """Return a whole-table query's result as Arrow, shared between processes as
    ``arrow_table`` says (the table-family modules own the SQL)."""
    def read(store: Store) -> pa.Table:
        with store.connect(read_only=True) as con:
            # one batch on one DuckDB thread (a replay's); a parallel read's come combined
            return con.sql(sql, params=params).to_arrow_table(WHOLE_BATCH_ROWS).combine_chunks()

    return arrow_table(store, repr((sql, params)), read)


#: Rows per Arrow batch of a whole-table read: all of them. A table of one chunk is mapped by
#: every reader as it is (``arrow_frame``'s numbers and a ``combine_chunks`` copy nothing);
#: DuckDB's default batch cut the 500k-row bench tables in four, and each replay worker then
#: copied ~300 MB of them into memory of its own (~50k page faults of its first chunk).
#: DuckDB allocates batches as it fills them, not to this size.
WHOLE_BATCH_ROWS = 1 << 40


#: A whole-table query as ``query_arrow`` takes it: (SQL, parameters or None).
WholeQuery = tuple[str, list[Any] | None]


def share_ahead(store: Store, queries: Iterable[WholeQuery]) -> None:
    """Read each whole-table query into this process's shared directory now, unless it is
    there already (nothing without ``share_reads``; nothing is kept in this process).

    A batch run's parent does it while its workers start and it sets the run up: the workers'
    first chunk then maps the tables instead of reading them one after the other (each
    waiting for the other's read of the same table)."""
    if _shared[0] is None:
        return
    for sql, params in queries:
        query_arrow(store, sql, params)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (POSIX flock; elsewhere no lock: a second
    process then reads the table beside the first, as without sharing)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def arrow_frame(table: pa.Table) -> pd.DataFrame:
    """Return an Arrow table as the DataFrame DuckDB's ``.df()`` gives for the same rows
    (DATE columns as datetime64[us], not Python dates).

    A column per block: a numeric column without nulls of a one-chunk table (a mapped shared
    read) is the table's own memory, read-only (pandas copies on write), not a copy."""
    fields = []
    for column in table.schema:
        if pa.types.is_date(column.type):
            fields.append(pa.field(column.name, pa.timestamp("us")))
        else:
            fields.append(column)
    return table.cast(pa.schema(fields)).to_pandas(split_blocks=True)


@dataclass(frozen=True, slots=True)
class SeriesTable:
    """A whole table ordered by (symbol, timeframe, ts), with each series' row span."""

    frame: pd.DataFrame
    spans: dict[tuple[str, str], tuple[int, int]]

    @classmethod
    def of(cls, frame: pd.DataFrame) -> SeriesTable:
        """Index ``frame`` (sorted by symbol, timeframe, ts) by series."""
        if not len(frame):
            return cls(frame, {})
        symbol, symbols = pd.factorize(frame["symbol"])
        timeframe, timeframes = pd.factorize(frame["timeframe"])
        return cls(frame, _spans(symbol, timeframe,
                                 np.array([*symbols.tolist(), None], dtype=object),
                                 np.array([*timeframes.tolist(), None], dtype=object)))

    def span(self, symbol: str, timeframe: str) -> tuple[int, int]:
        """Return the series' [start, stop) rows ((0, 0) when it has none)."""
        return self.spans.get((symbol, timeframe), (0, 0))

    def series(self, symbol: str, timeframe: str) -> pd.DataFrame:
        """Return the series' rows (index from 0)."""
        a, b = self.span(symbol, timeframe)
        return self.frame.iloc[a:b].reset_index(drop=True)


def _spans(symbol: np.ndarray, timeframe: np.ndarray, symbols: np.ndarray,
           timeframes: np.ndarray) -> dict[tuple[str, str], tuple[int, int]]:
    """Return each series' [start, stop) rows from per row codes of its symbol and timeframe
    (rows sorted by them; ``symbols[code]``, ``timeframes[code]`` name a code, -1 the
    last entry)."""
    edge = np.flatnonzero((symbol[1:] != symbol[:-1]) | (timeframe[1:] != timeframe[:-1]))
    starts = np.concatenate([[0], edge + 1])
    stops = np.concatenate([edge + 1, [len(symbol)]])
    first_symbol = symbols[symbol[starts]].tolist()
    first_timeframe = timeframes[timeframe[starts]].tolist()
    return {(str(s), str(t)): (a, b) for s, t, a, b in zip(
        first_symbol, first_timeframe, starts.tolist(), stops.tolist(), strict=True)}


def utc_ns_column(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Return a timestamp column as int64 UTC nanoseconds (nulls as INT64_MIN)."""
    values = column.cast(pa.timestamp("ns", tz="UTC")).cast(pa.int64())
    return values.fill_null(np.iinfo(np.int64).min).to_numpy()


@dataclass(frozen=True, slots=True)
class ArrowSeries:
    """A whole Arrow table ordered by series (symbol, timeframe) then bar time, with each
    series' row span; rows are handed out as Python dicts (``to_pylist``) on demand."""

    table: pa.Table
    spans: dict[tuple[str, str], tuple[int, int]]
    #: the table's record batches (zero-copy slices) and each one's first row, then the end
    _batches: list[pa.RecordBatch] = field(init=False, repr=False, compare=False)
    _starts: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # ``take`` on a chunked table costs a pass over every chunk (40 ms a call on 500k
        # level rows, against 0.3 ms on one chunk), and combining the chunks once copies
        # the whole table (0.8 s CPU on 500k level rows; in a replay worker a private copy
        # of pages it could share): ``take`` reads each batch it needs in place instead
        batches = self.table.to_batches()
        object.__setattr__(self, "_batches", batches)
        object.__setattr__(self, "_starts", np.cumsum(
            [0, *(b.num_rows for b in batches)], dtype=np.int64))

    @classmethod
    def of(cls, table: pa.Table, symbol: str = "symbol", timeframe: str = "timeframe"
           ) -> ArrowSeries:
        """Index ``table`` by its ``symbol`` and ``timeframe`` columns (sorted by them)."""
        if not table.num_rows:
            return cls(table, {})
        codes, names = [], []
        for name in (symbol, timeframe):
            # integer codes compared, not a Python string per row
            encoded = table.column(name).combine_chunks().dictionary_encode()
            codes.append(encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False))
            names.append(np.array([*encoded.dictionary.to_pylist(), None], dtype=object))
        return cls(table, _spans(codes[0], codes[1], names[0], names[1]))

    def span(self, symbol: str, timeframe: str) -> tuple[int, int]:
        """Return the series' [start, stop) rows ((0, 0) when it has none)."""
        return self.spans.get((symbol, timeframe), (0, 0))

    def rows(self, at: np.ndarray) -> list[dict[str, Any]]:
        """Return the rows at positions ``at`` of the whole table as dicts."""
        return self.take(at).to_pylist()

    def take(self, at: np.ndarray) -> pa.Table:
        """Return the rows at positions ``at`` of the whole table (for column-wise use), in
        one chunk."""
        at = np.asarray(at, dtype=np.int64)
        if len(self._batches) <= 1:
            return self.table.take(pa.array(at))
        order = None
        if len(at) > 1 and (at[1:] < at[:-1]).any():
            order = np.argsort(at, kind="stable")
            at = at[order]
        if len(at) and (at[0] < 0 or at[-1] >= self.table.num_rows):
            raise IndexError(f"row {at[0] if at[0] < 0 else at[-1]} of a table of "
                             f"{self.table.num_rows} rows")
        starts = self._starts
        batch_of = np.searchsorted(starts, at, side="right") - 1
        bounds = np.searchsorted(batch_of, np.arange(len(self._batches) + 1))
        parts = [self._batches[b].take(pa.array(at[bounds[b]:bounds[b + 1]] - starts[b]))
                 for b in range(len(self._batches)) if bounds[b + 1] > bounds[b]]
        taken = pa.Table.from_batches(parts, schema=self.table.schema).combine_chunks()
        if order is None:
            return taken
        back = np.empty_like(order)
        back[order] = np.arange(len(order))
        return taken.take(pa.array(back))
