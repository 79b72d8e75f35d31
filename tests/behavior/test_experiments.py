"""Nudge/warning experiments: deterministic assignment by hashing (experiment, user, intent),
the arms' effect on what the report shows, validation, the stored definitions, and the arm
stored on a real logged evaluation."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from buddy.api import Buddy
from buddy.behavior import experiments as ex
from buddy.behavior.experiments import (
    ExperimentError,
    NudgeExperiment,
    active_experiments,
    apply_experiments,
    assign,
    assign_arms,
    create_experiment,
    end_experiment,
    load_experiment,
    unit_draws,
)
from buddy.context.pack import PIECES
from buddy.domain import TradeIntent
from buddy.guardrails import check_text
from buddy.store import Store
from buddy.users.store import set_user
from tests.behavior.experiment_data import NUDGE, SEVERE, WARNING, experiment, report_for


def _intent(intent_id: str = "i-1", user: str = "u1") -> TradeIntent:
    return TradeIntent.create(intent_id=intent_id, user_id=user, symbol="MSFT", side="long",
                              timeframe="1d", proposed_entry=21.5, proposed_stop=20.13,
                              proposed_target=22.0, proposed_size=500,
                              as_of="2008-10-10T20:00:00+00:00")


def _with_arm(name: str) -> NudgeExperiment:
    """The test experiment with every unit in arm ``name`` (the other arms weigh ~0)."""
    base = experiment()
    arms = tuple(dataclasses.replace(a, weight=1.0 if a.name == name else 1e-12)
                 for a in base.arms)
    return dataclasses.replace(base, arms=arms)


# ---------------------------------------------------------------- assignment
def test_the_draw_is_the_sha256_of_experiment_user_and_intent() -> None:
    # an independent computation of the documented rule: first 53 bits over 2**53
    key = "\x1f".join(("nudge-words", "u1", "i-42")).encode()
    word = int.from_bytes(hashlib.sha256(key).digest()[:8], "big")
    assert unit_draws("nudge-words", ["u1"], ["i-42"])[0] == (word >> 11) / 2.0**53
    # the separator keeps ('u1', 'x') and ('u', '1x') apart
    a, b = unit_draws("e", ["u1", "u"], ["x", "1x"])
    assert a != b


def test_assignment_is_deterministic_across_calls_and_orders() -> None:
    exp = experiment()
    users = [f"u{n % 7}" for n in range(300)]
    intents = [f"i-{n}" for n in range(300)]
    first = assign_arms(exp, users, intents)
    assert np.array_equal(first, assign_arms(exp, users, intents))
    order = np.random.default_rng(3).permutation(300)
    shuffled = assign_arms(exp, [users[i] for i in order], [intents[i] for i in order])
    assert np.array_equal(shuffled, first[order])
    # a batch of one says what the batch says
    assert [assign(exp, u, i).name for u, i in zip(users[:20], intents[:20], strict=True)] == [
        exp.arms[k].name for k in first[:20]]


def test_arms_follow_their_weights_and_experiments_draw_independently() -> None:
    exp = NudgeExperiment.create(experiment_id="weights", codes=[WARNING], arms=[
        {"name": "a", "action": "show", "weight": 2}, {"name": "b", "action": "hold_back"},
        {"name": "c", "action": "reword", "style": "brief"}])
    n = 8000
    users, intents = ["u"] * n, [f"i-{k}" for k in range(n)]
    counts = np.bincount(assign_arms(exp, users, intents), minlength=3)
    assert stats.chisquare(counts, [n / 2, n / 4, n / 4]).pvalue > 1e-3, counts
    other = dataclasses.replace(exp, experiment_id="weights-2")
    table = np.zeros((3, 3))
    np.add.at(table, (assign_arms(exp, users, intents), assign_arms(other, users, intents)), 1)
    assert stats.chi2_contingency(table).pvalue > 1e-3, table  # no carry-over between tests


# ---------------------------------------------------------------- what each arm shows
def test_control_shows_the_report_as_it_was_and_records_the_arm() -> None:
    report = report_for(_intent(), 0)  # warning, nudge, severe item, one more
    shown = apply_experiments(report, [_with_arm("control")])
    assert shown.rendered == report.rendered and shown.ranked_issues == report.ranked_issues
    (arm,) = shown.experiment_arms
    assert (arm.arm, arm.action, arm.codes, arm.exempt) == (
        "control", "show", (WARNING, NUDGE), (SEVERE,))
    row = json.loads(shown.evaluation_row()["experiment_arms_json"])
    assert row == [{"experiment_id": "nudge-words", "arm": "control", "action": "show",
                    "codes": [WARNING, NUDGE], "exempt": [SEVERE], "unchanged": []}]
    assert shown.to_dict()["experiment_arms"] == row  # the JSON report says it too
    assert report.evaluation_row()["experiment_arms_json"] is None  # no experiment ran


def test_hold_back_hides_the_items_but_logs_them_and_keeps_the_verdict() -> None:
    report = report_for(_intent(), 0)
    held = apply_experiments(report, [_with_arm("quiet")])
    assert [i.code for i in held.ranked_issues] == [SEVERE, "NO_TIME_STOP"]
    # as many shown as before where enough remain: the next ranked moves up
    assert [r.code for r in held.rendered] == [SEVERE, "NO_TIME_STOP"]
    assert held.rendered_more == ()
    assert held.all_issues == report.all_issues  # logged: the analysis knows what fired
    assert [r["issue_code"] for r in held.item_rows()] == [
        r["issue_code"] for r in report.item_rows()]
    assert (held.verdict, held.overall_score) == (report.verdict, report.overall_score)
    assert all(WARNING not in line for line in held.text().splitlines())
    assert SEVERE in held.text()  # too severe to hold back: shown as it was
    assert held.experiment_arms[0].exempt == (SEVERE,)


def test_hold_back_moves_the_next_ranked_item_into_the_top() -> None:
    report = report_for(_intent(), 3)  # warning, nudge, NO_TIME_STOP (top 3 of 3)
    report = dataclasses.replace(report, top_issues=report.ranked_issues[:2],
                                 rendered=report.rendered[:2],
                                 rendered_more=report.rendered[2:])
    held = apply_experiments(report, [_with_arm("quiet")])
    assert [r.code for r in held.rendered] == ["NO_TIME_STOP"]
    assert held.top_issues == held.ranked_issues[:1]


def test_reword_asks_the_mitigation_as_a_question_within_the_guardrails() -> None:
    report = report_for(_intent(), 1)
    asked = apply_experiments(report, [_with_arm("ask")])
    before = {r.code: r for r in (*report.rendered, *report.rendered_more)}
    for words in (*asked.rendered, *asked.rendered_more):
        if words.code == WARNING:
            assert words.mitigation == "Would it help to place the target at 2.00R or beyond?"
            assert words.explanation == before[WARNING].explanation
            issue = next(i for i in asked.ranked_issues if i.code == WARNING)
            assert check_text(words.mitigation, issue.evidence).ok
        else:
            assert words == before[words.code]
    assert (asked.experiment_arms[0].codes, asked.experiment_arms[0].unchanged) == (
        (WARNING,), ())


@pytest.mark.parametrize("mitigation", [
    "A target at 24.24 or beyond meets 2.00R; otherwise reconsider the trade.",
    "If this size was planned before the loss, carry on.",
    "A quick check: is this entry in your plan for today?",
    "Check the entry price for a typo; the last close was 21.50.",
    "Run the regime job. Then evaluate again."])
def test_the_question_style_applies_only_to_one_instruction(mitigation: str) -> None:
    report = report_for(_intent(), 1)
    words = dataclasses.replace(report.rendered[0], mitigation=mitigation)
    report = dataclasses.replace(report, rendered=(words, *report.rendered[1:]))
    asked = apply_experiments(report, [_with_arm("ask")])
    assert asked.rendered == report.rendered  # shown as it was, and said so on the arm
    arm = asked.experiment_arms[0]
    # still the unit's item (the same items in every arm), listed as unchanged
    assert (arm.codes, arm.exempt, arm.unchanged) == ((WARNING,), (), (WARNING,))


def test_a_rewording_that_fails_the_guardrails_keeps_the_original_words(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ex.REWORD_STYLES, "question", lambda w: dataclasses.replace(
        w, mitigation="Do it now: the stock will rally 12% after this."))
    report = report_for(_intent(), 1)
    asked = apply_experiments(report, [_with_arm("ask")])
    assert asked.rendered == report.rendered
    arm = asked.experiment_arms[0]
    assert (arm.codes, arm.exempt, arm.unchanged) == ((WARNING,), (), (WARNING,))


def test_brief_keeps_the_first_sentence() -> None:
    exp = NudgeExperiment.create(experiment_id="brief", codes=[WARNING], arms=[
        {"name": "c", "action": "show", "weight": 1e-12},
        {"name": "b", "action": "reword", "style": "brief"}])
    words = apply_experiments(report_for(_intent(), 1), [exp]).rendered[0]
    assert words.explanation == "The measure stands at 1.10R."


def test_reports_without_a_targeted_item_or_outside_the_audience_get_no_arm() -> None:
    exp = NudgeExperiment.create(experiment_id="other", codes=["STOP_TOO_TIGHT"],
                                 arms=[{"name": "c", "action": "show"},
                                       {"name": "h", "action": "hold_back"}])
    report = report_for(_intent(), 1)
    assert apply_experiments(report, [exp]) is report
    only_u2 = dataclasses.replace(experiment(), users=("u2",))
    assert apply_experiments(report, [only_u2]) is report
    ended = dataclasses.replace(experiment(), status="ended")
    assert apply_experiments(report, [ended]) is report


# ---------------------------------------------------------------- validation and the store
def test_bad_definitions_are_refused_naming_field_rule_and_value() -> None:
    with pytest.raises(ExperimentError) as refused:
        NudgeExperiment.create(experiment_id="Bad Id", codes=["ok_code"], arms=[
            {"name": "c", "action": "show"}, {"name": "c", "action": "shout", "weight": 0},
            {"name": "r", "action": "reword"}, {"name": "s", "action": "show", "style": "brief"}],
            max_severity="huge")
    fields = refused.value.fields
    for name in ("experiment_id", "codes", "arms[1].action", "arms[1].weight",
                 "arms[2].style", "arms[3].style", "max_severity"):
        assert name in fields, fields
    assert "'Bad Id'" in str(refused.value) and "'shout'" in str(refused.value)
    with pytest.raises(ExperimentError) as one_arm:
        NudgeExperiment.create(experiment_id="x", codes=[WARNING],
                               arms=[{"name": "c", "action": "show"}])
    assert one_arm.value.fields == ("arms",)


def test_experiments_are_stored_listed_ended_and_never_overlap(empty_store: Store) -> None:
    made = create_experiment(empty_store, experiment())
    assert made.created_at is not None
    assert load_experiment(empty_store, "nudge-words") == made
    assert active_experiments(empty_store, "anyone") == [made]
    clash = NudgeExperiment.create(experiment_id="second", codes=[NUDGE, "STOP_TOO_TIGHT"],
                                   arms=[{"name": "c", "action": "show"},
                                         {"name": "h", "action": "hold_back"}])
    with pytest.raises(ExperimentError) as refused:
        create_experiment(empty_store, clash)
    assert refused.value.fields == ("codes",) and NUDGE in str(refused.value)
    with pytest.raises(ExperimentError):
        create_experiment(empty_store, experiment())  # the id is taken
    end_experiment(empty_store, "nudge-words")
    assert active_experiments(empty_store) == []
    assert load_experiment(empty_store, "nudge-words").status == "ended"
    with pytest.raises(ExperimentError) as again:
        end_experiment(empty_store, "nudge-words")
    assert again.value.fields == ("experiment_id",)
    create_experiment(empty_store, clash)  # free once the first ended


# ---------------------------------------------------------------- through Buddy, logged
def _quiet(_request: object) -> tuple[None, str]:
    return None, "not used in this test"


def test_the_arm_is_stored_on_the_logged_evaluation_and_kept_on_reevaluation(
        sample_db: Path) -> None:
    store = Store(sample_db)
    set_user(store, "u1", equity=100_000.0, rules={"max_risk_per_trade_pct": 1.0})
    # the risk/reward check needs market data only: the other pieces stay out (fast)
    buddy = Buddy(store)
    for piece in PIECES:
        if piece in buddy.builder.providers and piece != "account":
            buddy.builder.register(piece, _quiet)
    exp = create_experiment(store, NudgeExperiment.create(
        experiment_id="rr-words", codes=["REWARD_RISK_BELOW_MIN"],
        arms=[{"name": "control", "action": "show"}, {"name": "quiet", "action": "hold_back"},
              {"name": "ask", "action": "reword", "style": "question"}]))
    report = buddy.evaluate(user="u1", symbol="MSFT", side="long", timeframe="1d", entry=21.5,
                            stop=20.13, target=22.0, size=500, as_of="2008-10-10")
    (arm,) = report.experiment_arms
    assert arm.arm == assign(exp, "u1", report.intent.intent_id).name
    assert arm.codes == ("REWARD_RISK_BELOW_MIN",)
    logged = store.query("SELECT experiment_arms_json FROM trade_evaluations "
                         "WHERE eval_id = ?", [report.eval_id])
    assert json.loads(logged.iloc[0, 0]) == [arm.as_dict()]
    items = store.evaluation_items(report.eval_id, "u1")
    assert "REWARD_RISK_BELOW_MIN" in set(items["issue_code"])  # logged in every arm
    shown = {i.code for i in report.ranked_issues}
    assert ("REWARD_RISK_BELOW_MIN" in shown) == (arm.action != "hold_back")
    again = buddy.evaluate_intent(report.intent)
    assert again.experiment_arms == report.experiment_arms and again.eval_id != report.eval_id
    # over many decision points every arm turns up (each intent draws anew)
    seen = {assign(exp, "u1", f"i-{k}").name for k in range(60)}
    assert seen == {"control", "quiet", "ask"}
    # an ended experiment changes nothing any more
    end_experiment(store, "rr-words")
    assert buddy.evaluate_intent(report.intent, log=False).experiment_arms == ()
