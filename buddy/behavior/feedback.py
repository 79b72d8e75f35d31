"""The trader's feedback on report items, and what the trader did after a report.

Feedback is given where the report is read (the workbench's buttons, ``buddy feedback``,
later the API): an item can be dismissed, and rated helpful or not helpful. One row per
(evaluation, issue code) in ``report_item_feedback``: a dismissal stays, a later rating
replaces an earlier one. Feedback on an item the report held back (an experiment's
hold_back arm) is refused: the trader never saw it. Dismissing a behaviour nudge also tells
the nudge controls (``buddy.behavior.settings.dismiss_nudge``), so the same nudge stays
quiet for the user's window.

The behavioural outcome of a decision point (``intent_outcomes``), read as of a time t from
the trader's own records, never guessed:

- ``changed``: the trader logged another intent on the same symbol and side within
  ``window_hours`` after this one's decision time, with a different entry, stop, target or
  size (the plan was revised after reading the report);
- ``traded``: a trade linked to this intent (or to its revision) opened within the window;
- ``abandoned``: neither traded nor revised within the window;
- ``process_score`` / ``process_grade``: the post-trade review of that trade (checks passed
  over checks made), known once the trade closed by t.

``traded`` and ``abandoned`` are None ("not checked") for a trader with no trade history by
t (nothing imported: an untraded intent cannot be told from missing fills) and while the
window is still open at t.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from buddy.errors import FieldError, FieldErrors

if TYPE_CHECKING:
    from buddy.store import Store

__all__ = ["DEFAULT_WINDOW_HOURS", "FEEDBACK_KINDS", "SOURCES", "FeedbackError",
           "ItemFeedback", "held_back_codes", "intent_outcomes", "record_feedback"]

#: What a trader can say about one report item.
FEEDBACK_KINDS: tuple[str, ...] = ("dismissed", "helpful", "not_helpful")
#: Where the feedback was given.
SOURCES: tuple[str, ...] = ("cli", "widget", "api")
#: How long after a decision a revision or a trade still counts as its outcome, hours.
DEFAULT_WINDOW_HOURS = 24.0
#: The module whose items are behaviour nudges (buddy.evaluators.behavior_nudges).
NUDGE_MODULE = "behavior_nudges"
_PLAN = ("proposed_entry", "proposed_stop", "proposed_target", "proposed_size")


class FeedbackError(FieldErrors):
    """Feedback named an unknown evaluation or item, or an unknown kind; nothing written."""

    what = "feedback"


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemFeedback:
    """The feedback on one report item after a write."""

    eval_id: str
    issue_code: str
    user_id: str
    module_name: str
    dismissed: bool
    helpful: bool | None  # None: not rated
    source: str
    first_at: datetime
    updated_at: datetime


def held_back_codes(experiment_arms_json: str | None) -> set[str]:
    """Return the codes an evaluation's experiment arms held back (not shown)."""
    if not experiment_arms_json:
        return set()
    arms = json.loads(experiment_arms_json)
    return {c for a in arms if a.get("action") == "hold_back" for c in a.get("codes", ())}


def record_feedback(store: Store, *, eval_id: str, code: str, kind: str,
                    user_id: str | None = None, source: str = "cli",
                    at: datetime | None = None) -> ItemFeedback:
    """Record ``kind`` (dismissed, helpful or not_helpful) on item ``code`` of evaluation
    ``eval_id``; return the item's feedback after the write.

    Raises FeedbackError naming the field, the rule and the value when the evaluation is
    unknown (or another user's, when ``user_id`` is given), when it has no item of that code,
    when that item was held back by an experiment arm, or for an unknown kind or source.
    ``at`` (tz-aware) defaults to the wall clock: this is an edge."""
    from buddy.store.nudge_experiments import evaluation_item, upsert_feedback

    errors: list[FieldError] = []
    if kind not in FEEDBACK_KINDS:
        errors.append(FieldError("kind", f"must be one of {', '.join(FEEDBACK_KINDS)}", kind))
    if source not in SOURCES:
        errors.append(FieldError("source", f"must be one of {', '.join(SOURCES)}", source))
    if at is not None and at.tzinfo is None:
        errors.append(FieldError("at", "must be a timezone-aware datetime", at))
    code = str(code).strip().upper()
    found = evaluation_item(store, eval_id, code)
    if found is None or (user_id is not None and found["user_id"] != user_id):
        errors.append(FieldError("eval_id", "names no logged evaluation"
                                 + ("" if user_id is None else f" of user {user_id!r}"),
                                 eval_id))
    elif found["module_name"] is None:
        errors.append(FieldError("code", "is not an item of that evaluation", code))
    elif code in held_back_codes(found["experiment_arms_json"]):
        errors.append(FieldError("code", "was held back by an experiment arm (the report did "
                                 "not show it)", code))
    if errors:
        raise FeedbackError(errors)
    assert found is not None
    when = at or datetime.now(UTC)
    row = upsert_feedback(store, eval_id=eval_id, issue_code=code, user_id=found["user_id"],
                          module_name=found["module_name"], dismissed=kind == "dismissed",
                          helpful={"helpful": True, "not_helpful": False}.get(kind),
                          source=source, at=when)
    if kind == "dismissed" and found["module_name"] == NUDGE_MODULE:
        _quiet_nudge(store, found, code, when, eval_id)
    return ItemFeedback(**{**row, "dismissed": bool(row["dismissed"]),
                           "helpful": None if row["helpful"] is None else bool(row["helpful"])})


