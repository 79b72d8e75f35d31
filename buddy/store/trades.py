"""Trade history in the store: fills read for grouping, trades, trade_fills, positions,
stops a trader gives, post-trade reviews and journal notes.

Every function filters by user id. Reads take a Store or an open connection (the import's
transaction passes its own connection so the rebuild sees the fills it just wrote); writes
that replace a user's trades run inside the caller's transaction.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import duckdb
import pandas as pd

from buddy.store.core import Store, StoreOrCon, insert_frame, reader, scalar

#: Columns written to ``trades`` (the seed's and migration 0009's).
TRADES_TABLE_COLUMNS: tuple[str, ...] = (
    "trade_id", "user_id", "symbol", "side", "open_ts", "close_ts", "avg_entry", "avg_exit",
    "qty", "pnl", "pnl_r", "fees", "slippage_est", "outcome_label", "tags_json",
    "linked_intent_id", "match_method", "status", "max_position", "open_position",
    "open_cost_basis", "n_fills", "initial_stop", "initial_risk", "r_source", "link_status",
    "link_candidates_json", "multiplier", "built_at")
TRADE_FILLS_TABLE_COLUMNS: tuple[str, ...] = (
    "fill_id", "trade_id", "ts", "price", "qty", "fill_type", "venue_optional", "user_id",
    "exec_id", "side", "fees", "realized_pnl", "position_after")
POSITIONS_TABLE_COLUMNS: tuple[str, ...] = (
    "user_id", "symbol", "qty", "avg_price", "open_ts", "unrealized_pnl", "risk_est_optional",
    "updated_at")


def _filters(params: list[Any], *conditions: tuple[str, Any]) -> str:
    """Return " AND condition" for each (condition with one ?, value) whose value is given
    (appending the values to ``params``); None means no filter."""
    given = [(sql, value) for sql, value in conditions if value is not None]
    params.extend(value for _, value in given)
    return "".join(f" AND {sql}" for sql, _ in given)


def _in(column: str, values: Sequence[Any], params: list[Any]) -> str:
    """Return the SQL condition "``column`` is one of ``values``" (appending them to
    ``params``); no values match nothing."""
    params.extend(values)
    return f" AND {column} IN ({', '.join('?' * len(values))})" if values else " AND false"


def _symbols_clause(column: str, symbols: Sequence[str] | None) -> tuple[str, list[Any]]:
    if not symbols:
        return "", []
    return (f" AND {column} IN ({', '.join('?' * len(symbols))})", [str(s) for s in symbols])


# ---------------------------------------------------------------------------- inputs
def read_fills(source: StoreOrCon, user_id: str, symbols: Sequence[str] | None = None
               ) -> pd.DataFrame:
    """Return a user's broker_fills (all symbols when None) in time order, ties by file row."""
    where, params = _symbols_clause("symbol", symbols)
    with reader(source) as con:
        return con.execute(
            "SELECT * FROM broker_fills WHERE user_id = ?" + where +
            " ORDER BY symbol, ts, source_file, source_row, exec_id", [user_id, *params]).df()


def fill_symbols(source: StoreOrCon, user_id: str) -> list[str]:
    """Return the symbols a user has fills or trades in."""
    with reader(source) as con:
        rows = con.execute("SELECT symbol FROM broker_fills WHERE user_id = ? UNION "
                           "SELECT symbol FROM trades WHERE user_id = ? ORDER BY 1",
                           [user_id, user_id]).fetchall()
    return [r[0] for r in rows]


def read_link_inputs(source: StoreOrCon, user_id: str, symbols: Sequence[str] | None = None
                     ) -> dict[str, Any]:
    """Return what linking and R need: the user's intents, stops given by hand, multipliers
    and the current tags of existing trades, for ``symbols`` (all when None)."""
    where, params = _symbols_clause("symbol", symbols)
    with reader(source) as con:
        intents = con.execute(
            "SELECT intent_id, symbol, side, timeframe, proposed_entry, proposed_stop, "
            "proposed_target, proposed_size, exit_template, as_of FROM trade_intents "
            "WHERE user_id = ?" + where + " ORDER BY as_of, intent_id",
            [user_id, *params]).df()
        stops = con.execute("SELECT trade_id, stop FROM trade_user_stops WHERE user_id = ?",
                            [user_id]).fetchall()
        multipliers = con.execute("SELECT symbol, contract_multiplier FROM tickers").fetchall()
        tags = con.execute("SELECT trade_id, tags_json FROM trades WHERE user_id = ? AND "
                           "tags_json IS NOT NULL" + where, [user_id, *params]).fetchall()
    return {"intents": intents, "user_stops": dict(stops),
            "multipliers": {s: float(m) for s, m in multipliers},
            "tags": dict(tags)}


