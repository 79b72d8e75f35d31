"""Portfolio in the store: fills and stops as of t, imported positions statements, the equity
history, and ``portfolio_exposure_snapshots``.

Every read filters by user id and by time (``<= as_of``), so a portfolio as of t reads
nothing written for a later moment. Writes run in one transaction each.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pandas as pd

from buddy.store.core import Store, StoreOrCon, insert_frame, reader, scalar

#: Columns of ``positions_statements`` (migration 0017).
STATEMENT_COLUMNS: tuple[str, ...] = (
    "user_id", "as_of", "symbol", "qty", "avg_price", "stop", "source_file", "imported_at")

#: Columns of ``account_equity_history`` (migration 0017).
EQUITY_COLUMNS: tuple[str, ...] = (
    "user_id", "as_of", "equity", "base_currency", "source", "recorded_at")

#: Columns of ``portfolio_exposure_snapshots`` written by the snapshot builder (seed + 0017).
SNAPSHOT_COLUMNS: tuple[str, ...] = (
    "user_id", "ts", "gross_exposure", "net_exposure", "sector_exposure_json",
    "benchmark_beta_json", "correlation_clusters_json", "portfolio_heat_score", "computed_at",
    "version", "equity", "base_currency", "positions_source", "n_positions",
    "gross_exposure_pct", "net_exposure_pct", "asset_class_exposure_json", "heat_limit_pct",
    "rules_version", "heat_unknown_symbols_json", "portfolio_vol_pct", "risk_contributions_json",
    "var_level", "var_horizon_days", "var_parametric_pct", "var_historical_pct",
    "returns_window", "beta_window", "n_returns", "positions_json", "not_checked_json",
    "snapshot_trigger")


# ---------------------------------------------------------------------------- fills as of t
def fills_until(source: StoreOrCon, user_id: str, as_of: datetime) -> pd.DataFrame:
    """Return the user's broker_fills executed at or before ``as_of`` (UTC), in the order
    ``buddy.store.trades.read_fills`` gives (symbol, time, file row)."""
    with reader(source) as con:
        return con.execute(
            "SELECT * FROM broker_fills WHERE user_id = ? AND ts <= ? "
            "ORDER BY symbol, ts, source_file, source_row, exec_id", [user_id, as_of]).df()


def count_fills(source: StoreOrCon, user_id: str, as_of: datetime | None = None) -> int:
    """Return how many broker fills the user has (executed by ``as_of`` when given)."""
    sql = "SELECT count(*) FROM broker_fills WHERE user_id = ?"
    params: list[Any] = [user_id]
    if as_of is not None:
        sql += " AND ts <= ?"
        params.append(as_of)
    with reader(source) as con:
        return int(scalar(con, sql, params))


def user_stops_given_by(source: StoreOrCon, user_id: str, as_of: datetime
                        ) -> pd.DataFrame:
    """Return the stops the user gave by hand at or before ``as_of``: trade_id, stop (as
    given), given_at, and the trade's symbol (None when the trade is not stored)."""
    with reader(source) as con:
        return con.execute("SELECT s.trade_id, s.stop, s.given_at, t.symbol FROM "
                           "trade_user_stops s LEFT JOIN trades t USING (trade_id) "
                           "WHERE s.user_id = ? AND s.given_at <= ? ORDER BY s.trade_id",
                           [user_id, as_of]).df()


def fill_times(source: StoreOrCon, user_id: str, start: datetime, end: datetime
               ) -> pd.Series:
    """Return the distinct times (UTC) of the user's fills in [start, end], ascending: the
    moments the positions changed."""
    with reader(source) as con:
        frame = con.execute("SELECT DISTINCT ts FROM broker_fills WHERE user_id = ? AND ts >= ? "
                            "AND ts <= ? ORDER BY ts", [user_id, start, end]).df()
    return pd.to_datetime(frame["ts"], utc=True)


# ---------------------------------------------------------------------------- statements
def latest_statement(source: StoreOrCon, user_id: str, as_of: datetime) -> pd.DataFrame:
    """Return the rows of the user's latest positions statement with as_of <= ``as_of``
    (empty when none), by symbol."""
    with reader(source) as con:
        return con.execute(
            "SELECT * FROM positions_statements WHERE user_id = ? AND as_of = (SELECT max(as_of) "
            "FROM positions_statements WHERE user_id = ? AND as_of <= ?) ORDER BY symbol",
            [user_id, user_id, as_of]).df()


def statement_times(source: StoreOrCon, user_id: str, start: datetime, end: datetime
                    ) -> pd.Series:
    """Return the times (UTC) of the user's statements in [start, end], ascending."""
    with reader(source) as con:
        frame = con.execute("SELECT DISTINCT as_of FROM positions_statements WHERE user_id = ? "
                            "AND as_of >= ? AND as_of <= ? ORDER BY as_of",
                            [user_id, start, end]).df()
    return pd.to_datetime(frame["as_of"], utc=True)


