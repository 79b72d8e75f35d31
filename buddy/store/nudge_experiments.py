"""Nudge and warning experiments, the arms stored on evaluations, and the trader's feedback on
report items (migration 0020). All their SQL lives here; ``buddy.behavior.experiments`` and
``buddy.behavior.feedback`` validate and call it.

Reads for an analysis are point-in-time by the time each row describes: evaluations by their
decision time (``eval_ts``, the intent's as_of), feedback by when it was given, trades by
their open time and reviews by their trade's close time.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from buddy.store.core import Store

__all__ = ["arm_rows", "end_experiment", "evaluation_item", "experiment_rows",
           "feedback_rows", "insert_experiment", "intent_rows", "linked_trade_rows",
           "upsert_feedback", "user_has_trades"]


# ------------------------------------------------------------------------ experiments
def insert_experiment(store: Store, row: dict[str, Any]) -> bool:
    """Insert one nudge_experiments row (JSON columns as Python lists); return False when an
    experiment of that id exists already (nothing written)."""
    with store.transaction() as con:
        found = con.execute("SELECT count(*) FROM nudge_experiments WHERE experiment_id = ?",
                            [row["experiment_id"]]).fetchone()
        if found is not None and found[0]:
            return False
        con.execute(
            "INSERT INTO nudge_experiments (experiment_id, description, codes_json, arms_json, "
            "users_json, max_severity, status, created_at, ended_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)",
            [row["experiment_id"], row["description"], json.dumps(row["codes"]),
             json.dumps(row["arms"]), json.dumps(row["users"]), row["max_severity"],
             row["status"], row["created_at"]])
    return True


def end_experiment(store: Store, experiment_id: str, at: datetime) -> bool:
    """Mark an active experiment ended at ``at``; return False when none was active."""
    with store.transaction() as con:
        found = con.execute("SELECT count(*) FROM nudge_experiments WHERE experiment_id = ? "
                            "AND status = 'active'", [experiment_id]).fetchone()
        if found is None or not found[0]:
            return False
        con.execute("UPDATE nudge_experiments SET status = 'ended', ended_at = ? "
                    "WHERE experiment_id = ?", [at, experiment_id])
    return True


def experiment_rows(store: Store, *, active_only: bool = False,
                    experiment_id: str | None = None) -> list[dict[str, Any]]:
    """Return nudge_experiments rows as dicts (JSON columns parsed), oldest first."""
    where, params = [], []
    if active_only:
        where.append("status = 'active'")
    if experiment_id is not None:
        where.append("experiment_id = ?")
        params.append(experiment_id)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    with store.connect(read_only=True) as con:
        result = con.execute(
            "SELECT experiment_id, description, codes_json, arms_json, users_json, "
            f"max_severity, status, created_at, ended_at FROM nudge_experiments{clause} "
            "ORDER BY created_at, experiment_id", params)
        names = [d[0] for d in result.description]
        rows = [dict(zip(names, r, strict=True)) for r in result.fetchall()]
    for row in rows:
        for key in ("codes", "arms", "users"):
            row[key] = json.loads(row.pop(f"{key}_json"))
    return rows


def arm_rows(store: Store, experiment_id: str, *, until: datetime | None = None
             ) -> pd.DataFrame:
    """Return one row per logged evaluation that holds an arm of ``experiment_id``: eval_id,
    intent_id, user_id, symbol, eval_ts (UTC), experiment_arms_json (text) and created_at,
    oldest first; evaluations with eval_ts <= ``until`` only when given."""
    params: list[Any] = [f'%"{experiment_id}"%']
    cut = ""
    if until is not None:
        cut = " AND eval_ts <= ?"
        params.append(until)
    frame = store.query(
        "SELECT eval_id, intent_id, user_id, symbol, eval_ts, experiment_arms_json, created_at "
        "FROM trade_evaluations WHERE experiment_arms_json IS NOT NULL "
        f"AND CAST(experiment_arms_json AS VARCHAR) LIKE ?{cut} "
        "ORDER BY eval_ts, created_at, eval_id",
        params)
    frame["eval_ts"] = pd.to_datetime(frame["eval_ts"], utc=True)
    return frame


# ------------------------------------------------------------------------ feedback
def evaluation_item(store: Store, eval_id: str, issue_code: str) -> dict[str, Any] | None:
    """Return the evaluation's user_id, intent_id, eval_ts, experiment_arms_json and the
    item's module_name (None when the evaluation is unknown; module_name None when it has no
    item of that code)."""
    with store.connect(read_only=True) as con:
        row = con.execute(
            "SELECT e.user_id, e.intent_id, e.eval_ts, "
            "CAST(e.experiment_arms_json AS VARCHAR), "
            "(SELECT min(i.module_name) FROM trade_evaluation_items i "
            " WHERE i.eval_id = e.eval_id AND i.issue_code = ?) "
            "FROM trade_evaluations e WHERE e.eval_id = ?", [issue_code, eval_id]).fetchone()
    if row is None:
        return None
    return {"user_id": row[0], "intent_id": row[1], "eval_ts": row[2],
            "experiment_arms_json": row[3], "module_name": row[4]}


def upsert_feedback(store: Store, *, eval_id: str, issue_code: str, user_id: str,
                    module_name: str, dismissed: bool | None, helpful: bool | None,
                    source: str, at: datetime) -> dict[str, Any]:
    """Record feedback on one item in ONE transaction: ``dismissed`` True sets the dismissal
    (it stays), ``helpful`` True/False replaces the rating, None leaves either as it was;
    return the item's row after the write."""
    with store.transaction() as con:
        old = con.execute("SELECT dismissed, helpful, first_at FROM report_item_feedback "
                          "WHERE eval_id = ? AND issue_code = ?",
                          [eval_id, issue_code]).fetchone()
        if old is None:
            con.execute(
                "INSERT INTO report_item_feedback (eval_id, issue_code, user_id, module_name, "
                "dismissed, helpful, source, first_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [eval_id, issue_code, user_id, module_name, bool(dismissed), helpful, source,
                 at, at])
        else:
            con.execute(
                "UPDATE report_item_feedback SET dismissed = ?, helpful = ?, source = ?, "
                "updated_at = ? WHERE eval_id = ? AND issue_code = ?",
                [bool(old[0]) or bool(dismissed), old[1] if helpful is None else helpful,
                 source, at, eval_id, issue_code])
        row = con.execute("SELECT eval_id, issue_code, user_id, module_name, dismissed, "
                          "helpful, source, first_at, updated_at FROM report_item_feedback "
                          "WHERE eval_id = ? AND issue_code = ?",
                          [eval_id, issue_code]).fetchone()
        assert row is not None  # written in this transaction
        names = ("eval_id", "issue_code", "user_id", "module_name", "dismissed", "helpful",
                 "source", "first_at", "updated_at")
        return dict(zip(names, row, strict=True))


