"""Key levels in the store: the ``key_levels`` table (typed columns, migration 0011), the
user anchors of ``level_anchors``, and the point-in-time reads the key-levels provider makes.

``key_levels`` keeps the seed's columns and names; the nested levels are typed values:
``pivots_json`` (STRUCT of method -> STRUCT of level -> DOUBLE), ``anchored_vwap_levels_json``
and ``support_resistance_json`` (LIST of STRUCT). The reads below return them as ``pivots``,
``anchored_vwap_levels`` and ``support_resistance`` (``STORED_NAMES`` maps the column names
to those). Prices are on bar ts's as-traded basis.

Reads take an open connection (the provider reads several things in one), all point-in-time:
nothing with ``ts_close`` after as_of, no anchor set at or after as_of.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from buddy.store.bars import closed_by
from buddy.store.core import Store, scalar

#: key_levels (and compute_key_levels) column -> the name reads return, for the nested levels.
STORED_NAMES: dict[str, str] = {
    "pivots_json": "pivots",
    "anchored_vwap_levels_json": "anchored_vwap_levels",
    "support_resistance_json": "support_resistance",
}
#: The nested key_levels columns, in table order.
NESTED_COLUMNS: tuple[str, ...] = tuple(STORED_NAMES.values())

_LAST_BAR_SQL = ("SELECT ts, session FROM bars WHERE symbol = ? AND timeframe = ? AND "
                 f"{closed_by()} ORDER BY ts DESC LIMIT 1")
_READ_NESTED = ("pivots_json AS pivots, anchored_vwap_levels_json AS anchored_vwap_levels, "
                "support_resistance_json AS support_resistance")
_ROW_SQL = ("SELECT * EXCLUDE (pivots_json, anchored_vwap_levels_json, support_resistance_json), "
            f"{_READ_NESTED} FROM key_levels WHERE symbol = ? AND timeframe = ? AND ts = ? AND "
            "version = ?")
_ACTIONS_SQL = ("SELECT * FROM corporate_actions WHERE symbol = ? AND ex_date <= CAST(? AS "
                "DATE) ORDER BY ex_date")
_ALL_ACTIONS_SQL = "SELECT * FROM corporate_actions WHERE symbol = ? ORDER BY ex_date"
_ANCHORS_SQL = ("SELECT name, anchor_ts FROM level_anchors WHERE user_id = ? AND symbol = ? "
                "AND anchor_ts < ? ORDER BY name")
#: Each user's earliest anchor on the symbol: a row whose as_of is after it has anchors.
_FIRST_ANCHORS_SQL = ("SELECT user_id, min(anchor_ts) AS first_anchor FROM level_anchors "
                      "WHERE symbol = ? GROUP BY user_id")
_BARS_SQL = f"SELECT * FROM bars WHERE symbol = ? AND timeframe = ? AND {closed_by()} ORDER BY ts"
_BARS_SINCE_SQL = (f"SELECT * FROM bars WHERE symbol = ? AND timeframe = ? AND {closed_by()} "
                   "AND ts_close > ? ORDER BY ts")
#: Every bar of one series closed by the last as_of, with the scalar columns of its
#: key_levels row of the given version (NULLs and stored = false when none). The nested
#: columns are left out: converting them costs per row, and rows on one bar share them, so
#: ``nested_levels`` reads them for the distinct bars in use only.
_SERIES_SQL = f"""
SELECT b.ts AS bar_ts, b.ts_close, b.session, k.ts IS NOT NULL AS stored,
       k.* EXCLUDE (pivots_json, anchored_vwap_levels_json, support_resistance_json)
FROM bars b
LEFT JOIN key_levels k ON k.symbol = b.symbol AND k.timeframe = b.timeframe AND k.ts = b.ts
    AND k.version = ?
WHERE b.symbol = ? AND b.timeframe = ? AND {closed_by("b")}
ORDER BY b.ts
"""
_NESTED_SQL = f"""
SELECT ts, {_READ_NESTED} FROM key_levels
WHERE symbol = ? AND timeframe = ? AND version = ? AND ts IN (SELECT unnest(?))
"""
_CALENDAR_SQL = "SELECT trading_calendar FROM tickers WHERE symbol = ?"
_CALENDARS_SQL = "SELECT symbol, trading_calendar FROM tickers"
_COVERAGE_SQL = ("SELECT symbol, timeframe, max(ts) AS last_ts, min(version) AS oldest, "
                 "max(version) AS newest FROM key_levels GROUP BY ALL")


def write_key_levels(store: Store, table: pa.Table) -> int:
    """Replace the key_levels rows of each (symbol, timeframe) in the range of ``table``
    (compute_key_levels columns plus computed_at), in one transaction; return rows written.
    The nested levels go in as typed values: no JSON is encoded."""
    return store.write_snapshots("key_levels", table)


def stored_coverage(store: Store) -> pd.DataFrame:
    """Return per stored (symbol, timeframe) the last ts and the oldest and newest version."""
    return store.query(_COVERAGE_SQL)


def trading_calendar(con: duckdb.DuckDBPyConnection, symbol: str) -> str | None:
    """Return the trading calendar name of ``symbol`` (None when the symbol is unknown)."""
    found = con.execute(_CALENDAR_SQL, [symbol]).fetchall()
    return str(found[0][0]) if found and found[0][0] is not None else None


def trading_calendars(store: Store) -> dict[str, str]:
    """Return symbol -> trading calendar name of every ticker."""
    frame = store.query(_CALENDARS_SQL)
    return {str(r.symbol): str(r.trading_calendar) for r in frame.itertuples()
            if r.trading_calendar is not None}


def last_closed_bar(con: duckdb.DuckDBPyConnection, symbol: str, timeframe: str,
                    as_of: datetime) -> tuple[Any, Any] | None:
    """Return (ts, session) of the last bar of the series closed at ``as_of``, or None."""
    found = con.execute(_LAST_BAR_SQL, [symbol, timeframe, as_of]).fetchall()
    return (found[0][0], found[0][1]) if found else None


def key_levels_row(con: duckdb.DuckDBPyConnection, symbol: str, timeframe: str, ts: datetime,
                   version: str) -> dict[str, Any] | None:
    """Return the key_levels row of bar ``ts`` written by ``version`` as a dict, or None."""
    frame = con.execute(_ROW_SQL, [symbol, timeframe, ts, version]).df()
    return None if frame.empty else frame.iloc[0].to_dict()


def actions_known(con: duckdb.DuckDBPyConnection, symbol: str, as_of: datetime
                  ) -> pd.DataFrame:
    """Return the corporate actions of ``symbol`` ex-dated on or before as_of's date."""
    return con.execute(_ACTIONS_SQL, [symbol, as_of]).df()


