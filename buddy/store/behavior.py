"""Behaviour events (table behavior_events, migrations 0001 and 0018) and the reads the
behaviour detectors need (a user's intents before t).

Every function filters by user id. A scan replaces a user's events whole, in one
transaction, so a rescan under other settings never leaves a mix of the two.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pandas as pd

from buddy.store.core import Store, insert_frame, scalar

__all__ = ["EVENT_COLUMNS", "account_equity", "count_events", "read_events", "read_user_intents",
           "replace_events"]

#: behavior_events' columns (the seed's, then 0018's).
EVENT_COLUMNS: tuple[str, ...] = (
    "event_id", "user_id", "ts", "event_type", "severity", "evidence_json",
    "action_suggested_json", "linked_intent_id_optional", "linked_trade_id_optional",
    "session_date", "metric", "unit", "value", "baseline", "difference", "difference_lo",
    "difference_hi", "n", "symbol", "params_hash", "detector_version", "computed_at")


def replace_events(store: Store, user_id: str, events: pd.DataFrame) -> int:
    """Replace ``user_id``'s behaviour events with ``events`` (EVENT_COLUMNS) in ONE
    transaction; return the rows written. Rows of another user are refused whole."""
    missing = [c for c in EVENT_COLUMNS if c not in events.columns]
    if missing:
        raise ValueError(f"events: missing columns {missing}")
    wrong = sorted(set(events["user_id"]) - {user_id}) if len(events) else []
    if wrong:
        raise ValueError(f"events.user_id: must all be {user_id!r} (got {wrong[:3]})")
    duplicated = events["event_id"][events["event_id"].duplicated()].tolist()
    if duplicated:
        raise ValueError(f"events.event_id: must be unique (got {duplicated[:3]} twice)")
    with store.transaction() as con:
        con.execute("DELETE FROM behavior_events WHERE user_id = ?", [user_id])
        if len(events):
            insert_frame(con, "behavior_events", events[list(EVENT_COLUMNS)])
    return len(events)


def read_events(store: Store, user_id: str, *, event_types: Sequence[str] | None = None,
                until: datetime | None = None) -> pd.DataFrame:
    """Return ``user_id``'s behaviour events (by ts), optionally of some types and with
    ts <= ``until`` (the point-in-time read)."""
    sql = f"SELECT {', '.join(EVENT_COLUMNS)} FROM behavior_events WHERE user_id = ?"
    params: list[Any] = [user_id]
    if event_types is not None:
        sql += " AND list_contains(?, event_type)"
        params.append(list(event_types))
    if until is not None:
        sql += " AND ts <= ?"
        params.append(until)
    frame = store.query(sql + " ORDER BY ts, event_type, event_id", params)
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame


def count_events(store: Store, user_id: str) -> int:
    """Return how many behaviour events ``user_id`` has."""
    with store.connect(read_only=True) as con:
        return int(scalar(con, "SELECT count(*) FROM behavior_events WHERE user_id = ?",
                          [user_id]))


def account_equity(store: Store, user_id: str) -> tuple[float, pd.Timestamp] | None:
    """Return ``user_id``'s equity snapshot and when it was written (UTC), or None without a
    positive one. Earlier values are not kept: before that time the equity is unknown."""
    frame = store.query("SELECT equity_snapshot, updated_at FROM user_accounts "
                        "WHERE user_id = ?", [user_id])
    if frame.empty or not frame.iloc[0]["equity_snapshot"] > 0:
        return None
    return (float(frame.iloc[0]["equity_snapshot"]),
            pd.Timestamp(frame.iloc[0]["updated_at"]).tz_convert("UTC"))


def read_user_intents(store: Store, user_id: str, *, before: datetime | None = None
                      ) -> pd.DataFrame:
    """Return ``user_id``'s logged intents with as_of < ``before`` (all when None), by
    as_of."""
    sql = "SELECT * FROM trade_intents WHERE user_id = ?"
    params: list[Any] = [user_id]
    if before is not None:
        sql += " AND as_of < ?"
        params.append(before)
    frame = store.query(sql + " ORDER BY as_of, intent_id", params)
    frame["as_of"] = pd.to_datetime(frame["as_of"], utc=True)
    return frame
