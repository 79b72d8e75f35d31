"""Brainstorm conversations in the store: ``assistant_sessions`` and ``assistant_messages``.

Every read and write filters by user id: a session of another user is not found. A turn (the
user's message, the assistant's reply, the session's new state and, when the turn saves one,
the journal entry) is written in ONE transaction, so a conversation is never half stored.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from buddy.store.core import Store, StoreOrCon, insert_rows, reader

#: Columns of ``assistant_messages`` (the seed's, migration 0001).
MESSAGE_COLUMNS: tuple[str, ...] = (
    "msg_id", "session_id", "ts", "role", "content_or_ref", "tool_calls_json_optional")
#: Columns of ``assistant_sessions`` (the seed's, migration 0001).
SESSION_COLUMNS: tuple[str, ...] = (
    "session_id", "user_id", "started_at", "last_active_at", "mode", "session_state_json")


class SessionChangedError(RuntimeError):
    """The session took another turn (another process) since its state was read."""


@dataclass(frozen=True, slots=True)
class MessageRow:
    """One stored message: who said it (``role`` 'user' | 'assistant'), when (UTC), the text,
    and the tool calls behind it (JSON-able, or None)."""

    msg_id: str
    ts: datetime
    role: str
    content: str
    tool_calls: Any = None


@dataclass(frozen=True, slots=True)
class JournalRow:
    """A journal entry a turn saves (``trade_journal``): the summary text, its tags and the
    intent it is linked to, if the session evaluated one."""

    journal_id: str
    note_text: str
    tags: tuple[str, ...]
    intent_id: str | None = None


def create_session(store: Store, *, session_id: str, user_id: str, started_at: datetime,
                   mode: str, state: Mapping[str, Any]) -> None:
    """Write a new session row (``started_at`` UTC, also its ``last_active_at``)."""
    with store.transaction() as con:
        _insert_session(con, session_id, user_id, started_at, mode, state)


def read_session(source: StoreOrCon, user_id: str, session_id: str) -> dict[str, Any] | None:
    """Return the user's session row with ``session_state_json`` decoded as ``state``, or
    None when the user has no such session (another user's is not found either)."""
    with reader(source) as con:
        row = con.execute("SELECT session_id, user_id, started_at, last_active_at, mode, "
                          "session_state_json FROM assistant_sessions WHERE session_id = ? "
                          "AND user_id = ?", [session_id, user_id]).fetchone()
    if row is None:
        return None
    record = dict(zip(SESSION_COLUMNS, row, strict=True))
    record["state"] = json.loads(record.pop("session_state_json") or "{}")
    return record


def read_sessions(source: StoreOrCon, user_id: str) -> pd.DataFrame:
    """Return the user's sessions (without their state), most recently active first."""
    with reader(source) as con:
        return con.execute("SELECT session_id, user_id, started_at, last_active_at, mode FROM "
                           "assistant_sessions WHERE user_id = ? ORDER BY last_active_at DESC, "
                           "session_id", [user_id]).df()


def read_messages(source: StoreOrCon, user_id: str, session_id: str) -> list[dict[str, Any]]:
    """Return the messages of the user's session in the order they were said, tool calls
    decoded (empty when the user has no such session)."""
    with reader(source) as con:
        rows = con.execute(
            "SELECT m.msg_id, m.session_id, m.ts, m.role, m.content_or_ref, "
            "m.tool_calls_json_optional FROM assistant_messages m JOIN assistant_sessions s "
            "USING (session_id) WHERE s.user_id = ? AND m.session_id = ? ORDER BY m.ts, "
            "m.msg_id", [user_id, session_id]).fetchall()
    messages = []
    for row in rows:
        record = dict(zip(MESSAGE_COLUMNS, row, strict=True))
        raw = record["tool_calls_json_optional"]
        record["tool_calls_json_optional"] = None if raw is None else json.loads(raw)
        messages.append(record)
    return messages


def write_turn(store: Store, *, session_id: str, user_id: str, active_at: datetime, mode: str,
               state: Mapping[str, Any], messages: Sequence[MessageRow],
               new_session: bool = False, journal: JournalRow | None = None,
               expect_turns: int | None = None) -> None:
    """Write one turn in ONE transaction: the session (created when ``new_session``, else
    updated: its state, mode and ``last_active_at``), its messages and, when given, the
    journal entry the turn saves.

    Raises KeyError naming the session when the user has no such session, and
    SessionChangedError when ``expect_turns`` is given and the stored state's ``turns`` is
    another (the turn was answered from a stale state); nothing is written then."""
    with store.transaction() as con:
        if new_session:
            _insert_session(con, session_id, user_id, active_at, mode, state)
        else:
            # one statement in the usual case: the update matches only the user's session at
            # the expected turn count, and says how many rows it changed (RETURNING is
            # refused on a row assistant_messages references: DuckDB 2.0's foreign keys)
            changed = con.execute(
                "UPDATE assistant_sessions SET last_active_at = ?, mode = ?, "
                "session_state_json = ? WHERE session_id = ? AND user_id = ? AND (CAST(? AS "
                "BIGINT) IS NULL OR coalesce(CAST(json_extract(session_state_json, '$.turns') "
                "AS BIGINT), 0) = ?)",
                [active_at, mode, _json(state), session_id, user_id, expect_turns,
                 expect_turns]).fetchone()
            if not changed or not changed[0]:
                row = con.execute("SELECT CAST(json_extract(session_state_json, '$.turns') "
                                  "AS BIGINT) FROM assistant_sessions WHERE session_id = ? "
                                  "AND user_id = ?", [session_id, user_id]).fetchone()
                if row is None:
                    raise KeyError(f"session_id: no session {session_id!r} for user "
                                   f"{user_id!r}")
                raise SessionChangedError(
                    f"session_id: {session_id!r} has {row[0]} turns stored, the turn was "
                    f"answered after {expect_turns}")
        insert_rows(con, "assistant_messages", [
            {"msg_id": m.msg_id, "session_id": session_id, "ts": m.ts, "role": m.role,
             "content_or_ref": m.content,
             "tool_calls_json_optional": None if m.tool_calls is None else _json(m.tool_calls)}
            for m in messages])
        if journal is not None:
            # the journal family's table, written here so the entry and the turn that saves
            # it commit together (buddy.store.trades.add_intent_note opens its own transaction)
            con.execute("INSERT INTO trade_journal (journal_id, user_id, trade_id_optional, "
                        "intent_id_optional, note_text, tags_json, created_at) VALUES "
                        "(?, ?, NULL, ?, ?, ?, ?)",
                        [journal.journal_id, user_id, journal.intent_id, journal.note_text,
                         json.dumps(list(journal.tags)), active_at])


def _insert_session(con: Any, session_id: str, user_id: str, started_at: datetime, mode: str,
                    state: Mapping[str, Any]) -> None:
    con.execute("INSERT INTO assistant_sessions (session_id, user_id, started_at, "
                "last_active_at, mode, session_state_json) VALUES (?, ?, ?, ?, ?, ?)",
                [session_id, user_id, started_at, started_at, mode, _json(state)])


def _json(value: Any) -> str:
    return json.dumps(value, default=str, sort_keys=True)
