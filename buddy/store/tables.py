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
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa

if TYPE_CHECKING:
    from buddy.store.core import Store

T = TypeVar("T")

_lock = threading.Lock()
_held: dict[str, Any] = {}
_held_key: list[tuple[Any, ...]] = []


def file_state(store: Store) -> tuple[Any, ...]:
    """Return the cache key of ``store``'s file as it is now: (resolved path, inode or None
    when absent, context stamp)."""
    path = os.path.realpath(store.path)
    try:
        inode: int | None = os.stat(path).st_ino
    except FileNotFoundError:
        inode = None
    return path, inode, store.context_stamp()


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


def arrow_frame(table: pa.Table) -> pd.DataFrame:
    """Return an Arrow table as the DataFrame DuckDB's ``.df()`` gives for the same rows
    (DATE columns as datetime64[us], not Python dates)."""
    fields = []
    for field in table.schema:
        if pa.types.is_date(field.type):
            fields.append(pa.field(field.name, pa.timestamp("us")))
        else:
            fields.append(field)
    return table.cast(pa.schema(fields)).to_pandas()


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

    def __post_init__(self) -> None:
        # one chunk per column: ``take`` on a chunked table costs a pass over every chunk
        # (40 ms a call on 500k level rows, against 0.3 ms once combined)
        object.__setattr__(self, "table", self.table.combine_chunks())

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
        """Return the rows at positions ``at`` of the whole table (for column-wise use)."""
        return self.table.take(pa.array(np.asarray(at, dtype=np.int64)))