def all_actions(con: duckdb.DuckDBPyConnection, symbol: str) -> pd.DataFrame:
    """Return every corporate action of ``symbol`` by ex_date (callers filter by as_of)."""
    return con.execute(_ALL_ACTIONS_SQL, [symbol]).df()


def anchors_before(con: duckdb.DuckDBPyConnection, user_id: str, symbol: str,
                   as_of: datetime) -> list[tuple[str, Any]]:
    """Return (name, anchor_ts) of the user's anchors on ``symbol`` set before as_of."""
    return [(str(name), at) for name, at in
            con.execute(_ANCHORS_SQL, [user_id, symbol, as_of]).fetchall()]


def first_anchors(con: duckdb.DuckDBPyConnection, symbol: str) -> pd.DataFrame:
    """Return each user's earliest anchor time on ``symbol`` (user_id, first_anchor)."""
    return con.execute(_FIRST_ANCHORS_SQL, [symbol]).df()


def bars_closed(con: duckdb.DuckDBPyConnection, symbol: str, timeframe: str, as_of: datetime,
                *, after: datetime | None = None) -> pd.DataFrame:
    """Return the series' bars closed at as_of (and after ``after`` when given), by ts."""
    if after is None:
        return con.execute(_BARS_SQL, [symbol, timeframe, as_of]).df()
    return con.execute(_BARS_SINCE_SQL, [symbol, timeframe, as_of, after]).df()


def series_levels(con: duckdb.DuckDBPyConnection, symbol: str, timeframe: str,
                  until: datetime, version: str) -> pd.DataFrame:
    """Return every bar of the series closed by ``until`` (bar_ts, ts_close, session) with
    ``stored`` and the scalar columns of its key_levels row of ``version``."""
    return con.execute(_SERIES_SQL, [version, symbol, timeframe, until]).df()


def nested_levels(con: duckdb.DuckDBPyConnection, symbol: str, timeframe: str, version: str,
                  ts: Sequence[Any]) -> dict[pd.Timestamp, dict[str, Any]]:
    """Return the nested columns (NESTED_COLUMNS) of the key_levels rows of bars ``ts``,
    by bar ts."""
    stamps = [pd.Timestamp(t).to_pydatetime() for t in ts]
    if not stamps:
        return {}
    frame = con.execute(_NESTED_SQL, [symbol, timeframe, version, stamps]).df()
    return {pd.Timestamp(row.pop("ts")): row for row in frame.to_dict("records")}


# ---------------------------------------------------------------------------- anchors
def replace_anchor(store: Store, user_id: str, symbol: str, name: str, anchor_ts: datetime
                   ) -> None:
    """Save (or move) the user's anchor ``name`` on ``symbol`` in one transaction."""
    with store.transaction() as con:
        con.execute("DELETE FROM level_anchors WHERE user_id = ? AND symbol = ? AND name = ?",
                    [user_id, symbol, name])
        con.execute("INSERT INTO level_anchors VALUES (?, ?, ?, ?, now())",
                    [user_id, symbol, name, anchor_ts])


def delete_anchor(store: Store, user_id: str, symbol: str, name: str) -> bool:
    """Delete the user's anchor ``name`` on ``symbol``; return whether it existed."""
    with store.transaction() as con:
        found = scalar(con, "SELECT count(*) FROM level_anchors WHERE user_id = ? AND "
                       "symbol = ? AND name = ?", [user_id, symbol, name])
        con.execute("DELETE FROM level_anchors WHERE user_id = ? AND symbol = ? AND name = ?",
                    [user_id, symbol, name])
    return bool(found)


def user_anchors(store: Store, user_id: str, symbol: str) -> pd.DataFrame:
    """Return the user's anchors on ``symbol`` (name, anchor_ts), by name."""
    return store.query("SELECT name, anchor_ts FROM level_anchors WHERE user_id = ? AND "
                       "symbol = ? ORDER BY name", [user_id, symbol])
