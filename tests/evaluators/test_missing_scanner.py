"""MissingScanner: each checklist item fires on its case with the right numbers, optional
pieces are reported as unchecked when absent, and results are point-in-time on real data."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import pandas as pd
import pytest

from buddy.context.pack import ContextPack
from buddy.context.pieces import KeyLevelsSnapshot, PriceLevel, RegimeSnapshot
from buddy.domain import EvaluationResult, Fact, Issue, OrderType, Severity, Side, TradeIntent
from buddy.errors import ConfigError
from buddy.evaluators.missing_scanner import MissingScannerConfig, MissingScannerEvaluator
from buddy.explain import render_issue
from buddy.store import Store
from buddy.timeframes import Timeframe
from tests import factories
from tests.evaluator_cases import contract_cases
from tests.mtfa.test_provider import MTFA_PIT_POINTS, pit_packs

from .test_mtfa import pit_intents

JULY_2 = datetime.fromisoformat("2012-07-02T20:00+00:00")  # Monday close before July 4th


def pack(**overrides: Any) -> ContextPack:
    """Return a pack with every optional piece present and quiet, unless overridden."""
    values: dict[str, Any] = dict(regime=regime(), levels=levels(),
                                  portfolio=factories.ExposureStub(), missing={})
    values.update(overrides)
    return factories.pack(**values)


def regime(**overrides: Any) -> RegimeSnapshot:
    """A 1d regime whose HMM stays put (1 - 0.99 ** h transition risk)."""
    values: dict[str, Any] = dict(
        symbol="TEST", timeframe="1d", ts=factories.AS_OF, trend_state="up",
        trend_strength=25.0, vol_state="normal", vol_z=0.0, vol_expansion_flag=False,
        liquidity_state="normal", spread_proxy=0.001, relvol=1.0, hmm_state_id=0,
        hmm_state_labels=("calm", "stormy"), hmm_probs=(1.0, 0.0),
        transition_matrix=((0.99, 0.01), (0.05, 0.95)))
    values.update(overrides)
    return RegimeSnapshot(**values)


def levels(*prices: float, touches: int = 5) -> KeyLevelsSnapshot:
    """Levels with prior-day high/low far away and a resistance at each of ``prices``, its
    last touch at the snapshot's bar (strength 1 + 0.5 x touches: 3.5 with five touches)."""
    return KeyLevelsSnapshot(
        symbol="TEST", timeframe="1d", ts=factories.AS_OF, prior_day_high=500.0,
        prior_day_low=1.0, prior_day_close=None,
        support_resistance=tuple(PriceLevel(price=p, kind="resistance", touches=touches,
                                            last_touch=factories.AS_OF) for p in prices))


def run(intent: TradeIntent | None = None, ctx: ContextPack | None = None, **config: Any
        ) -> EvaluationResult:
    return MissingScannerEvaluator(config).evaluate(intent or factories.intent(),
                                                    ctx or pack())


def only(result: EvaluationResult, code: str) -> Issue:
    matches = [i for i in result.issues if i.code == code]
    assert len(matches) == 1, [i.code for i in result.issues]
    return matches[0]


def codes(result: EvaluationResult) -> set[str]:
    return {i.code for i in result.issues}


def value(facts: Iterable[Fact], name: str) -> Any:
    return next(f.value for f in facts if f.name == name)


def test_a_quiet_checklist_raises_only_the_unknown_earnings_note() -> None:
    result = run()
    assert codes(result) == {"EARNINGS_DATES_UNKNOWN"}
    assert result.score == 100.0
    assert value(result.explain_facts, "horizon_end") == "2012-06-15T20:00:00+00:00"  # 10 bars
    assert value(result.explain_facts, "levels_checked") is True
    assert value(result.explain_facts, "exposure_checked") is True


# ---------------------------------------------------------------------------- events
def test_own_earnings_inside_the_horizon_is_medium() -> None:
    events = (factories.event("earnings", "2012-06-07T20:30Z"),
              factories.event("macro", "2012-06-08T12:30Z", "US payrolls", None),
              factories.event("macro", "2012-06-20T18:15Z", "FOMC", None))
    result = run(ctx=pack(schedule=factories.schedule(events=events)))
    issue = only(result, "EVENT_WITHIN_HORIZON")
    assert issue.severity is Severity.MEDIUM
    assert [value(issue.evidence, k) for k in ("n_events", "n_earnings", "n_macro")] == [2, 1, 1]
    assert value(issue.evidence, "next_event") == "TEST Q2 earnings"
    assert value(issue.evidence, "sessions_to_next_event") == 4  # Jun 4-7 close by 20:00Z
    assert "EARNINGS_DATES_UNKNOWN" not in codes(result)
    rendered = render_issue(issue, MissingScannerEvaluator.templates["EVENT_WITHIN_HORIZON"])
    assert rendered.renderer == "template" and "TEST Q2 earnings" in rendered.explanation


