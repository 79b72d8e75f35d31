"""Events in the store: the shared ``events`` table (earnings, macro dates, closures).

Reads are point-in-time by ``announced_at``: as of t, only events announced by t are known.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np
import pandas as pd

from buddy.store.core import Store
from buddy.store.tables import cached

#: Events of one symbol (and market-wide ones) in [start, end], announced by as_of.
_EVENTS_BETWEEN_SQL = """
SELECT event_id, symbol, kind, ts, title, source, announced_at FROM events
WHERE (symbol = ? OR symbol IS NULL) AND announced_at <= ? AND ts >= ? AND ts <= ?
ORDER BY ts, event_id
"""
#: How many of a symbol's earnings dates were announced by as_of (past or future).
_EARNINGS_KNOWN_SQL = """
SELECT count(*) AS n FROM events WHERE symbol = ? AND kind = 'earnings' AND announced_at <= ?
"""
#: Every event, whenever announced (symbol_events picks a symbol's and the market-wide ones).
_ALL_EVENTS_SQL = """
SELECT event_id, symbol, kind, ts, title, source, announced_at FROM events
ORDER BY ts, event_id
"""
#: A row given no announced_at keeps the earlier of its stored and new time on a re-import.
_UPSERT_SQL = """
INSERT OR REPLACE INTO events
SELECT i.event_id, i.symbol, i.kind, i.ts, i.title, i.source,
       CASE WHEN i.announced_given THEN i.announced_at
            ELSE coalesce(least(e.announced_at, i.announced_at), i.announced_at) END,
       i.imported_at
FROM _events_in i LEFT JOIN events e USING (event_id)
"""


def write_events(store: Store, frame: pd.DataFrame) -> tuple[int, int]:
    """Insert or replace the validated events of ``frame`` (events columns plus
    ``announced_given``) in ONE transaction; return (rows replaced, rows announced after
    their ts)."""
    with store.transaction() as con:
        con.register("_events_in", frame)
        # fetchall, not fetchone: DuckDB refuses the next statement while a result is unfinished
        replaced = con.execute("SELECT count(*) FROM events WHERE event_id IN "
                               "(SELECT event_id FROM _events_in)").fetchall()[0][0]
        con.execute(_UPSERT_SQL)
        hidden = con.execute("SELECT count(*) FROM events WHERE announced_at > ts AND "
                             "event_id IN (SELECT event_id FROM _events_in)").fetchall()[0][0]
        con.unregister("_events_in")
    return int(replaced), int(hidden)


def events_between(store: Store, symbol: str, start: datetime, end: datetime,
                   as_of: datetime) -> tuple[pd.DataFrame, int]:
    """Return the events of ``symbol`` and market-wide ones in [start, end] announced by
    ``as_of`` (by ts, event_id), and how many earnings dates of ``symbol`` were announced by
    then; read in one connection."""
    with store.connect(read_only=True) as con:
        rows = con.execute(_EVENTS_BETWEEN_SQL, [symbol, as_of, start, end]).df()
        n_earnings = con.execute(_EARNINGS_KNOWN_SQL, [symbol, as_of]).fetchall()[0][0]
    return rows, int(n_earnings)


def symbol_events(store: Store, symbols: Sequence[str]) -> list[tuple[str, pd.DataFrame]]:
    """Return, per symbol, its events and the market-wide ones whenever announced (by ts,
    event_id; callers filter by as_of), from one read of the events table per process while
    the file is unchanged (``buddy.store.tables``)."""
    every = cached(store, "events", lambda s: s.query(_ALL_EVENTS_SQL))
    if not len(every):  # no events at all: no mask per symbol
        return [(name, every) for name in symbols]
    codes, names = pd.factorize(every["symbol"].to_numpy(object))  # market-wide: -1
    code_of = {name: k for k, name in enumerate(names.tolist())}
    order = np.argsort(codes, kind="stable")  # each symbol's rows together, by ts
    bounds = np.searchsorted(codes[order], np.arange(-1, len(names) + 1))
    market_wide = order[bounds[0]:bounds[1]]
    out = []
    for name in symbols:
        k = code_of.get(name)
        own = order[bounds[k + 1]:bounds[k + 2]] if k is not None else market_wide[:0]
        # the table's order (ts, event_id) kept: the rows by position
        rows = np.sort(np.concatenate([own, market_wide]))
        out.append((name, every.iloc[rows].reset_index(drop=True)))
    return out