# ---------------------------------------------------------------------------- rebuild writes
def replace_trades(con: duckdb.DuckDBPyConnection, user_id: str, symbols: Sequence[str] | None,
                   trades: pd.DataFrame, trade_fills: pd.DataFrame, positions: pd.DataFrame
                   ) -> dict[str, int]:
    """Replace a user's trades, trade_fills and positions for ``symbols`` (all when None)
    inside the caller's transaction; drop reviews of trades that no longer exist."""
    where, params = _symbols_clause("symbol", symbols)
    args = [user_id, *params]
    con.execute("DELETE FROM trade_fills WHERE trade_id IN (SELECT trade_id FROM trades "
                "WHERE user_id = ?" + where + ")", args)
    con.execute("CREATE OR REPLACE TEMP TABLE _old_trades AS SELECT trade_id FROM trades "
                "WHERE user_id = ?" + where, args)
    con.execute("DELETE FROM trades WHERE user_id = ?" + where, args)
    con.execute("DELETE FROM positions WHERE user_id = ?" + where, args)
    written = {"trades": 0, "trade_fills": 0, "positions": 0}
    if len(trades):
        written["trades"] = insert_frame(con, "trades", trades[list(TRADES_TABLE_COLUMNS)])
    if len(trade_fills):
        written["trade_fills"] = insert_frame(con, "trade_fills",
                                              trade_fills[list(TRADE_FILLS_TABLE_COLUMNS)])
    if len(positions):
        written["positions"] = insert_frame(con, "positions",
                                            positions[list(POSITIONS_TABLE_COLUMNS)])
    con.execute("DELETE FROM post_trade_reviews WHERE user_id = ? AND trade_id IN (SELECT "
                "trade_id FROM _old_trades) AND trade_id NOT IN (SELECT trade_id FROM trades "
                "WHERE user_id = ?)", [user_id, user_id])
    con.execute("DROP TABLE _old_trades")
    return written


def set_user_stop(store: Store, user_id: str, trade_id: str, stop: float) -> None:
    """Record the stop a trader states for one of their trades (R is measured against it)."""
    with store.transaction() as con:
        found = scalar(con, "SELECT count(*) FROM trades WHERE user_id = ? AND trade_id = ?",
                       [user_id, trade_id])
        if not found:
            raise KeyError(f"trade_id: no trade {trade_id!r} for user {user_id!r}")
        con.execute("INSERT INTO trade_user_stops VALUES (?, ?, ?, now()) ON CONFLICT DO "
                    "UPDATE SET stop = excluded.stop, given_at = excluded.given_at",
                    [user_id, trade_id, float(stop)])


# ---------------------------------------------------------------------------- trade reads
def read_trades(source: StoreOrCon, user_id: str, *, status: str | None = None,
                trade_ids: Sequence[str] | None = None, closed_from: Any = None,
                closed_to: Any = None) -> pd.DataFrame:
    """Return a user's trades (optionally by status, ids or close time in [from, to)), by
    open time."""
    sql = "SELECT * FROM trades WHERE user_id = ?"
    params: list[Any] = [user_id]
    sql += _filters(params, ("status = ?", status), ("close_ts >= ?", closed_from),
                    ("close_ts < ?", closed_to))
    if trade_ids is not None:
        sql += _in("trade_id", trade_ids, params)
    with reader(source) as con:
        return con.execute(sql + " ORDER BY open_ts, trade_id", params).df()


def find_trade(source: StoreOrCon, trade_id: str) -> dict[str, Any] | None:
    """Return one trade row by id (any user: the CLI resolves the owner from it), or None."""
    with reader(source) as con:
        frame = con.execute("SELECT * FROM trades WHERE trade_id = ?", [trade_id]).df()
    return None if frame.empty else frame.iloc[0].to_dict()


def read_trade_fills(source: StoreOrCon, user_id: str, trade_ids: Sequence[str]
                     ) -> pd.DataFrame:
    """Return the fill parts of a user's trades, in time order."""
    if not trade_ids:
        return pd.DataFrame(columns=list(TRADE_FILLS_TABLE_COLUMNS))
    with reader(source) as con:
        return con.execute(
            "SELECT f.* FROM trade_fills f JOIN trades t USING (trade_id) WHERE t.user_id = ? "
            f"AND f.trade_id IN ({', '.join('?' * len(trade_ids))}) ORDER BY f.ts, f.fill_id",
            [user_id, *trade_ids]).df()


