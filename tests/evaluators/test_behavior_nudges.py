"""BehaviorNudgesEvaluator on the demo trader's own logged intents: a revenge nudge right
after a loss carries the trader's own figures (checked against the stored history, not the
detector's output), the contract kit passes, the result at t equals the one on the history
read point-in-time from the store, and the trader's controls (quiet window after a
dismissal, daily cap) change what is shown."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from buddy.batch.builder import build_batch_context
from buddy.behavior.history import load_history
from buddy.behavior.provider import BehaviorProvider, BehaviorState
from buddy.behavior.settings import dismiss_nudge, set_nudge_settings
from buddy.context.builder import ContextPackBuilder
from buddy.context.pack import ContextPack
from buddy.context.providers import ProviderRegistry
from buddy.domain import OrderType, Side, TradeIntent
from buddy.evaluators.behavior_nudges import BehaviorNudgesEvaluator
from buddy.explain import render_issue
from buddy.store import Store
from buddy.store.behavior import read_user_intents
from buddy.store.demo_truth import demo_behavior_truth
from buddy.testing import PointInTimeCase, check_evaluator
from buddy.timeframes import Timeframe

USER = "demo"


def registry() -> ProviderRegistry:
    """Return a registry with a fresh behavior provider (no cache across stores)."""
    return ProviderRegistry({"behavior": BehaviorProvider()})


@pytest.fixture(scope="module")
def intents(demo_store: Store) -> pd.DataFrame:
    """Return the demo trader's logged intents decided within three days after a
    size-up-after-loss day of the demo's ground truth, plus every 40th other one."""
    every = read_user_intents(demo_store, USER)
    truth = demo_behavior_truth(demo_store, USER)
    sized = pd.to_datetime(truth.loc[truth["kind"] == "size_up_after_loss", "ts"], utc=True)
    at = every["as_of"]
    near = np.zeros(len(every), dtype=bool)
    for t in sized:
        near |= ((at >= t - timedelta(days=3)) & (at <= t)).to_numpy()
    near[::40] = True
    return every[near].reset_index(drop=True)


@pytest.fixture(scope="module")
def found(demo_store: Store, intents: pd.DataFrame) -> pd.DataFrame:
    """Return the evaluator's issues on ``intents`` at the defaults."""
    return issues_of(demo_store, intents)


def issues_of(store: Store, frame: pd.DataFrame, **config: object) -> pd.DataFrame:
    """Return the evaluator's issues on ``frame`` (row, code, severity, ...)."""
    ctx = build_batch_context(store, frame, providers=registry())
    return BehaviorNudgesEvaluator(dict(config)).evaluate_batch(ctx).issues


def intent_of(row: pd.Series) -> TradeIntent:
    """Return the logged intent ``row`` as a TradeIntent."""
    return TradeIntent(
        user_id=USER, symbol=row["symbol"], side=Side(row["side"]),
        timeframe=Timeframe(row["timeframe"]), proposed_entry=float(row["proposed_entry"]),
        proposed_stop=float(row["proposed_stop"]), proposed_target=float(row["proposed_target"]),
        proposed_size=float(row["proposed_size"]),
        proposed_risk_amount=float(row["proposed_risk_amount"]),
        holding_horizon=int(row["holding_horizon"]), order_type=OrderType.MARKET,
        as_of=pd.Timestamp(row["as_of"]).to_pydatetime(), intent_id=str(row["intent_id"]))


def test_a_revenge_nudge_right_after_a_loss_cites_the_traders_own_figures(
        demo_store: Store, intents: pd.DataFrame, found: pd.DataFrame) -> None:
    revenge = found[found["code"] == "REVENGE_TRADING"]
    assert len(revenge) >= 3
    row = intents.iloc[int(revenge["row"].iloc[0])]
    intent = intent_of(row)
    pack = ContextPackBuilder(demo_store, providers=registry()).build(
        USER, intent.symbol, intent.timeframe, intent.as_of)
    evaluator = BehaviorNudgesEvaluator()
    issue = next(i for i in evaluator.evaluate(intent, pack).issues
                 if i.code == "REVENGE_TRADING")
    facts = {f.name: f.value for f in issue.evidence}
    # the oracle: the stored history as of t, read here without the detectors
    history = load_history(demo_store, USER, as_of=intent.as_of).trades
    t = pd.Timestamp(intent.as_of)
    before = history[pd.to_datetime(history["open_ts"], utc=True) < t]
    usual = float(np.median(before["risk_amount"].dropna().to_numpy()[-20:]))
    closed = before[(pd.to_datetime(before["close_ts"], utc=True) <= t) & (before["pnl"] < 0)]
    loss = closed.loc[pd.to_datetime(closed["close_ts"], utc=True).idxmax()]
    assert facts["size_amount"] == pytest.approx(row["proposed_risk_amount"], abs=0.01)
    assert facts["usual_size"] == pytest.approx(usual, abs=0.01)
    assert facts["sample_size"] == 20
    assert facts["loss_symbol"] == loss["symbol"]
    assert facts["loss_amount"] == pytest.approx(-loss["pnl"], abs=0.01)
    hours = (t - pd.Timestamp(loss["close_ts"])).total_seconds() / 3600
    assert facts["hours_since_loss"] == pytest.approx(hours, abs=0.05)
    assert facts["difference_low"] <= facts["difference"] <= facts["difference_high"]
    words = render_issue(issue, evaluator.templates["REVENGE_TRADING"])
    assert loss["symbol"] in words.explanation and "your last 20 trades" in words.explanation
    assert words.mitigation == issue.mitigation.facts[0].value  # the severity's step