def replace_statements(store: Store, user_id: str, rows: pd.DataFrame, equity: pd.DataFrame,
                       positions: pd.DataFrame | None) -> int:
    """Replace the user's statements at the as_of times in ``rows`` (STATEMENT_COLUMNS) and
    the equity history rows in ``equity`` (user_id, as_of, equity, base_currency, source,
    recorded_at) in ONE transaction; when ``positions`` is given (the user has no fills),
    make it the user's current ``positions`` rows too. Return the statement rows written."""
    times = sorted({pd.Timestamp(t) for t in rows["as_of"]})
    with store.transaction() as con:
        for as_of in times:
            con.execute("DELETE FROM positions_statements WHERE user_id = ? AND as_of = ?",
                        [user_id, as_of.to_pydatetime()])
        insert_frame(con, "positions_statements", rows[list(STATEMENT_COLUMNS)])
        for as_of in equity["as_of"]:
            con.execute("DELETE FROM account_equity_history WHERE user_id = ? AND as_of = ?",
                        [user_id, pd.Timestamp(as_of).to_pydatetime()])
        if len(equity):
            insert_frame(con, "account_equity_history", equity[list(EQUITY_COLUMNS)])
        if positions is not None:
            con.execute("DELETE FROM positions WHERE user_id = ?", [user_id])
            if len(positions):
                insert_frame(con, "positions", positions)
    store.touch_context_stamp()  # positions are part of what a ContextPack reads
    return len(rows)


# ---------------------------------------------------------------------------- equity history
def equity_history(source: StoreOrCon, user_id: str) -> pd.DataFrame:
    """Return the user's equity history (as_of, equity, base_currency, source), by as_of."""
    with reader(source) as con:
        return con.execute("SELECT as_of, equity, base_currency, source FROM "
                           "account_equity_history WHERE user_id = ? ORDER BY as_of",
                           [user_id]).df()


def record_equity(store: Store, user_id: str, as_of: datetime, equity: float,
                  base_currency: str, source: str) -> None:
    """Record that the user's equity was ``equity`` (account currency) at ``as_of``
    (replacing a row at the same moment)."""
    with store.transaction() as con:
        con.execute("INSERT OR REPLACE INTO account_equity_history (user_id, as_of, equity, "
                    "base_currency, source, recorded_at) VALUES (?, ?, ?, ?, ?, now())",
                    [user_id, as_of, float(equity), base_currency, source])
    store.touch_context_stamp()


# ---------------------------------------------------------------------------- snapshots
def replace_snapshots(store: Store, rows: pd.DataFrame) -> int:
    """Write exposure snapshot rows (SNAPSHOT_COLUMNS), replacing any at the same (user, ts),
    in ONE transaction; return the number written."""
    if rows.empty:
        return 0
    frame = rows[list(SNAPSHOT_COLUMNS)]
    with store.transaction() as con:
        con.register("_snapshot_keys", frame[["user_id", "ts"]])
        con.execute("DELETE FROM portfolio_exposure_snapshots s USING _snapshot_keys k "
                    "WHERE s.user_id = k.user_id AND s.ts = k.ts")
        con.unregister("_snapshot_keys")
        insert_frame(con, "portfolio_exposure_snapshots", frame)
    return len(frame)


def read_snapshots(source: StoreOrCon, user_id: str, *, start: datetime | None = None,
                   end: datetime | None = None) -> pd.DataFrame:
    """Return the user's exposure snapshots with ts in [start, end] (open ends when None),
    by ts."""
    sql = "SELECT * FROM portfolio_exposure_snapshots WHERE user_id = ?"
    params: list[Any] = [user_id]
    if start is not None:
        sql += " AND ts >= ?"
        params.append(start)
    if end is not None:
        sql += " AND ts <= ?"
        params.append(end)
    with reader(source) as con:
        return con.execute(sql + " ORDER BY ts", params).df()


def users_with_positions_sources(source: StoreOrCon, user_ids: Sequence[str] | None = None
                                 ) -> list[str]:
    """Return the users who have broker fills or positions statements (``user_ids`` only,
    when given), sorted."""
    with reader(source) as con:
        rows = con.execute("SELECT user_id FROM broker_fills UNION SELECT user_id FROM "
                           "positions_statements ORDER BY 1").fetchall()
    found = [str(r[0]) for r in rows]
    return found if user_ids is None else [u for u in found if u in set(user_ids)]


def traded_symbols(source: StoreOrCon, user_id: str) -> list[str]:
    """Return the symbols the user has fills in or stated positions in, sorted."""
    with reader(source) as con:
        rows = con.execute("SELECT symbol FROM broker_fills WHERE user_id = ? UNION SELECT "
                           "symbol FROM positions_statements WHERE user_id = ? ORDER BY 1",
                           [user_id, user_id]).fetchall()
    return [str(r[0]) for r in rows]
