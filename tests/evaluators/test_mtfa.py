"""MTFA evaluator: each code fires on its case with the right numbers and severities, the
templates render from the evidence, and results are point-in-time on real data."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from buddy.context.pack import ContextPack
from buddy.domain import EvaluationResult, Issue, Severity, Side, TradeIntent
from buddy.errors import ConfigError
from buddy.evaluators.mtfa import MTFAConfig, MTFAEvaluator
from buddy.explain import render_issue
from buddy.store import Store
from buddy.timeframes import Timeframe
from tests import factories
from tests.evaluator_cases import contract_cases
from tests.mtfa.test_provider import MTFA_PIT_POINTS, pit_packs


def run(directions: dict[str, str], strengths: dict[str, float] | None = None, *,
        side: Side = Side.LONG, **config: Any) -> EvaluationResult:
    ctx = factories.pack(mtfa=factories.mtfa(directions, strengths))
    prices = ({} if side is Side.LONG else
              dict(proposed_stop=105.0, proposed_target=90.0))
    return MTFAEvaluator(config).evaluate(factories.intent(side=side, **prices), ctx)


def only(result: EvaluationResult, code: str) -> Issue:
    matches = [i for i in result.issues if i.code == code]
    assert len(matches) == 1, [i.code for i in result.issues]
    return matches[0]


def value(facts, name: str) -> Any:
    return next(f.value for f in facts if f.name == name)


def test_an_aligned_trade_raises_nothing() -> None:
    result = run({"1w": "up", "1d": "up"})
    assert result.issues == () and result.score == 100.0
    assert value(result.explain_facts, "side_alignment") == 1.0
    assert value(result.explain_facts, "trends") == "1w up/1d up"
    assert run({"1w": "down", "1d": "down"}, side=Side.SHORT).issues == ()


@pytest.mark.parametrize(("strength", "severity"), [(35.0, Severity.HIGH),
                                                    (30.0, Severity.HIGH),
                                                    (29.9, Severity.MEDIUM)])
def test_long_while_the_highest_timeframe_is_down(strength: float, severity: Severity
                                                  ) -> None:
    result = run({"1w": "down", "1d": "up"}, {"1w": strength, "1d": 20.0})
    issue = only(result, "AGAINST_HIGHER_TIMEFRAME")
    assert issue.severity is severity
    assert value(issue.evidence, "higher_timeframe") == "1w"
    assert value(issue.evidence, "higher_direction") == "down"
    assert value(issue.evidence, "higher_strength_adx") == strength
    assert value(issue.evidence, "higher_close_vs_ema50_atr") == -1.0


def test_short_while_the_highest_timeframe_is_up_and_ranges_do_not_count() -> None:
    assert only(run({"1d": "up", "4h": "down", "1h": "down"}, side=Side.SHORT),
                "AGAINST_HIGHER_TIMEFRAME").severity is Severity.MEDIUM
    assert "AGAINST_HIGHER_TIMEFRAME" not in {
        i.code for i in run({"1w": "range", "1d": "up"}).issues}


@pytest.mark.parametrize(("strength", "flagged"), [(19.9, False), (20.0, True)])
def test_a_weak_higher_trend_against_the_trade_is_not_flagged(strength: float, flagged: bool
                                                              ) -> None:
    result = run({"1w": "down", "1d": "up"}, {"1w": strength, "1d": 20.0})
    assert ("AGAINST_HIGHER_TIMEFRAME" in {i.code for i in result.issues}) is flagged
    if flagged:
        issue = only(result, "AGAINST_HIGHER_TIMEFRAME")
        assert issue.fact("higher_strength_adx").threshold == 20.0
    looser = run({"1w": "down", "1d": "up"}, {"1w": 16.0, "1d": 20.0}, min_higher_adx=15.0)
    assert "AGAINST_HIGHER_TIMEFRAME" in {i.code for i in looser.issues}


@pytest.mark.parametrize(("directions", "strengths", "side_alignment", "severity"), [
    ({"1w": "up", "1d": "range"}, {"1w": 10.0, "1d": 30.0}, -0.25, None),  # at the minimum
    ({"1w": "up", "1d": "range"}, {"1w": 11.0, "1d": 30.0}, -0.27, Severity.LOW),
    ({"1w": "up", "1d": "range"}, {"1w": 5.0, "1d": 95.0}, -0.05, None),  # neutral
    ({"1w": "range", "1d": "up"}, {"1w": 25.0, "1d": 25.0}, -0.5, Severity.LOW),
    ({"1w": "range", "1d": "up"}, {"1w": 30.0, "1d": 70.0}, -0.7, Severity.MEDIUM),
    # the weekly trend against the short is the warning: not said twice
    ({"1w": "up", "1d": "range"}, {"1w": 70.0, "1d": 30.0}, -0.7, None),
])
def test_low_alignment_thresholds(directions: dict[str, str], strengths: dict[str, float],
                                  side_alignment: float, severity: Severity | None) -> None:
    result = run(directions, strengths, side=Side.SHORT)
    assert value(result.explain_facts, "side_alignment") == side_alignment
    codes = {i.code for i in result.issues}
    if severity is None:
        assert "LOW_ALIGNMENT" not in codes
    else:
        issue = only(result, "LOW_ALIGNMENT")
        assert issue.severity is severity
        assert value(issue.evidence, "side_alignment") == side_alignment
        assert issue.fact("side_alignment").threshold == -0.25
        assert value(issue.evidence, "stack") == "1w/1d"


def test_a_stack_leaning_against_the_trade_is_medium() -> None:
    result = run({"1d": "range", "4h": "up", "1h": "up"}, {"1d": 10.0, "4h": 40.0, "1h": 40.0},
                 side=Side.SHORT)
    issue = only(result, "LOW_ALIGNMENT")
    assert (issue.severity, value(issue.evidence, "side_alignment")) == (Severity.MEDIUM, -0.89)
    assert "AGAINST_HIGHER_TIMEFRAME" not in {i.code for i in result.issues}
    # with the highest timeframe against the trade, that is the one warning
    both = run({"1w": "up", "1d": "up"}, side=Side.SHORT)
    assert {i.code for i in both.issues} == {"AGAINST_HIGHER_TIMEFRAME"}
    # a stricter config moves the thresholds
    strict = run({"1w": "up", "1d": "range"}, {"1w": 5.0, "1d": 95.0}, min_alignment=0.25,
                 against_alignment=0.0)
    assert only(strict, "LOW_ALIGNMENT").severity is Severity.LOW


def test_conflicts_are_listed_in_words() -> None:
    result = run({"1d": "up", "4h": "down", "1h": "up"}, {"1d": 30.0, "4h": 20.0, "1h": 10.0})
    issue = only(result, "MTFA_CONFLICT")
    assert issue.severity is Severity.LOW
    assert value(issue.evidence, "n_conflicts") == 2
    assert value(issue.evidence, "conflicts") == ("1d trend up vs 4h trend down; "
                                                 "4h trend down vs 1h trend up")
    rendered = render_issue(issue, MTFAEvaluator.templates["MTFA_CONFLICT"])
    assert rendered.renderer == "template"
    assert "1d trend up vs 4h trend down" in rendered.explanation


def test_config_is_validated() -> None:
    with pytest.raises(ConfigError, match=r"mtfa\.against_alignment"):
        MTFAConfig(min_alignment=0.0, against_alignment=0.1)
    with pytest.raises(ConfigError, match="did you mean 'min_alignment'"):
        MTFAConfig.from_mapping({"min_alignmnet": 0.1})
    with pytest.raises(ConfigError, match="strong_trend_adx"):
        MTFAConfig(strong_trend_adx=120.0)
    with pytest.raises(ConfigError, match=r"mtfa\.strong_trend_adx.*min_higher_adx"):
        MTFAConfig(min_higher_adx=40.0)


def test_every_issue_renders_from_its_template() -> None:
    evaluator = MTFAEvaluator()
    for intent, ctx in contract_cases():
        for issue in evaluator.evaluate(intent, ctx).issues:
            assert render_issue(issue, evaluator.templates[issue.code]).renderer == "template"


# ---------------------------------------------------------------------- point in time
def pit_intents(ctx: ContextPack, symbol: str, tf: str, t: datetime) -> list[TradeIntent]:
    """Return a long and a short priced off the full pack, with and without a horizon."""
    assert ctx.market is not None
    close = ctx.market.last_close
    atr = ctx.market.latest_features.get("atr_14") or close * 0.01
    base = dict(symbol=symbol, timeframe=Timeframe(tf), as_of=t, proposed_entry=close,
                proposed_size=100.0)
    return [
        factories.intent(**base, proposed_stop=close - 1.5 * atr,
                         proposed_target=close + 3 * atr, holding_horizon=10),
        factories.intent(**base, side=Side.SHORT, proposed_stop=close + 1.5 * atr,
                         proposed_target=close - 3 * atr, holding_horizon=None),
    ]


@pytest.mark.parametrize(("symbol", "tf", "as_of"), MTFA_PIT_POINTS)
def test_point_in_time(sample_store: Store, truncated_store, symbol: str, tf: str,
                       as_of: str) -> None:
    t, full, cut = pit_packs(sample_store, truncated_store, symbol, tf, as_of)
    if full.mtfa is None:
        assert cut.mtfa is None and full.missing["mtfa"] == cut.missing["mtfa"]
        return
    evaluator = MTFAEvaluator()
    results = []
    for intent in pit_intents(full, symbol, tf, t):
        result = evaluator.evaluate(intent, full)
        assert result == evaluator.evaluate(intent, cut)
        results.append(result)
    # not vacuous: a long and a short cannot both be aligned with the same stack
    assert any(r.issues for r in results) or all(
        t_.direction == "range" for t_ in full.mtfa.stack)
