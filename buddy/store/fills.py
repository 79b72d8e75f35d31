"""Broker fills in the store (``broker_fills``): every SQL statement on that table lives here.

Writes take an open connection so the caller decides the transaction: the importer writes new
fills and, in the same transaction, lets the trades grouping rebuild what they change.
Reads take a Store (or a connection, inside a write). Every query filters by user.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pandas as pd
import pyarrow as pa

from buddy.store.core import Store, registered

DuckDBPyConnection = duckdb.DuckDBPyConnection

TABLE = "broker_fills"

#: broker_fills' columns, in table order (buddy.trades.fills.FILL_COLUMNS).
COLUMNS: tuple[str, ...] = (
    "user_id", "account", "symbol", "ts", "side", "qty", "price", "commission", "fees",
    "currency", "exec_id", "source", "source_file", "source_row", "open_close", "order_id",
    "venue", "imported_at",
)


def arrow_fills(fills: pd.DataFrame) -> pa.Table:
    """Return canonical fills as an Arrow table in table column order (UTC times kept)."""
    def column(values: pd.Series) -> pa.Array:
        if isinstance(values.dtype, pd.DatetimeTZDtype):
            # UTC wall times then the zone: pandas' own Arrow path warns in pandas 3.1
            naive = values.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
            return pa.array(naive).cast(pa.timestamp(str(naive.dtype)[-3:-1], tz="UTC"))
        return pa.array(values.to_numpy(), from_pandas=True)

    return pa.table({c: column(fills[c]) for c in COLUMNS})


def existing_exec_ids(con: DuckDBPyConnection, fills: pd.DataFrame) -> set[str]:
    """Return the execution ids of ``fills`` already stored for their user."""
    if not len(fills):
        return set()
    keys = fills[["user_id", "exec_id"]]
    with registered(con, "_fill_keys", keys):
        rows = con.execute(f"SELECT k.exec_id FROM _fill_keys k SEMI JOIN {TABLE} b "
                           "ON b.user_id = k.user_id AND b.exec_id = k.exec_id").fetchall()
    return {r[0] for r in rows}


def insert_fills(con: DuckDBPyConnection, fills: pd.DataFrame) -> int:
    """Insert canonical fills none of which is stored yet (filter them with
    existing_exec_ids first, in the same transaction); return how many were written.

    A fill already stored breaks the table's key and the caller's transaction rolls back:
    ``ON CONFLICT DO NOTHING`` would hide that and makes the insert about half again slower.
    """
    if not len(fills):
        return 0
    names = ", ".join(COLUMNS)
    # an Arrow table scans far faster than pandas object columns of Python strings
    with registered(con, "_new_fills", arrow_fills(fills)):
        con.execute(f"INSERT INTO {TABLE} ({names}) SELECT {names} FROM _new_fills")
    return len(fills)


def read_fills(source: Store | DuckDBPyConnection, user_id: str,
               symbols: Sequence[str] | None = None) -> pd.DataFrame:
    """Return one user's fills (all symbols when None) by symbol, ts and file order."""
    sql = f"SELECT * FROM {TABLE} WHERE user_id = ?"
    params: list[object] = [user_id]
    if symbols:
        sql += f" AND symbol IN ({', '.join('?' * len(symbols))})"
        params.extend(symbols)
    sql += " ORDER BY symbol, ts, source_file, source_row"
    if isinstance(source, Store):
        return source.query(sql, params)
    return source.execute(sql, params).df()


def count_fills(source: Store | DuckDBPyConnection, user_id: str | None = None) -> int:
    """Return how many fills are stored (for one user when given)."""
    sql, params = f"SELECT count(*) FROM {TABLE}", []
    if user_id is not None:
        sql += " WHERE user_id = ?"
        params.append(user_id)
    if isinstance(source, Store):
        return int(source.query(sql, params).iloc[0, 0])
    return int(source.execute(sql, params).fetchall()[0][0])


def unknown_symbol_fills(store: Store, user_id: str) -> pd.DataFrame:
    """Return one user's fills whose symbol is not in ``tickers`` (stored, to be resolved)."""
    return store.query(f"SELECT * FROM {TABLE} b WHERE user_id = ? AND NOT EXISTS (SELECT 1 "
                       "FROM tickers t WHERE t.symbol = b.symbol) "
                       "ORDER BY symbol, ts, source_row", [user_id])
