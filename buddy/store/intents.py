"""Trade intents written on their own (the service's drafts and submissions): their SQL.

An evaluation writes its intent with it (``Store.log_evaluation``); this module writes an
intent before any evaluation, and updates a draft that no evaluation references yet.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from buddy.store.core import Store, insert_rows, scalar

__all__ = ["IntentLocked", "save_intent"]


class IntentLocked(Exception):
    """The intent cannot change: it was submitted or has an evaluation."""


def save_intent(store: Store, row: Mapping[str, Any], *, created_at: datetime
                ) -> Literal["created", "updated"]:
    """Insert the trade_intents ``row``, or update it when the same user's intent of that id is
    a draft without evaluations; return 'created' or 'updated'. One transaction.

    Raises KeyError('intent_id: ...') when the id belongs to another user (the caller answers
    as for an unknown id), IntentLocked when the intent was submitted or evaluated (its
    evaluations describe it as it was)."""
    intent_id = row["intent_id"]
    with store.transaction() as con:
        found = con.execute("SELECT user_id, status FROM trade_intents WHERE intent_id = ?",
                            [intent_id]).fetchone()
        if found is None:
            insert_rows(con, "trade_intents", [{**row, "created_at": created_at}])
            return "created"
        if found[0] != row["user_id"]:
            raise KeyError(f"intent_id: no intent {intent_id!r} for this user")
        evaluated = scalar(con, "SELECT count(*) FROM trade_evaluations WHERE intent_id = ?",
                           [intent_id])
        if found[1] != "draft" or evaluated:
            raise IntentLocked(f"intent {intent_id!r} is {found[1]}"
                               + (f" with {evaluated} evaluation(s)" if evaluated else "")
                               + ": it can no longer change; create a new intent")
        names = [k for k in row if k not in ("intent_id", "user_id")]
        con.execute(f"UPDATE trade_intents SET {', '.join(f'{k} = ?' for k in names)} "
                    "WHERE intent_id = ?", [row[k] for k in names] + [intent_id])
    return "updated"