def read_positions(source: StoreOrCon, user_id: str) -> pd.DataFrame:
    """Return a user's open positions."""
    with reader(source) as con:
        return con.execute("SELECT * FROM positions WHERE user_id = ? ORDER BY symbol",
                           [user_id]).df()


def read_intent_evaluations(source: StoreOrCon, user_id: str, intent_ids: Sequence[str]
                            ) -> dict[str, pd.DataFrame]:
    """Return the latest evaluation of each intent (key 'evaluations') and its items
    ('items'), for a user."""
    if not intent_ids:
        return {"evaluations": pd.DataFrame(), "items": pd.DataFrame()}
    marks = ", ".join("?" * len(intent_ids))
    with reader(source) as con:
        evaluations = con.execute(
            "SELECT * FROM trade_evaluations WHERE user_id = ? AND intent_id IN (" + marks +
            ") QUALIFY row_number() OVER (PARTITION BY intent_id ORDER BY eval_ts DESC, "
            "created_at DESC, eval_id DESC) = 1", [user_id, *intent_ids]).df()
        items = con.execute(
            "SELECT i.* FROM trade_evaluation_items i JOIN trade_evaluations e USING (eval_id) "
            "WHERE e.user_id = ? AND e.intent_id IN (" + marks + ") ORDER BY i.eval_item_id",
            [user_id, *intent_ids]).df()
    if len(evaluations) and len(items):
        items = items[items["eval_id"].isin(evaluations["eval_id"])]
    return {"evaluations": evaluations, "items": items}


def read_intents(source: StoreOrCon, user_id: str, intent_ids: Sequence[str]) -> pd.DataFrame:
    """Return a user's intents by id."""
    if not intent_ids:
        return pd.DataFrame()
    with reader(source) as con:
        return con.execute("SELECT * FROM trade_intents WHERE user_id = ? AND intent_id IN "
                           f"({', '.join('?' * len(intent_ids))})",
                           [user_id, *intent_ids]).df()


def timeframes_by_symbol(source: StoreOrCon, symbols: Sequence[str]) -> dict[str, list[str]]:
    """Return the bar timeframes stored for each symbol."""
    if not symbols:
        return {}
    with reader(source) as con:
        rows = con.execute("SELECT DISTINCT symbol, timeframe FROM bars WHERE symbol IN "
                           f"({', '.join('?' * len(symbols))}) ORDER BY 1, 2",
                           list(symbols)).fetchall()
    out: dict[str, list[str]] = {}
    for symbol, timeframe in rows:
        out.setdefault(symbol, []).append(timeframe)
    return out


# ---------------------------------------------------------------------------- reviews
def trades_to_review(source: StoreOrCon, version: str, user_id: str | None = None
                     ) -> pd.DataFrame:
    """Return closed trades (of one user, or all) without a review of ``version``."""
    sql = ("SELECT t.* FROM trades t WHERE t.status = 'closed' AND NOT EXISTS (SELECT 1 FROM "
           "post_trade_reviews r WHERE r.trade_id = t.trade_id AND r.version = ?)")
    params: list[Any] = [version]
    if user_id is not None:
        sql += " AND t.user_id = ?"
        params.append(user_id)
    with reader(source) as con:
        return con.execute(sql + " ORDER BY t.user_id, t.close_ts, t.trade_id", params).df()


def write_reviews(store: Store, reviews: pd.DataFrame) -> int:
    """Write review rows in ONE transaction, replacing rows with the same review_id."""
    if reviews.empty:
        return 0
    with store.transaction() as con:
        con.register("_reviews", reviews)
        con.execute("DELETE FROM post_trade_reviews WHERE review_id IN "
                    "(SELECT review_id FROM _reviews)")
        con.unregister("_reviews")
        return insert_frame(con, "post_trade_reviews", reviews)


def read_reviews(source: StoreOrCon, user_id: str, *, trade_ids: Sequence[str] | None = None,
                 version: str | None = None) -> pd.DataFrame:
    """Return a user's reviews (the newest per trade and version), by generated_at."""
    sql = "SELECT * FROM post_trade_reviews WHERE user_id = ?"
    params: list[Any] = [user_id]
    if version is not None:
        sql += " AND version = ?"
        params.append(version)
    if trade_ids is not None:
        sql += _in("trade_id", trade_ids, params)
    with reader(source) as con:
        return con.execute(sql + " QUALIFY row_number() OVER (PARTITION BY trade_id, version "
                           "ORDER BY generated_at DESC) = 1 ORDER BY generated_at, trade_id",
                           params).df()


