"""The demo trader's ground truth (tables demo_trade_truth, demo_behavior_truth) and the bulk
write of its intents.

The simulated trader of ``buddy.trades.demo_history`` knows what each of its round trips was
meant to be and which behaviours it injected on which dates. That truth lives in its own
tables, never in the seed's, so detectors can be scored against it without reading it.
"""

from __future__ import annotations

import pandas as pd

from buddy.store.core import Store, insert_frame

TRADE_TRUTH_COLUMNS: tuple[str, ...] = (
    "user_id", "trade_key", "trade_id", "symbol", "timeframe", "side", "setup", "entry_ts",
    "entry_price", "planned_stop", "planned_target", "planned_qty", "qty", "exit_ts",
    "avg_exit", "exit_reason", "partial_exit", "pnl", "pnl_r", "intent_id", "reversal_of",
    "behaviours_json", "seed", "generator_version",
)

BEHAVIOR_TRUTH_COLUMNS: tuple[str, ...] = (
    "user_id", "behavior_id", "kind", "ts", "session_date", "symbol", "trade_key",
    "detail_json", "seed", "generator_version",
)


def replace_demo_truth(store: Store, user_id: str, trades: pd.DataFrame,
                       behaviours: pd.DataFrame, intents: pd.DataFrame | None = None) -> int:
    """Replace ``user_id``'s ground truth with ``trades`` and ``behaviours`` and add the
    ``intents`` (trade_intents rows; ids already present are kept) in ONE transaction;
    return the truth rows written."""
    for name, frame, columns in (("trades", trades, TRADE_TRUTH_COLUMNS),
                                 ("behaviours", behaviours, BEHAVIOR_TRUTH_COLUMNS)):
        wrong = sorted(set(frame["user_id"].unique()) - {user_id}) if len(frame) else []
        if wrong:
            raise ValueError(f"{name}.user_id: must all be {user_id!r} (got {wrong[:3]})")
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise ValueError(f"{name}: missing columns {missing}")
    with store.transaction() as con:
        con.execute("DELETE FROM demo_trade_truth WHERE user_id = ?", [user_id])
        con.execute("DELETE FROM demo_behavior_truth WHERE user_id = ?", [user_id])
        written = insert_frame(con, "demo_trade_truth", trades[list(TRADE_TRUTH_COLUMNS)])
        written += insert_frame(con, "demo_behavior_truth",
                                behaviours[list(BEHAVIOR_TRUTH_COLUMNS)])
        if intents is not None and len(intents):
            now = pd.Timestamp.now(tz="UTC")
            insert_frame(con, "trade_intents", intents.assign(created_at=now),
                         on_conflict="DO NOTHING")
    return written


def link_truth_to_trades(store: Store, user_id: str) -> int:
    """Set each truth row's trade_id to the ``trades`` row of the same user and symbol that
    opened at its entry time; return how many truth rows are linked."""
    with store.transaction() as con:
        con.execute("UPDATE demo_trade_truth t SET trade_id = tr.trade_id FROM trades tr "
                    "WHERE t.user_id = ? AND tr.user_id = t.user_id AND tr.symbol = t.symbol "
                    "AND tr.open_ts = t.entry_ts", [user_id])
        row = con.execute("SELECT count(*) FROM demo_trade_truth WHERE user_id = ? "
                          "AND trade_id IS NOT NULL", [user_id]).fetchone()
    return int(row[0]) if row else 0


def demo_truth_loaded(store: Store, user_id: str, seed: int, version: int) -> int | None:
    """Return the number of ``user_id``'s linked truth rows when the history of ``seed`` and
    generator ``version`` is loaded and linked to trades, else None."""
    row = store.query("SELECT count(*) AS n, count(trade_id) AS linked, min(seed) AS lo, "
                      "max(seed) AS hi, min(generator_version) AS v_lo, "
                      "max(generator_version) AS v_hi FROM demo_trade_truth WHERE user_id = ?",
                      [user_id]).iloc[0]
    if not row["n"] or row["lo"] != seed or row["hi"] != seed or row["v_lo"] != version or (
            row["v_hi"] != version) or row["linked"] == 0:
        return None
    return int(row["linked"])


def demo_trade_truth(store: Store, user_id: str) -> pd.DataFrame:
    """Return ``user_id``'s simulated round trips with their setups, by entry time."""
    return store.query("SELECT * FROM demo_trade_truth WHERE user_id = ? "
                       "ORDER BY entry_ts, symbol", [user_id])


def demo_behavior_truth(store: Store, user_id: str) -> pd.DataFrame:
    """Return the behaviours injected into ``user_id``'s history, by time."""
    return store.query("SELECT * FROM demo_behavior_truth WHERE user_id = ? "
                       "ORDER BY ts, kind", [user_id])


def demo_setups(store: Store, user_id: str) -> pd.DataFrame:
    """Return the setup the demo trader injected into each of ``user_id``'s trades: columns
    trade_id, setup, intent_id (None when no intent was logged), by trade_id; truth rows not
    linked to a trade are left out. For validation only: nothing in the product reads it."""
    frame = store.query("SELECT trade_id, setup, intent_id FROM demo_trade_truth "
                        "WHERE user_id = ? AND trade_id IS NOT NULL ORDER BY trade_id",
                        [user_id])
    frame["intent_id"] = frame["intent_id"].astype(object).where(frame["intent_id"].notna(),
                                                                 None)
    return frame