def _quiet_nudge(store: Store, found: dict[str, Any], code: str, at: datetime,
                 eval_id: str) -> None:
    """Tell the nudge controls the trader dismissed this detector's nudge."""
    from buddy.behavior.nudges import detector_of
    from buddy.behavior.settings import dismiss_nudge

    detector = detector_of(code)
    if detector is not None:  # a nudge code of the library (not the not-checked code)
        dismiss_nudge(store, found["user_id"], detector, at, eval_id=eval_id,
                      intent_id=found["intent_id"])


# ------------------------------------------------------------------------ outcomes
def intent_outcomes(store: Store, evaluations: pd.DataFrame, *,
                    as_of: datetime | None = None,
                    window_hours: float = DEFAULT_WINDOW_HOURS) -> pd.DataFrame:
    """Return the behavioural outcome of each evaluation in ``evaluations`` (columns
    eval_id, intent_id, user_id, eval_ts): changed, traded, abandoned (nullable booleans),
    trade_id, process_grade, process_score, read as of ``as_of`` (everything recorded when
    None)."""
    from buddy.store.nudge_experiments import intent_rows, linked_trade_rows, user_has_trades

    columns = ["eval_id", "changed", "traded", "abandoned", "trade_id", "process_grade",
               "process_score"]
    if window_hours <= 0 or not np.isfinite(window_hours):
        raise FeedbackError([FieldError("window_hours", "must be a finite number > 0",
                                        window_hours)])
    if evaluations.empty:
        return pd.DataFrame(columns=columns)
    users = sorted(evaluations["user_id"].unique())
    intents = intent_rows(store, users, until=as_of)
    trades = linked_trade_rows(store, users, until=as_of)
    has_trades = user_has_trades(store, users, until=as_of)
    window = pd.Timedelta(hours=window_hours)
    keys = ["user_id", "symbol", "side"]
    mine = evaluations[["eval_id", "intent_id"]].merge(intents, on="intent_id", how="left")
    known = mine["as_of"].notna().to_numpy(bool, copy=True)  # after as_of: nothing known
    if as_of is not None:
        known &= (mine["as_of"] + window <= pd.Timestamp(as_of)).to_numpy()  # window closed
    # revisions: later intents on the same symbol and side within the window, another plan
    pairs = mine[known].merge(intents, on=keys, suffixes=("", "_later"))
    pairs = pairs[(pairs["as_of_later"] > pairs["as_of"])
                  & (pairs["as_of_later"] <= pairs["as_of"] + window)
                  & (pairs["intent_id_later"] != pairs["intent_id"])]
    pairs = pairs[_plan_differs(pairs)]
    changed = set(pairs["eval_id"])
    # the trade: linked to the intent or to a revision, opened within the window
    candidates = pd.concat([
        mine.loc[known, ["eval_id", "intent_id", "as_of"]].rename(
            columns={"intent_id": "candidate"}),
        pairs[["eval_id", "intent_id_later", "as_of"]].rename(
            columns={"intent_id_later": "candidate"})], ignore_index=True)
    linked = candidates.merge(trades, left_on="candidate", right_on="linked_intent_id")
    linked = linked[(linked["open_ts"] >= linked["as_of"])
                    & (linked["open_ts"] <= linked["as_of"] + window)]
    first = linked.sort_values(["open_ts", "trade_id"]).drop_duplicates("eval_id")
    first = first.set_index("eval_id")
    frame = pd.DataFrame({"eval_id": mine["eval_id"]})
    was_changed = mine["eval_id"].isin(changed).to_numpy()
    was_traded = mine["eval_id"].isin(first.index).to_numpy()
    checkable = known & mine["user_id"].map(has_trades).fillna(False).to_numpy(bool)
    frame["changed"] = pd.array(np.where(known, was_changed, pd.NA), dtype="boolean")
    frame["traded"] = pd.array(np.where(checkable, was_traded, pd.NA), dtype="boolean")
    frame["abandoned"] = pd.array(np.where(checkable, ~was_traded & ~was_changed, pd.NA),
                                  dtype="boolean")
    for column in ("trade_id", "process_grade", "process_score"):
        frame[column] = mine["eval_id"].map(first[column]).to_numpy()
    frame["process_score"] = frame["process_score"].astype("float64")
    return frame[columns].reset_index(drop=True)


def _plan_differs(pairs: pd.DataFrame) -> np.ndarray:
    """Return, per (intent, later intent) pair, whether the later one's entry, stop, target
    or size differ (a missing stop or target against a given one differs)."""
    differs = np.zeros(len(pairs), dtype=bool)
    for column in _PLAN:
        before = pairs[column].to_numpy(np.float64, na_value=np.nan)
        after = pairs[f"{column}_later"].to_numpy(np.float64, na_value=np.nan)
        same = np.isclose(after, before, rtol=1e-9, atol=0.0) | (
            np.isnan(after) & np.isnan(before))
        differs |= ~same
    return differs
