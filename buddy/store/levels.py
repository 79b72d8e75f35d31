"""Key levels in the store: the ``key_levels`` table (typed columns, migration 0011), the
user anchors of ``level_anchors``, and the point-in-time reads the key-levels provider makes.

``key_levels`` keeps the seed's columns and names; the nested levels are typed values:
``pivots_json`` (STRUCT of method -> STRUCT of level -> DOUBLE), ``anchored_vwap_levels_json``
and ``support_resistance_json`` (LIST of STRUCT). The reads below return them as ``pivots``,
``anchored_vwap_levels`` and ``support_resistance`` (``STORED_NAMES`` maps the column names
to those). Prices are on bar ts's as-traded basis.

Row reads take an open connection (the provider reads several things in one), all
point-in-time: nothing with ``ts_close`` after as_of, no anchor set at or after as_of. The
whole-table reads of the batch form (``all_levels``, ``symbol_first_anchors``) are read once
per process (``buddy.store.tables``); their callers take each row's last bar with
``ts_close <= as_of``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from buddy.store.bars import closed_by
from buddy.store.core import Store, scalar
from buddy.store.tables import ArrowSeries, cached, query_arrow, utc_ns_column

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
_ANCHORS_SQL = ("SELECT name, anchor_ts FROM level_anchors WHERE user_id = ? AND symbol = ? "
                "AND anchor_ts < ? ORDER BY name")
_BARS_SQL = f"SELECT * FROM bars WHERE symbol = ? AND timeframe = ? AND {closed_by()} ORDER BY ts"
_BARS_SINCE_SQL = (f"SELECT * FROM bars WHERE symbol = ? AND timeframe = ? AND {closed_by()} "
                   "AND ts_close > ? ORDER BY ts")
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


def anchors_before(con: duckdb.DuckDBPyConnection, user_id: str, symbol: str,
                   as_of: datetime) -> list[tuple[str, Any]]:
    """Return (name, anchor_ts) of the user's anchors on ``symbol`` set before as_of."""
    return [(str(name), at) for name, at in
            con.execute(_ANCHORS_SQL, [user_id, symbol, as_of]).fetchall()]


def bars_closed(con: duckdb.DuckDBPyConnection, symbol: str, timeframe: str, as_of: datetime,
                *, after: datetime | None = None) -> pd.DataFrame:
    """Return the series' bars closed at as_of (and after ``after`` when given), by ts."""
    if after is None:
        return con.execute(_BARS_SQL, [symbol, timeframe, as_of]).df()
    return con.execute(_BARS_SINCE_SQL, [symbol, timeframe, as_of, after]).df()


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


# ---------------------------------------------------------------- whole tables, per process
#: Every bar with its key_levels row of one version (NULLs and stored = false when none),
#: nested levels included, for all series at once.
_ALL_SERIES_SQL = f"""
SELECT b.symbol AS bar_symbol, b.timeframe AS bar_timeframe, b.ts AS bar_ts, b.ts_close,
       b.session, k.ts IS NOT NULL AS stored,
       k.* EXCLUDE (pivots_json, anchored_vwap_levels_json, support_resistance_json),
       k.{_READ_NESTED.replace(", ", ", k.")}
FROM bars b
LEFT JOIN key_levels k ON k.symbol = b.symbol AND k.timeframe = b.timeframe AND k.ts = b.ts
    AND k.version = ?
ORDER BY b.symbol, b.timeframe, b.ts
"""


def whole_queries(version: str) -> tuple[tuple[str, list[Any]], ...]:
    """Return the whole-table queries of ``all_levels(store, version)``
    (``tables.share_ahead``)."""
    return ((_ALL_SERIES_SQL, [version]),)


_ALL_FIRST_ANCHORS_SQL = ("SELECT symbol, user_id, min(anchor_ts) AS first_anchor FROM "
                          "level_anchors GROUP BY ALL ORDER BY symbol, user_id")