def test_market_wide_events_only_are_low_and_outside_the_horizon_nothing() -> None:
    macro = factories.schedule(events=(factories.event("macro", "2012-06-08T12:30Z", "NFP",
                                                       None),),
                               earnings_dates_known=4)
    assert only(run(ctx=pack(schedule=macro)), "EVENT_WITHIN_HORIZON").severity is Severity.LOW
    short = factories.intent(holding_horizon=4)  # ends Thursday 7 June 20:00Z
    assert codes(run(short, pack(schedule=macro))) == set()


def test_the_default_horizon_is_used_when_the_intent_has_none() -> None:
    late = factories.schedule(events=(factories.event("earnings", "2012-06-14T20:30Z"),))
    result = run(factories.intent(holding_horizon=None), pack(schedule=late))
    assert value(result.explain_facts, "horizon_source") == "default"
    assert value(only(result, "EVENT_WITHIN_HORIZON").evidence, "horizon_bars") == 10
    assert "EVENT_WITHIN_HORIZON" not in codes(run(factories.intent(holding_horizon=None),
                                                   pack(schedule=late),
                                                   default_horizon_bars=5))


def test_earnings_dates_unknown_only_for_stocks() -> None:
    issue = only(run(), "EARNINGS_DATES_UNKNOWN")
    assert issue.severity is Severity.INFO
    assert value(issue.evidence, "earnings_dates_known") == 0
    index = pack(instrument=factories.instrument(asset_class="index"))
    assert "EARNINGS_DATES_UNKNOWN" not in codes(run(ctx=index))


# ---------------------------------------------------------------------------- closures
def _july(**intent: Any) -> tuple[TradeIntent, ContextPack]:
    values: dict[str, Any] = dict(as_of=JULY_2, holding_horizon=3)
    values.update(intent)
    return factories.intent(**values), pack(as_of=JULY_2,
                                            schedule=factories.schedule(as_of=JULY_2))


def test_holiday_and_early_close_within_the_horizon() -> None:
    result = run(*_july())
    holiday = only(result, "HOLIDAY_WITHIN_HORIZON")
    assert holiday.severity is Severity.LOW
    assert value(holiday.evidence, "first_holiday") == "2012-07-04"
    assert value(holiday.evidence, "n_holidays") == 1
    assert value(holiday.evidence, "sessions_to_first_holiday") == 1
    early = only(result, "EARLY_CLOSE_WITHIN_HORIZON")
    assert early.severity is Severity.INFO  # daily bars
    assert value(early.evidence, "first_early_close") == "2012-07-03"
    assert value(early.evidence, "early_close_time") == "13:00 America/New_York"
    assert value(result.explain_facts, "horizon_end") == "2012-07-06T20:00:00+00:00"


def test_a_holiday_weeks_ahead_of_a_daily_trade_is_not_flagged() -> None:
    # one session (07-03) closes before the 07-04 holiday: flagged while that is fewer than N
    assert "HOLIDAY_WITHIN_HORIZON" in codes(run(*_july(), holiday_within_sessions=2))
    assert "HOLIDAY_WITHIN_HORIZON" not in codes(run(*_july(), holiday_within_sessions=1))


def test_a_one_bar_horizon_ends_at_the_early_close() -> None:
    result = run(*_july(holding_horizon=1))
    assert "HOLIDAY_WITHIN_HORIZON" not in codes(result)
    assert "EARLY_CLOSE_WITHIN_HORIZON" in codes(result)


def test_an_early_close_matters_more_intraday() -> None:
    intent, ctx = _july(timeframe=Timeframe.H1, holding_horizon=8)
    early = only(run(intent, dataclasses.replace(ctx, timeframe=Timeframe.H1)),
                 "EARLY_CLOSE_WITHIN_HORIZON")
    assert early.severity is Severity.LOW


# ---------------------------------------------------------------------------- liquidity
@pytest.mark.parametrize(("volume", "severity"), [(100.0, Severity.MEDIUM),
                                                  (5_000.0, Severity.LOW),
                                                  (20_000.0, None)])