# ---------------------------------------------------------------------------- journal
def add_journal_note(store: Store, *, journal_id: str, user_id: str, trade_id: str | None,
                     intent_id: str | None, note: str, tags: Sequence[str]) -> None:
    """Write one journal note on a trade or an intent of the user (which must exist)."""
    with store.transaction() as con:
        if trade_id is not None and not scalar(
                con, "SELECT count(*) FROM trades WHERE user_id = ? AND trade_id = ?",
                [user_id, trade_id]):
            raise KeyError(f"trade_id: no trade {trade_id!r} for user {user_id!r}")
        if intent_id is not None and not scalar(
                con, "SELECT count(*) FROM trade_intents WHERE user_id = ? AND intent_id = ?",
                [user_id, intent_id]):
            raise KeyError(f"intent_id: no intent {intent_id!r} for user {user_id!r}")
        con.execute("INSERT INTO trade_journal (journal_id, user_id, trade_id_optional, "
                    "intent_id_optional, note_text, tags_json, created_at) VALUES "
                    "(?, ?, ?, ?, ?, ?, now())",
                    [journal_id, user_id, trade_id, intent_id, note, json.dumps(list(tags))])


def add_intent_note(store: Store, *, journal_id: str, user_id: str, intent_id: str, note: str,
                    tags_json: str) -> None:
    """Write one journal note linked to an intent, unchecked (the workbench's own intents)."""
    with store.transaction() as con:
        con.execute("INSERT INTO trade_journal (journal_id, user_id, trade_id_optional, "
                    "intent_id_optional, note_text, tags_json, created_at) "
                    "VALUES (?, ?, NULL, ?, ?, ?, now())",
                    [journal_id, user_id, intent_id, note, tags_json])


def read_journal(source: StoreOrCon, user_id: str, *, trade_id: str | None = None,
                 intent_id: str | None = None, tag: str | None = None) -> pd.DataFrame:
    """Return a user's journal notes (optionally of one trade, intent or tag), oldest first."""
    sql = "SELECT * FROM trade_journal WHERE user_id = ?"
    params: list[Any] = [user_id]
    sql += _filters(params, ("trade_id_optional = ?", trade_id),
                    ("intent_id_optional = ?", intent_id),
                    ("list_contains(CAST(json_extract_string(tags_json, '$[*]') AS "
                     "VARCHAR[]), ?)", tag))
    with reader(source) as con:
        return con.execute(sql + " ORDER BY created_at, journal_id", params).df()


def count_trades(source: StoreOrCon, user_id: str) -> int:
    """Return how many trades the user has."""
    with reader(source) as con:
        return int(scalar(con, "SELECT count(*) FROM trades WHERE user_id = ?", [user_id]))


def user_equity(source: StoreOrCon, user_id: str) -> float | None:
    """Return the user's equity snapshot (account currency), or None."""
    with reader(source) as con:
        row = con.execute("SELECT equity_snapshot FROM user_accounts WHERE user_id = ?",
                          [user_id]).fetchone()
    return None if row is None or row[0] is None else float(row[0])


def as_mapping(frame: pd.DataFrame, key: str) -> Mapping[str, dict[str, Any]]:
    """Return the rows of ``frame`` as dicts keyed by ``key``."""
    return {row[key]: row for row in frame.to_dict("records")} if len(frame) else {}


# ---------------------------------------------------------------------------- replay's reads
_REPLAYABLE_INTENTS_SQL = """
SELECT i.*, t.trade_id AS linked_trade_id
FROM trade_intents i
LEFT JOIN (SELECT linked_intent_id, arg_min(trade_id, open_ts) AS trade_id
           FROM trades WHERE linked_intent_id IS NOT NULL GROUP BY linked_intent_id) t
       ON t.linked_intent_id = i.intent_id
WHERE i.proposed_stop IS NOT NULL {user_filter}
ORDER BY i.as_of, i.intent_id
"""


def replayable_intents(store: Store, user_id: str | None = None) -> pd.DataFrame:
    """Return the trade_intents rows with a stop (one user's, or all), each with the first
    (by open_ts) trade linked to it (``linked_trade_id``), by as_of and intent id."""
    sql = _REPLAYABLE_INTENTS_SQL.format(user_filter="AND i.user_id = ?" if user_id else "")
    return store.query(sql, [user_id] if user_id else None)


def all_trades(store: Store, user_id: str | None = None) -> pd.DataFrame:
    """Return the trades table (one user's, or all), by open_ts and trade id."""
    sql = "SELECT * FROM trades" + (" WHERE user_id = ?" if user_id else "")
    return store.query(sql + " ORDER BY open_ts, trade_id", [user_id] if user_id else None)
