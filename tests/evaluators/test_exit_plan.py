"""ExitPlan: each check fires on its case with the right numbers, templates fill the gaps they
cover, and results are point-in-time."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from buddy.context.pack import ContextPack
from buddy.domain import EvaluationResult, Fact, Issue, Severity, Side, TradeIntent
from buddy.errors import ConfigError
from buddy.evaluators.exit_plan import ExitPlanConfig, ExitPlanEvaluator
from buddy.evidence import is_on_tick
from buddy.explain import render_issue
from buddy.guardrails import check_text
from buddy.store import Store
from buddy.timeframes import Timeframe
from buddy.users.model import ExitTemplate, PartialExit
from tests import factories

from .test_point_in_time_cases import PIT_POINTS
from .test_risk_reward import EXTRA_PIT_POINTS, clean_intent, flat_pack, pit_intents, pit_packs

ATR = 2.0  # flat_pack's ATR; clean_intent: long 100 at 100, stop 97 (1R = 3), target 106


def run(intent: TradeIntent, ctx: ContextPack | None = None, **config: Any
        ) -> EvaluationResult:
    return ExitPlanEvaluator(config).evaluate(intent, ctx or flat_pack())


def only(result: EvaluationResult, code: str) -> Issue:
    matches = [i for i in result.issues if i.code == code]
    assert len(matches) == 1, [i.code for i in result.issues]
    return matches[0]


def codes(result: EvaluationResult) -> set[str]:
    return {i.code for i in result.issues}


def fact(issue: Issue, name: str) -> Fact:
    found = issue.fact(name)
    assert found is not None, (issue.code, name)
    return found


def value(facts: Iterable[Fact], name: str) -> Any:
    return next(f.value for f in facts if f.name == name)


def with_templates(*templates: ExitTemplate, default: str | None = "swing_2r",
                   **account: Any) -> ContextPack:
    return flat_pack(account=factories.account(exit_templates=templates,
                                               rules={"default_exit_template": default},
                                               **account))


def test_a_complete_plan_that_fits_its_template_raises_nothing() -> None:
    result = run(clean_intent())
    assert result.issues == () and result.score == 100.0
    assert value(result.explain_facts, "exit_legs_present") == 3
    assert value(result.explain_facts, "exit_template") == "swing_2r"
    assert value(result.explain_facts, "required_move_atr") == pytest.approx(3.0)
    assert value(result.explain_facts, "reach_atr") == pytest.approx(1.5 * math.sqrt(10),
                                                                     abs=1e-4)


# ---------------------------------------------------------------------------- missing legs
@pytest.mark.parametrize(("required", "severity"), [(True, Severity.HIGH),
                                                    (False, Severity.MEDIUM)])
def test_no_stop(required: bool, severity: Severity) -> None:
    ctx = flat_pack(account=factories.account(rules={"stop_required": required}))
    issue = only(run(clean_intent(proposed_stop=None), ctx), "EXIT_NO_STOP")
    assert issue.severity is severity
    assert fact(issue, "exit_legs_present").value == 2
    assert fact(issue, "atr_14").value == ATR


def test_no_target_suggests_the_minimum_reward_risk_target() -> None:
    ctx = with_templates(default=None)
    issue = only(run(clean_intent(proposed_target=None), ctx), "EXIT_NO_TARGET")
    assert fact(issue, "min_reward_risk").value == 1.5
    assert value(issue.mitigation.facts, "min_rr_target") == 104.5  # 100 + 1.5 x 3
    short = clean_intent(side=Side.SHORT, proposed_stop=103.0, proposed_target=None)
    issue = only(run(short, ctx), "EXIT_NO_TARGET")
    assert value(issue.mitigation.facts, "min_rr_target") == 95.5


def test_a_template_target_and_time_stop_fill_the_gaps() -> None:
    result = run(clean_intent(proposed_target=None, holding_horizon=None))
    assert not codes(result) & {"EXIT_NO_TARGET", "EXIT_NO_TIME_STOP"}
    assert value(result.explain_facts, "target_r") == 2.0
    assert value(result.explain_facts, "holding_horizon") == 10
    assert value(result.explain_facts, "horizon_source") == "template"


def test_no_time_stop() -> None:
    ctx = with_templates(ExitTemplate(name="swing_2r", target_r=2.0))
    issue = only(run(clean_intent(holding_horizon=None), ctx), "EXIT_NO_TIME_STOP")
    assert issue.severity is Severity.LOW
    assert fact(issue, "max_horizon_bars").value == 250
    assert fact(issue, "exit_legs_present").value == 2


# --------------------------------------------------------------------------------- horizon
@pytest.mark.parametrize(("tf", "horizon", "fires"), [
    (Timeframe.H1, 120, False), (Timeframe.H1, 121, True), (Timeframe.D1, 250, False),
    (Timeframe.D1, 251, True), (Timeframe.W1, 105, True), (Timeframe.W1, 104, False)])
def test_horizon_must_fit_the_timeframe(tf: Timeframe, horizon: int, fires: bool) -> None:
    ctx = with_templates(default=None)
    result = run(clean_intent(timeframe=tf, holding_horizon=horizon), ctx, reach_k=10.0)
    assert ("HORIZON_INCONSISTENT" in codes(result)) is fires
    if fires:
        issue = only(result, "HORIZON_INCONSISTENT")
        assert fact(issue, "holding_horizon").threshold == horizon - 1
        assert value(issue.mitigation.facts, "suggested_horizon") == horizon - 1


def test_horizon_below_the_configured_minimum() -> None:
    issue = only(run(clean_intent(holding_horizon=3), with_templates(default=None),
                     min_horizon_bars=5), "HORIZON_INCONSISTENT")
    assert fact(issue, "holding_horizon").threshold == 5
    assert value(issue.mitigation.facts, "suggested_horizon") == 5


# ----------------------------------------------------------------------------------- reach
@pytest.mark.parametrize("side", [Side.LONG, Side.SHORT])
def test_target_beyond_reach(side: Side) -> None:
    intent = clean_intent(side=side, proposed_stop=100.0 - side.sign * 3.0,
                          proposed_target=100.0 + side.sign * 15.0)  # 7.5 ATR in 10 bars
    issue = only(run(intent, with_templates(default=None)), "TARGET_BEYOND_REACH")
    reach = 1.5 * math.sqrt(10)
    assert fact(issue, "required_move_atr").value == pytest.approx(7.5)
    assert fact(issue, "required_move_atr").threshold == pytest.approx(reach, abs=1e-4)
    assert issue.severity is Severity.MEDIUM  # beyond the reach, but not twice it
    suggested = value(issue.mitigation.facts, "suggested_target")
    assert is_on_tick(suggested, 0.01) and (suggested - 100.0) * side.sign > 0
    assert abs(suggested - 100.0) <= reach * ATR  # rounded towards the entry: within reach
    assert suggested == (109.48 if side is Side.LONG else 90.52)
    assert value(issue.mitigation.facts, "bars_for_reach") == math.ceil((7.5 / 1.5) ** 2)


def test_reach_uses_the_template_horizon_when_the_intent_has_none() -> None:
    issue = only(run(clean_intent(proposed_target=112.0, holding_horizon=None)),
                 "TARGET_BEYOND_REACH")
    assert fact(issue, "holding_horizon").value == 10
    assert fact(issue, "horizon_source").value == "template"
    assert issue.severity is Severity.MEDIUM


def test_reach_is_skipped_without_atr() -> None:
    ctx = factories.pack(market=factories.market(with_features=False))
    result = run(clean_intent(proposed_target=200.0, proposed_stop=99.0), ctx)
    assert "TARGET_BEYOND_REACH" not in codes(result)
    assert value(result.explain_facts, "required_move_atr") is None


# -------------------------------------------------------------------------------- partials
def test_partials_that_split_into_half_shares() -> None:
    """Half of 3 shares is 1 or 2: a third of the position off the plan, flagged; half of 33
    is 16 or 17, 1.5% off, well within the 10% tolerance (unless it is set tighter)."""
    issue = only(run(clean_intent(proposed_size=3.0)), "PARTIALS_INCONSISTENT")
    assert issue.severity is Severity.LOW
    assert fact(issue, "n_inconsistent").value == 1
    assert fact(issue, "smallest_partial").value == pytest.approx(1.5)
    assert fact(issue, "partial_rounding_tolerance_pct").value == 10.0
    assert value(issue.mitigation.facts, "size_step") == 2.0
    assert "PARTIALS_INCONSISTENT" not in codes(run(clean_intent(proposed_size=33.0)))
    tight = run(clean_intent(proposed_size=33.0), partial_rounding_tolerance_pct=1.0)
    assert fact(only(tight, "PARTIALS_INCONSISTENT"), "smallest_partial").value == 16.5


def test_partials_below_one_lot() -> None:
    ctx = flat_pack(instrument=factories.instrument(lot_size=100.0))
    issue = only(run(clean_intent(proposed_size=100.0), ctx), "PARTIALS_INCONSISTENT")
    assert fact(issue, "lot_size").value == 100.0
    assert value(issue.mitigation.facts, "size_step") == 200.0
    assert "PARTIALS_INCONSISTENT" not in codes(run(clean_intent(proposed_size=400.0), ctx))


def test_partials_that_sum_past_the_whole_position() -> None:
    template = ExitTemplate(name="swing_2r", target_r=2.0, time_stop_bars=10,
                            partials=(PartialExit(at_r=1.0, fraction=0.6),
                                      PartialExit(at_r=1.5, fraction=0.6)))
    issue = only(run(clean_intent(), with_templates(template)), "PARTIALS_INCONSISTENT")
    assert issue.severity is Severity.MEDIUM
    assert fact(issue, "fraction_sum_pct").value == pytest.approx(120.0)
    assert fact(issue, "fraction_sum_pct").threshold == 100.0
    assert fact(issue, "n_inconsistent").value == 0  # 60 shares each: whole lots


# -------------------------------------------------------------------------------- templates
@pytest.mark.parametrize(("target", "horizon", "fires"), [
    (106.0, 10, False), (106.6, 12, False), (109.0, 10, True), (106.0, 20, True)])
def test_fit_to_the_exit_template(target: float, horizon: int, fires: bool) -> None:
    result = run(clean_intent(proposed_target=target, holding_horizon=horizon,
                              exit_template="swing_2r"))
    assert ("EXIT_TEMPLATE_MISMATCH" in codes(result)) is fires
    # naming no template: held to the rules' default only when asked to
    unnamed = clean_intent(proposed_target=target, holding_horizon=horizon)
    assert "EXIT_TEMPLATE_MISMATCH" not in codes(run(unnamed))
    assert ("EXIT_TEMPLATE_MISMATCH" in codes(run(unnamed, compare_default_template=True))
            ) is fires
    if fires:
        issue = only(result, "EXIT_TEMPLATE_MISMATCH")
        assert fact(issue, "target_r").value == pytest.approx((target - 100.0) / 3.0)
        assert fact(issue, "template_target_r").value == 2.0
        assert fact(issue, "holding_horizon").value == horizon
        assert fact(issue, "template_time_stop_bars").value == 10
        assert value(issue.mitigation.facts, "template_target") == 106.0


def test_the_named_template_wins_over_the_default() -> None:
    scalp = ExitTemplate(name="scalp", target_r=1.0, time_stop_bars=3)
    ctx = with_templates(factories.SWING_2R, scalp)
    assert "EXIT_TEMPLATE_MISMATCH" in codes(run(clean_intent(exit_template="scalp"), ctx))
    fitting = clean_intent(exit_template="scalp", proposed_target=103.0, holding_horizon=3)
    assert run(fitting, ctx).issues == ()


def test_a_plan_of_its_own_is_not_a_mismatch_with_the_default() -> None:
    """A 20-bar plan naming no template (a generator's, say) against a 10-bar default
    template: the default only fills legs the plan leaves out, so nothing fires; a plan that
    leaves its horizon out takes the default's 10 bars."""
    result = run(clean_intent(holding_horizon=20))
    assert result.issues == ()
    result = run(clean_intent(holding_horizon=None))
    assert value(result.explain_facts, "horizon_source") == "template"
    assert value(result.explain_facts, "holding_horizon") == 10


@pytest.mark.parametrize("templates", [(), (factories.SWING_2R,)])
def test_no_template_to_go_by_is_not_checked_not_a_mismatch(
        templates: tuple[ExitTemplate, ...]) -> None:
    """No template named and no default: the fit is not checked (kind not_checked), and
    neither a mismatch nor an unknown template is raised."""
    result = run(clean_intent(holding_horizon=20), with_templates(*templates, default=None))
    issue = only(result, "EXIT_TEMPLATE_NOT_SET")
    assert ExitPlanEvaluator.codes[issue.code].kind == "not_checked"
    assert fact(issue, "n_templates").value == len(templates)
    assert not codes(result) & {"EXIT_TEMPLATE_MISMATCH", "EXIT_TEMPLATE_UNKNOWN"}
    named = run(clean_intent(exit_template="swing_2r"), with_templates(factories.SWING_2R,
                                                                       default=None))
    assert "EXIT_TEMPLATE_NOT_SET" not in codes(named)


def test_unknown_templates() -> None:
    issue = only(run(clean_intent(exit_template="nope")), "EXIT_TEMPLATE_UNKNOWN")
    assert issue.severity is Severity.MEDIUM
    assert fact(issue, "n_templates").value == 1
    assert value(issue.mitigation.facts, "available_templates") == "swing_2r"
    issue = only(run(clean_intent(), with_templates(default="gone")), "EXIT_TEMPLATE_UNKNOWN")
    assert issue.severity is Severity.LOW
    assert fact(issue, "template_source").value == "the rules' default"
    assert "EXIT_TEMPLATE_UNKNOWN" not in codes(run(clean_intent(), with_templates(default=None)))


def test_an_empty_template_name_falls_back_to_the_rules_default() -> None:
    """"" names no template: the rules' default is the one in use, and reported as such."""
    issue = only(run(clean_intent(exit_template=""), with_templates(default="gone")),
                 "EXIT_TEMPLATE_UNKNOWN")
    assert issue.severity is Severity.LOW
    assert fact(issue, "template_name").value == "gone"
    assert fact(issue, "template_source").value == "the rules' default"


def test_a_zero_time_stop_is_the_templates_horizon() -> None:
    template = ExitTemplate(name="swing_2r", target_r=2.0, time_stop_bars=0)
    result = run(clean_intent(holding_horizon=None), with_templates(template))
    assert value(result.explain_facts, "horizon_source") == "template"
    assert value(result.explain_facts, "reach_atr") == 0.0
    issue = only(result, "TARGET_BEYOND_REACH")  # no move is within a zero horizon's reach
    assert fact(issue, "holding_horizon").value == 0
    assert issue.severity is Severity.HIGH


# ------------------------------------------------------------------ rendering and config
def test_every_issue_renders_through_its_template_and_passes_the_guardrails() -> None:
    ctx = flat_pack(account=factories.account(rules={"default_exit_template": None},
                                              exit_templates=()))
    cases = [
        (clean_intent(proposed_stop=None, holding_horizon=None), ctx),
        (clean_intent(proposed_target=None, holding_horizon=400), ctx),
        (clean_intent(proposed_target=130.0, proposed_size=3.0, exit_template="swing_2r"),
         flat_pack()),
        (clean_intent(exit_template="nope"), flat_pack()),
    ]
    seen = set()
    for intent, pack in cases:
        for issue in run(intent, pack).issues:
            seen.add(issue.code)
            template = ExitPlanEvaluator.templates[issue.code]
            rendered = render_issue(issue, template)
            assert rendered.renderer == "template", (issue.code, rendered)
            facts = (*issue.evidence, *issue.mitigation.facts)
            for text in (rendered.explanation, rendered.mitigation, *rendered.evidence):
                verdict = check_text(text, facts, allowed=(template.explanation,
                                                           template.mitigation))
                assert verdict.ok, (issue.code, text, verdict.reasons)
    assert seen == set(ExitPlanEvaluator.templates)


def test_config_errors_name_the_field_the_range_and_the_value() -> None:
    with pytest.raises(ConfigError) as err:
        ExitPlanConfig(reach_k=0.0)
    text = str(err.value)
    assert "exit_plan.reach_k" in text and "between 0.1 and 10" in text
    with pytest.raises(ConfigError, match="max_horizon_bars_1w: must be >= min_horizon_bars"):
        ExitPlanConfig(min_horizon_bars=200, max_horizon_bars_1w=104)
    with pytest.raises(ConfigError, match="did you mean 'max_horizon_bars_1h'"):
        ExitPlanEvaluator({"max_horizon_bar_1h": 50})
    assert ExitPlanConfig(max_horizon_bars_1h=50).max_horizon_bars(Timeframe.H1) == 50


# ------------------------------------------------------------------------- point in time
@pytest.mark.parametrize(("symbol", "tf", "as_of"), PIT_POINTS + EXTRA_PIT_POINTS)
def test_point_in_time(sample_store: Store, truncated_store: Callable[..., Store],
                       symbol: str, tf: str, as_of: str) -> None:
    t, full, cut = pit_packs(sample_store, truncated_store, symbol, tf, as_of)
    evaluator = ExitPlanEvaluator()
    assert full.market is not None
    long_plan, reckless, bare = pit_intents(full, symbol, tf, t)
    far = dataclasses.replace(long_plan, proposed_target=round(
        long_plan.proposed_entry + 20 * full.market.latest_features["atr_14"], 6),
        holding_horizon=4)
    for intent in (long_plan, reckless, bare, far):
        assert evaluator.evaluate(intent, full) == evaluator.evaluate(intent, cut)
    assert "TARGET_BEYOND_REACH" in codes(evaluator.evaluate(far, full))