def test_thinly_traded_stock(volume: float, severity: Severity | None) -> None:
    ctx = pack(market=factories.thin_market(volume))
    result = run(ctx=ctx)
    if severity is None:
        assert "LOW_LIQUIDITY" not in codes(result)
        return
    issue = only(result, "LOW_LIQUIDITY")
    assert ctx.market is not None
    median = float((ctx.market.bars["close"] * volume).tail(20).median())
    assert issue.severity is severity
    assert value(issue.evidence, "median_session_value") == pytest.approx(median, abs=0.01)
    assert value(issue.evidence, "sessions_used") == 20
    fact = issue.fact("median_session_value")
    assert fact is not None and fact.unit == "USD"


def test_index_and_fx_volumes_are_not_judged() -> None:
    for asset_class in ("index", "fx"):
        ctx = pack(market=factories.thin_market(1.0),
                   instrument=factories.instrument(asset_class=asset_class))
        assert "LOW_LIQUIDITY" not in codes(run(ctx=ctx))


# ---------------------------------------------------------------------------- levels
def test_levels_between_entry_and_target() -> None:
    intent = factories.intent()  # long 100, stop 95, target 110
    one = only(run(intent, pack(levels=levels(104.0, 112.0))),
               "LEVELS_BETWEEN_ENTRY_AND_TARGET")
    assert one.severity is Severity.LOW
    assert value(one.evidence, "n_levels") == 1
    assert value(one.evidence, "nearest_level") == "resistance cluster (5 touches)"
    assert value(one.evidence, "nearest_level_price") == 104.0
    assert value(one.evidence, "nearest_level_r") == 0.8
    assert value(one.evidence, "nearest_level_strength") == 3.5
    three = only(run(intent, pack(levels=levels(108.0, 102.0, 105.0))),
                 "LEVELS_BETWEEN_ENTRY_AND_TARGET")
    assert three.severity is Severity.MEDIUM
    assert value(three.evidence, "n_levels") == 3
    assert value(three.evidence, "nearest_level_price") == 102.0
    name = "resistance cluster (5 touches)"
    assert value(three.evidence, "levels") == f"{name} 102, {name} 105, {name} 108"
    assert "LEVELS_BETWEEN_ENTRY_AND_TARGET" not in codes(run(intent, pack()))


def test_only_strong_levels_count_between_entry_and_target() -> None:
    # a two-touch cluster has strength 2: under the default threshold (3.5), over 2
    intent = factories.intent()
    weak = pack(levels=levels(104.0, touches=2))
    assert "LEVELS_BETWEEN_ENTRY_AND_TARGET" not in codes(run(intent, weak))
    issue = only(run(intent, weak, min_level_strength=2.0), "LEVELS_BETWEEN_ENTRY_AND_TARGET")
    assert value(issue.evidence, "nearest_level_strength") == 2.0
    assert issue.evidence[-1].threshold == 2.0
    # two weak levels within level_merge_atr ATR merge into one of two sources: a resistance
    # cluster and the prior-day high on it make 2 + 0.5 x 3 = 3.5
    assert "LEVELS_BETWEEN_ENTRY_AND_TARGET" not in codes(run(intent, pack(levels=levels(
        104.0, touches=3))))
    merged = dataclasses.replace(levels(104.0, touches=3), prior_day_high=104.01)
    issue = only(run(intent, pack(levels=merged)), "LEVELS_BETWEEN_ENTRY_AND_TARGET")
    assert value(issue.evidence, "nearest_level") == ("resistance cluster (3 touches) / "
                                                      "prior-day high")
    assert value(issue.evidence, "nearest_level_strength") == 3.5
    assert value(issue.evidence, "nearest_level_price") == pytest.approx(104.005)


@pytest.mark.parametrize(("overrides", "intent_overrides", "reason"), [
    ({"levels": None, "missing": {"levels": "no key_levels row"}}, {},
     "levels missing (no key_levels row)"),
    ({"levels": "not levels"}, {}, "the levels piece is a str, not a KeyLevelsSnapshot"),
    ({}, {"proposed_target": None}, "the intent has no target"),
])
def test_levels_not_checked_says_why(overrides: dict, intent_overrides: dict, reason: str
                                     ) -> None:
    issue = only(run(factories.intent(**intent_overrides), pack(**overrides)),
                 "LEVELS_NOT_CHECKED")
    assert issue.severity is Severity.INFO
    assert value(issue.evidence, "reason") == reason