def feedback_rows(store: Store, eval_ids: Sequence[str], *, until: datetime | None = None
                  ) -> pd.DataFrame:
    """Return the feedback rows of ``eval_ids`` (first given at or before ``until`` when
    given): eval_id, issue_code, dismissed, helpful, first_at, updated_at."""
    columns = ["eval_id", "issue_code", "dismissed", "helpful", "first_at", "updated_at"]
    if not len(eval_ids):
        return pd.DataFrame(columns=columns)
    cut, params = "", []
    if until is not None:
        cut, params = " WHERE f.first_at <= ?", [until]
    with store.connect(read_only=True) as con:
        con.register("_wanted", pd.DataFrame({"eval_id": list(eval_ids)}))
        try:
            return con.execute(
                f"SELECT {', '.join('f.' + c for c in columns)} FROM report_item_feedback f "
                f"JOIN _wanted w USING (eval_id){cut} ORDER BY f.eval_id, f.issue_code",
                params).df()
        finally:
            con.unregister("_wanted")


# ------------------------------------------------------------------------ outcomes
def intent_rows(store: Store, user_ids: Sequence[str], *, until: datetime | None = None
                ) -> pd.DataFrame:
    """Return the trade_intents of ``user_ids`` (as_of <= ``until`` when given): intent_id,
    user_id, symbol, side, as_of (UTC), proposed entry, stop, target and size."""
    columns = ["intent_id", "user_id", "symbol", "side", "as_of", "proposed_entry",
               "proposed_stop", "proposed_target", "proposed_size"]
    if not len(user_ids):
        return pd.DataFrame(columns=columns)
    cut, params = "", []
    if until is not None:
        cut, params = " WHERE t.as_of <= ?", [until]
    with store.connect(read_only=True) as con:
        con.register("_users", pd.DataFrame({"user_id": list(user_ids)}))
        try:
            frame = con.execute(
                f"SELECT {', '.join('t.' + c for c in columns)} FROM trade_intents t "
                f"JOIN _users u USING (user_id){cut} ORDER BY t.user_id, t.as_of, t.intent_id",
                params).df()
        finally:
            con.unregister("_users")
    frame["as_of"] = pd.to_datetime(frame["as_of"], utc=True)
    return frame