def test_revenge_nudges_match_the_injected_size_ups(demo_store: Store, intents: pd.DataFrame,
                                                    found: pd.DataFrame) -> None:
    fired = set(intents.loc[found.loc[found["code"] == "REVENGE_TRADING", "row"],
                            "intent_id"])
    truth = demo_behavior_truth(demo_store, USER)
    sized = truth[truth["kind"] == "size_up_after_loss"]
    keys = set(zip(sized["symbol"], pd.to_datetime(sized["ts"], utc=True), strict=True))
    injected = {i for i, s, t in zip(intents["intent_id"], intents["symbol"],
                                     intents["as_of"], strict=True) if (s, t) in keys}
    assert fired and injected
    precision = len(fired & injected) / len(fired)
    recall = len(fired & injected) / len(injected)
    assert precision >= 0.9 and recall >= 0.8, (precision, recall)


def test_a_dismissal_quiets_its_detector_from_then_on_and_the_cap_holds_nudges_back(
        demo_store_copy: Callable[[], Store], intents: pd.DataFrame,
        found: pd.DataFrame) -> None:
    store = demo_store_copy()
    rows = found.loc[found["code"] == "REVENGE_TRADING", "row"].to_numpy()
    first = intents.iloc[rows].sort_values("as_of")
    t = pd.Timestamp(first["as_of"].iloc[0])
    dismiss_nudge(store, USER, "revenge", t.to_pydatetime() - timedelta(hours=1))
    dismiss_nudge(store, USER, "revenge", (t + timedelta(days=3650)).to_pydatetime())
    after = issues_of(store, first)
    quiet = after.loc[after["code"] == "REVENGE_TRADING", "row"].to_numpy()
    in_window = (first["as_of"] < t + timedelta(hours=167)).to_numpy()
    assert not in_window[quiet].any()  # quiet within the week after the dismissal
    assert set(np.flatnonzero(~in_window)) <= set(quiet)  # a later dismissal changes nothing
    # a replay measuring rates can ignore the trader's limits
    raw = issues_of(store, first, apply_user_limits=False)
    assert (raw["code"] == "REVENGE_TRADING").sum() == len(first)
    set_nudge_settings(store, USER, max_per_day=0, dismiss_quiet_hours=0)
    ctx = build_batch_context(store, first, providers=registry())
    result = BehaviorNudgesEvaluator().evaluate_batch(ctx)
    assert result.issues.query("code != 'BEHAVIOR_NOT_CHECKED'").empty
    held = [{f.name: f.value for f in result.row(i).explain_facts}["nudges_held_back"]
            for i in range(ctx.n)]
    assert all(h >= 1 for h in held)  # held back, counted, never silently dropped


def _cut(pack: ContextPack, store: Store) -> ContextPack:
    """Return ``pack`` with its behavior piece holding the history read as of t."""
    state: BehaviorState = pack.behavior
    stored = load_history(store, USER, as_of=pack.as_of)
    return dataclasses.replace(pack, behavior=dataclasses.replace(state, stored=stored))


def test_keeps_the_contract_and_is_point_in_time(demo_store: Store, intents: pd.DataFrame,
                                                 found: pd.DataFrame) -> None:
    revenge = found.loc[found["code"] == "REVENGE_TRADING", "row"].tolist()[:2]
    others = found.loc[found["code"] != "REVENGE_TRADING", "row"].tolist()[:1]
    quiet = sorted(set(range(len(intents))) - set(found["row"]))[:1]
    chosen = [*revenge, *others, *quiet]
    builder = ContextPackBuilder(demo_store, providers=registry())
    cases, pit = [], []
    for k in chosen:
        intent = intent_of(intents.iloc[k])
        pack = builder.build(USER, intent.symbol, intent.timeframe, intent.as_of)
        cases.append((intent, pack))
        pit.append(PointInTimeCase(intent, pack, _cut(pack, demo_store)))
    report = check_evaluator(BehaviorNudgesEvaluator, cases=cases, point_in_time=pit)
    assert report.rows == len(cases) and report.point_in_time_rows == len(pit)
    assert report.issues["REVENGE_TRADING"] >= 1


def test_a_nudge_is_at_most_medium_in_the_verdict_but_keeps_its_step(
        demo_store: Store, intents: pd.DataFrame, found: pd.DataFrame) -> None:
    from buddy.behavior.nudges import LIBRARY, step_for

    assert "high" not in set(found["severity"])
    raw = issues_of(demo_store, intents, max_severity="high")
    high = raw[raw["severity"] == "high"]
    assert len(high)  # the detectors do say high here
    capped = found.merge(high[["row", "code"]], on=["row", "code"])
    assert len(capped) and set(capped["severity"]) == {"medium"}
    for code, action in zip(capped["code"], capped["action_json"], strict=True):
        assert code in LIBRARY and step_for(code, "high") in str(action)
