"""Test data for the nudge experiments: the demo trader's real intents, trades and reviews,
with one evaluation logged per intent under a three-arm experiment, and feedback.

The reports are factory-made (a warning on every intent, a behaviour nudge on every third,
a high-severity item on every fifth) so that building the store takes about a second; the
experiment hook (``apply_experiments``) and the logging (``Store.log_evaluation``) are the
real ones. Feedback is drawn per item from the item's own hash, with arm-dependent shares,
so the analysis has differences to find.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pandas as pd

from buddy.behavior.experiments import NudgeExperiment, apply_experiments, create_experiment
from buddy.domain import Fact, Issue, Mitigation, Severity, TradeIntent, Verdict
from buddy.explain import RenderedIssue
from buddy.report import BuddyReport
from buddy.store import Store
from buddy.store.core import insert_frame

EXPERIMENT_ID = "nudge-words"
WARNING = "REWARD_RISK_BELOW_MIN"
NUDGE = "REVENGE_TRADING"
SEVERE = "AGAINST_HIGHER_TIMEFRAME"
#: Share of shown items dismissed, and of rated items rated helpful, per arm (test data).
DISMISS_SHARE = {"control": 0.5, "ask": 0.25}
HELPFUL_SHARE = {"control": 0.4, "ask": 0.7}


def experiment() -> NudgeExperiment:
    """Return the test experiment: control shows, 'ask' rewords as a question, 'quiet'
    holds the items back; the high-severity item is targeted but exempt."""
    return NudgeExperiment.create(
        experiment_id=EXPERIMENT_ID, codes=[WARNING, NUDGE, SEVERE],
        arms=[{"name": "control", "action": "show"},
              {"name": "ask", "action": "reword", "style": "question"},
              {"name": "quiet", "action": "hold_back"}],
        description="question wording vs none vs as is")


def issue(module: str, code: str, severity: Severity, value: float) -> tuple[Issue,
                                                                              RenderedIssue]:
    """Return an issue with one fact and its words (the number in the words is the fact)."""
    fact = Fact(name="reward_risk", value=value, unit="R", threshold=2.0)
    found = Issue(module=module, code=code, severity=severity, evidence=(fact,),
                  mitigation=Mitigation(action="MOVE_TARGET", facts=(fact,)))
    words = RenderedIssue(module=module, code=code, severity=severity.value,
                          title=f"{code.replace('_', ' ').capitalize()}",
                          explanation=f"The measure stands at {value:.2f}R. It is below 2.00R.",
                          mitigation="Place the target at 2.00R or beyond.",
                          evidence=(f"reward_risk {value:.2f} R",), renderer="template")
    return found, words


def report_for(intent: TradeIntent, n: int) -> BuddyReport:
    """Return a report of ``intent`` with the items of row ``n`` (a real report's shape)."""
    pairs = [issue("risk_reward", WARNING, Severity.MEDIUM, 1.0 + (n % 7) / 10)]
    if n % 3 == 0:
        pairs.append(issue("behavior_nudges", NUDGE, Severity.LOW, 1.5))
    if n % 5 == 0:
        pairs.append(issue("mtfa", SEVERE, Severity.HIGH, 0.5))
    pairs.append(issue("exit_plan", "NO_TIME_STOP", Severity.LOW, 0.9))
    ranked = tuple(p[0] for p in pairs)
    words = tuple(p[1] for p in pairs)
    top = min(3, len(ranked))
    return BuddyReport(eval_id=f"ev-{intent.intent_id}", intent=intent, overall_score=70.0,
                       overall_severity=Severity.MEDIUM, verdict=Verdict.REVIEW,
                       top_issues=ranked[:top], rendered=words[:top], ranked_issues=ranked,
                       rendered_more=words[top:], all_issues=ranked, modules=(),
                       config_name="test", config_version="1", config_hash="0" * 16)


def intent_of(row: dict) -> TradeIntent:
    """Return the TradeIntent of a trade_intents row."""
    return TradeIntent.create(
        intent_id=row["intent_id"], user_id=row["user_id"], symbol=row["symbol"],
        side=row["side"], timeframe=row["timeframe"], proposed_entry=row["proposed_entry"],
        proposed_stop=row["proposed_stop"], proposed_target=row["proposed_target"],
        proposed_size=row["proposed_size"], as_of=row["as_of"],
        holding_horizon=row["holding_horizon"], order_type=row["order_type"])


def draw(*parts: object) -> float:
    """Return a test coin on [0, 1) from ``parts`` (independent of the arm's own hash)."""
    digest = hashlib.sha256("|".join(map(str, ("feedback", *parts))).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def build_experiment_store(demo_store: Store, path: Path, *, n_intents: int = 150) -> Store:
    """Copy the demo store to ``path``, run the test experiment over its first
    ``n_intents`` demo intents (one logged evaluation each) and add feedback, all in one
    transaction (``record_feedback`` one item at a time is tested on its own)."""
    shutil.copy(demo_store.path, path)
    store = Store(path)
    made = create_experiment(store, experiment())
    rows = store.query("SELECT * FROM trade_intents WHERE user_id = 'demo' "
                       "ORDER BY as_of, intent_id LIMIT ?", [n_intents]).to_dict("records")
    now = pd.Timestamp.now(tz="UTC")
    evaluations, items, feedback = [], [], []
    for n, row in enumerate(rows):
        intent = intent_of(row)
        report = apply_experiments(report_for(intent, n), [made])
        evaluations.append({**report.evaluation_row(), "created_at": now})
        items += [{**item, "created_at": now} for item in report.item_rows()]
        at = pd.Timestamp(intent.as_of) + pd.Timedelta(minutes=5)
        modules = {i.code: i.module for i in report.all_issues}
        for arm in report.experiment_arms:
            if arm.action == "hold_back":
                continue
            for code in arm.codes:
                dismissed = draw(report.eval_id, code, "dismiss") < DISMISS_SHARE[arm.arm]
                helpful = None
                if draw(report.eval_id, code, "rate") < 0.6:  # 60% of items get a rating
                    helpful = draw(report.eval_id, code, "helpful") < HELPFUL_SHARE[arm.arm]
                if dismissed or helpful is not None:
                    feedback.append({"eval_id": report.eval_id, "issue_code": code,
                                     "user_id": intent.user_id, "module_name": modules[code],
                                     "dismissed": dismissed, "helpful": helpful,
                                     "source": "widget", "first_at": at, "updated_at": at})
    with store.transaction() as con:
        insert_frame(con, "trade_evaluations", pd.DataFrame(evaluations))
        insert_frame(con, "trade_evaluation_items", pd.DataFrame(items))
        insert_frame(con, "report_item_feedback", pd.DataFrame(feedback))
    return store