# ---------------------------------------------------------------------------- regime
def test_regime_transition_risk_is_regime_fits_rule_alone() -> None:
    # one rule, one implementation: the scanner neither reads the regime nor copies its code
    assert "regime" not in MissingScannerEvaluator.optional
    assert not [c for c in MissingScannerEvaluator.codes if c.startswith("REGIME")]
    assert "REGIME" not in " ".join(codes(run(ctx=pack(regime=None))))


def test_facts_not_known_are_not_checked_items_not_warnings() -> None:
    kinds = {code: spec.kind for code, spec in MissingScannerEvaluator.codes.items()}
    assert {c for c, k in kinds.items() if k == "not_checked"} == {
        "EARNINGS_DATES_UNKNOWN", "LEVELS_NOT_CHECKED", "EXPOSURE_NOT_CHECKED"}
    for spec in MissingScannerEvaluator.codes.values():
        assert spec.harm
        assert (spec.measure is None) if spec.kind == "not_checked" else True


# ---------------------------------------------------------------------------- exposure
def test_exposure_hook() -> None:
    adding = only(run(ctx=pack(portfolio=factories.ExposureStub(TEST=300.0))),
                  "EXISTING_POSITION")
    assert [value(adding.evidence, k) for k in ("position_qty", "combined_qty",
                                                "same_direction")] == [300.0, 400.0, True]
    short = factories.intent(side=Side.SHORT, proposed_stop=105.0, proposed_target=90.0,
                             order_type=OrderType.LIMIT)
    netting = only(run(short, pack(portfolio=factories.ExposureStub(TEST=300.0))),
                   "EXISTING_POSITION")
    assert value(netting.evidence, "combined_qty") == 200.0
    assert value(netting.evidence, "same_direction") is False
    assert "EXISTING_POSITION" not in codes(run(ctx=pack(portfolio=factories.ExposureStub(
        OTHER=5.0))))


@pytest.mark.parametrize(("portfolio", "reason"), [
    (None, "portfolio missing (not provided)"),
    ("positions", "the portfolio piece (str) offers no position_in()"),
])
def test_exposure_not_checked_says_why(portfolio: object, reason: str) -> None:
    issue = only(run(ctx=pack(portfolio=portfolio)), "EXPOSURE_NOT_CHECKED")
    assert issue.severity is Severity.INFO
    assert value(issue.evidence, "notional") == 10_000.0  # 100 shares at 100
    assert value(issue.evidence, "reason") == reason


# ---------------------------------------------------------------------------- config
def test_config_is_validated() -> None:
    with pytest.raises(ConfigError, match="min_level_strength"):
        MissingScannerConfig(min_level_strength=-1.0)
    with pytest.raises(ConfigError, match="level_pivot_method"):
        MissingScannerConfig(level_pivot_method="woodie")
    with pytest.raises(ConfigError, match="did you mean 'min_session_value'"):
        MissingScannerConfig.from_mapping({"min_session_valu": 1.0})


def test_every_issue_renders_from_its_template() -> None:
    # every consolidated level counts and every closed day in the horizon, so the contract
    # cases reach the levels and holiday items too
    evaluator = MissingScannerEvaluator({"min_level_strength": 1.0,
                                         "holiday_within_sessions": 10_000})
    seen = set()
    for intent, ctx in contract_cases():
        for issue in evaluator.evaluate(intent, ctx).issues:
            seen.add(issue.code)
            assert render_issue(issue, evaluator.templates[issue.code]).renderer == "template"
    assert seen == set(evaluator.templates)


# ---------------------------------------------------------------------------- point in time
@pytest.mark.parametrize(("symbol", "tf", "as_of"), MTFA_PIT_POINTS)
def test_point_in_time(sample_store: Store, truncated_store: Callable[[str, datetime], Store],
                       symbol: str, tf: str, as_of: str) -> None:
    t, full, cut = pit_packs(sample_store, truncated_store, symbol, tf, as_of)
    assert full.schedule == cut.schedule
    evaluator = MissingScannerEvaluator()
    for intent in pit_intents(full, symbol, tf, t):
        result = evaluator.evaluate(intent, full)
        assert result == evaluator.evaluate(intent, cut)
        # not vacuous: the horizon end comes from the sessions after as_of
        assert pd.Timestamp(value(result.explain_facts, "horizon_end")) > pd.Timestamp(t)