def linked_trade_rows(store: Store, user_ids: Sequence[str], *, until: datetime | None = None
                      ) -> pd.DataFrame:
    """Return the trades of ``user_ids`` linked to an intent (opened at or before ``until``
    when given) with their review's process grade and score when the trade closed by
    ``until``: trade_id, user_id, linked_intent_id, open_ts, close_ts, process_grade,
    process_score."""
    columns = ["trade_id", "user_id", "linked_intent_id", "open_ts", "close_ts",
               "process_grade", "process_score"]
    if not len(user_ids):
        return pd.DataFrame(columns=columns)
    open_cut, closed = "", "TRUE"
    params: dict[str, Any] = {}
    if until is not None:
        # a review is known once its trade closed: graded as of ``until`` only then
        closed = "t.close_ts IS NOT NULL AND t.close_ts <= $until"
        open_cut = " AND t.open_ts <= $until"
        params = {"until": until}
    with store.connect(read_only=True) as con:
        con.register("_users", pd.DataFrame({"user_id": list(user_ids)}))
        try:
            frame = con.execute(
                "SELECT t.trade_id, t.user_id, t.linked_intent_id, t.open_ts, t.close_ts, "
                f"CASE WHEN {closed} THEN r.process_grade END AS process_grade, "
                f"CASE WHEN {closed} THEN r.process_score END AS process_score "
                "FROM trades t JOIN _users u USING (user_id) "
                "LEFT JOIN post_trade_reviews r ON r.trade_id = t.trade_id "
                f"WHERE t.linked_intent_id IS NOT NULL{open_cut} ORDER BY t.open_ts, t.trade_id",
                params).df()
        finally:
            con.unregister("_users")
    for column in ("open_ts", "close_ts"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def user_has_trades(store: Store, user_ids: Sequence[str], *, until: datetime | None = None
                    ) -> dict[str, bool]:
    """Return, per user, whether any trade of theirs opened at or before ``until`` (a user
    with no trade history cannot show whether an intent was traded: "not checked")."""
    found = {u: False for u in user_ids}
    if not found:
        return found
    cut, params = "", []
    if until is not None:
        cut, params = " WHERE t.open_ts <= ?", [until]
    with store.connect(read_only=True) as con:
        con.register("_users", pd.DataFrame({"user_id": list(found)}))
        try:
            rows = con.execute("SELECT DISTINCT t.user_id FROM trades t "
                               f"JOIN _users u USING (user_id){cut}", params).fetchall()
        finally:
            con.unregister("_users")
    found.update({r[0]: True for r in rows})
    return found