@dataclass(frozen=True, slots=True)
class LevelsTable:
    """Every bar with its key_levels row of one version, by series: the row's columns a
    snapshot is built from (times as int64 UTC ns) and the bars' columns as arrays."""

    rows: ArrowSeries
    bar_ts: np.ndarray  # int64 UTC ns
    ts_close: np.ndarray  # int64 UTC ns
    session: np.ndarray  # datetime64[us]
    stored: np.ndarray  # bool


def all_levels(store: Store, version: str) -> LevelsTable:
    """Return every bar with its key_levels row of ``version``, read once per process while
    the file is unchanged (``buddy.store.tables``). Not point-in-time: a row's bar is its last
    with ts_close <= as_of (``buddy.batch.pieces.last_closed``)."""
    def read(store: Store) -> LevelsTable:
        table = query_arrow(store, _ALL_SERIES_SQL, [version])  # shared by a run's workers
        return LevelsTable(
            rows=ArrowSeries.of(_snapshot_columns(table), "bar_symbol", "bar_timeframe"),
            bar_ts=utc_ns_column(table.column("bar_ts")),
            ts_close=utc_ns_column(table.column("ts_close")),
            session=table.column("session").cast(pa.timestamp("us")).to_numpy(),
            stored=table.column("stored").to_numpy(zero_copy_only=False).astype(bool))

    return cached(store, f"key_levels:{version}", read)


#: What a snapshot is built from (``buddy.levels.provider.snapshot_from_row``).
_SNAPSHOT_COLUMNS = ("bar_symbol", "bar_timeframe", "bar_ts", "prior_day_high",
                     "prior_day_low", "prior_day_close", "rolling_range_high",
                     "rolling_range_low", "version", *NESTED_COLUMNS)


def _snapshot_columns(table: pa.Table) -> pa.Table:
    """Return the columns a snapshot is built from, times (nested ones too) as int64 UTC ns:
    a Python datetime with a zone costs more to make than the rest of a row."""
    def as_ns(kind: pa.DataType) -> pa.DataType:
        if pa.types.is_timestamp(kind):
            return pa.timestamp("ns", tz="UTC")
        if pa.types.is_list(kind):
            return pa.list_(as_ns(kind.value_type))
        if pa.types.is_struct(kind):
            return pa.struct([pa.field(f.name, as_ns(f.type)) for f in kind])
        return kind

    def as_int(kind: pa.DataType) -> pa.DataType:
        if pa.types.is_timestamp(kind):
            return pa.int64()
        if pa.types.is_list(kind):
            return pa.list_(as_int(kind.value_type))
        if pa.types.is_struct(kind):
            return pa.struct([pa.field(f.name, as_int(f.type)) for f in kind])
        return kind

    table = table.select(list(_SNAPSHOT_COLUMNS))
    table = table.cast(pa.schema([pa.field(f.name, as_ns(f.type)) for f in table.schema]))
    return table.cast(pa.schema([pa.field(f.name, as_int(f.type)) for f in table.schema]))


def symbol_first_anchors(store: Store, symbol: str) -> pd.DataFrame:
    """Return each user's earliest anchor time on ``symbol`` (user_id, first_anchor: a row
    whose as_of is after it has anchors), from one read of level_anchors per process while
    the file is unchanged (split by symbol once: a filter of the whole frame per series cost
    more than the rest of a series' levels). Read-only: the frames are shared."""
    by_symbol = cached(store, "level_anchors:first", _first_anchors_by_symbol)
    found = by_symbol.get(symbol)
    return by_symbol[None] if found is None else found


def _first_anchors_by_symbol(store: Store) -> dict[str | None, pd.DataFrame]:
    frame = store.query(_ALL_FIRST_ANCHORS_SQL)
    out: dict[str | None, pd.DataFrame] = {
        None: frame.iloc[:0][["user_id", "first_anchor"]].reset_index(drop=True)}
    for symbol, rows in frame.groupby("symbol", sort=False).indices.items():
        out[str(symbol)] = frame.iloc[rows][["user_id", "first_anchor"]].reset_index(drop=True)
    return out
