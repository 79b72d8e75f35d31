"""The nudge controls' tables (migration 0019): ``nudge_settings``, ``nudge_limits`` and
``nudge_dismissals``, and the read of which nudges a user was shown (the ``behavior_nudges``
items of their logged evaluations). All their SQL lives here; ``buddy.behavior.settings``
validates and calls it.

Reads of what happened (dismissals, nudges shown) are point-in-time: only rows at or before
the ``until`` given (dismissals) or strictly before it (shown: an evaluation at t itself is
the one being made).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from duckdb import DuckDBPyConnection

    from buddy.store.core import Store

__all__ = ["activity_key", "dismissal_rows", "insert_dismissal", "limits_row", "setting_rows",
           "shown_rows", "write_limits", "write_settings"]


def setting_rows(con: DuckDBPyConnection, user_id: str) -> list[tuple[Any, ...]]:
    """Return (detector, sensitivity or None, opted_out) of every detector the user set."""
    return con.execute("SELECT detector, sensitivity, opted_out FROM nudge_settings "
                       "WHERE user_id = ? ORDER BY detector", [user_id]).fetchall()


def limits_row(con: DuckDBPyConnection, user_id: str) -> tuple[Any, ...] | None:
    """Return (max_per_day, dismiss_quiet_hours) of the user, or None (the defaults)."""
    return con.execute("SELECT max_per_day, dismiss_quiet_hours FROM nudge_limits "
                       "WHERE user_id = ?", [user_id]).fetchone()


def write_settings(con: DuckDBPyConnection, user_id: str,
                   rows: Sequence[tuple[str, str | None, bool]]) -> None:
    """Replace the user's per-detector rows with ``rows`` (detector, sensitivity, opted_out)
    inside the caller's transaction."""
    con.execute("DELETE FROM nudge_settings WHERE user_id = ?", [user_id])
    for detector, sensitivity, opted_out in rows:
        con.execute("INSERT INTO nudge_settings VALUES (?, ?, ?, ?, now())",
                    [user_id, detector, sensitivity, bool(opted_out)])


def write_limits(con: DuckDBPyConnection, user_id: str, max_per_day: int,
                 dismiss_quiet_hours: float) -> None:
    """Save the user's frequency cap (nudges per 24 hours) and quiet window (hours)."""
    con.execute("INSERT OR REPLACE INTO nudge_limits VALUES (?, ?, ?, now())",
                [user_id, int(max_per_day), float(dismiss_quiet_hours)])


def insert_dismissal(store: Store, user_id: str, detector: str, dismissed_at: datetime, *,
                     eval_id: str | None = None, intent_id: str | None = None) -> bool:
    """Record that the user dismissed ``detector``'s nudge at ``dismissed_at``; return False
    when that dismissal was already recorded (idempotent)."""
    with store.transaction() as con:
        found = con.execute("SELECT count(*) FROM nudge_dismissals WHERE user_id = ? AND "
                            "detector = ? AND dismissed_at = ?",
                            [user_id, detector, dismissed_at]).fetchone()
        if found is not None and found[0]:
            return False
        con.execute("INSERT INTO nudge_dismissals VALUES (?, ?, ?, ?, ?)",
                    [user_id, detector, dismissed_at, eval_id, intent_id])
    store.touch_context_stamp()
    return True


def dismissal_rows(store: Store, user_id: str, until: datetime) -> pd.DataFrame:
    """Return the user's dismissals at or before ``until`` (detector, dismissed_at UTC),
    oldest first."""
    frame = store.query("SELECT detector, dismissed_at FROM nudge_dismissals WHERE user_id = ? "
                        "AND dismissed_at <= ? ORDER BY dismissed_at, detector",
                        [user_id, until])
    frame["dismissed_at"] = pd.to_datetime(frame["dismissed_at"], utc=True)
    return frame


def shown_rows(store: Store, user_id: str, module: str, until: datetime) -> pd.DataFrame:
    """Return the nudges shown to the user before ``until``: one row per distinct (intent,
    issue code) among ``module``'s items of the user's logged evaluations, at the
    evaluation's time (its intent's as_of, UTC), oldest first."""
    frame = store.query(
        "SELECT e.intent_id, i.issue_code, min(e.eval_ts) AS shown_at "
        "FROM trade_evaluation_items i JOIN trade_evaluations e ON e.eval_id = i.eval_id "
        "WHERE e.user_id = ? AND i.module_name = ? AND e.eval_ts < ? "
        "GROUP BY e.intent_id, i.issue_code ORDER BY shown_at, e.intent_id, i.issue_code",
        [user_id, module, until])
    frame["shown_at"] = pd.to_datetime(frame["shown_at"], utc=True)
    return frame


def activity_key(store: Store, user_id: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Return what changes when the user logs an intent or gets a review (writes that do not
    touch the context stamp): ((intents, newest intent created_at), (reviews, newest
    review)), in one query."""
    row = store.query(
        "SELECT (SELECT count(*) FROM trade_intents WHERE user_id = $u), "
        "(SELECT max(created_at) FROM trade_intents WHERE user_id = $u), "
        "(SELECT count(*) FROM post_trade_reviews WHERE user_id = $u), "
        "(SELECT max(generated_at) FROM post_trade_reviews WHERE user_id = $u)",
        {"u": user_id}).iloc[0]
    values = tuple(str(v) for v in row.tolist())
    return values[:2], values[2:]
