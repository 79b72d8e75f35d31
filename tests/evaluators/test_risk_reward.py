"""RiskReward: each check fires on its case with the right numbers, suggestions sit on the
correct side of the entry and on the tick grid, sizes fit the budget, and results are
point-in-time."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from buddy.context.builder import ContextPackBuilder
from buddy.context.pack import ContextPack
from buddy.domain import EvaluationResult, Fact, Issue, OrderType, Severity, Side, TradeIntent
from buddy.errors import ConfigError
from buddy.evaluators.risk_reward import RiskRewardConfig, RiskRewardEvaluator
from buddy.evidence import is_on_tick
from buddy.explain import render_issue
from buddy.guardrails import check_text
from buddy.store import Store
from buddy.timeframes import Timeframe
from tests import factories

from .test_point_in_time_cases import PIT_POINTS

CLOSE, ATR, HALF_RANGE = 100.0, 2.0, 0.5

#: More as-of points on AAPL around its 2005-02-28 and 2000-06-21 2:1 splits, and on EURUSD 1h
#: (a Monday open, a month end, the thin Christmas session), on top of the shared PIT_POINTS.
EXTRA_PIT_POINTS = [
    ("AAPL", "1d", "2005-02-24T21:00Z"),
    ("AAPL", "1d", "2005-02-28T21:00Z"),
    ("AAPL", "1d", "2005-03-02T21:00Z"),
    ("AAPL", "1d", "2000-06-21T20:00Z"),
    ("AAPL", "1d", "2000-06-22T20:00Z"),
    ("EURUSD", "1h", "2017-03-06T00:00Z"),
    ("EURUSD", "1h", "2017-08-31T21:00Z"),
    ("EURUSD", "1h", "2017-12-25T15:00Z"),
]


def flat_pack(*, close: float = CLOSE, atr: float = ATR, half_range: float = HALF_RANGE,
              volume: float = 1e6, **pack_overrides: Any) -> ContextPack:
    """Return a pack whose bars all have this close, range and volume, and this ATR."""
    m = factories.market(n_bars=60)
    bars = m.bars.assign(open=close, high=close + half_range, low=close - half_range,
                         close=close, volume=volume)
    market = dataclasses.replace(m, bars=bars, features=m.features.assign(atr_14=atr))
    return factories.pack(market=market, **pack_overrides)


def clean_intent(**overrides: Any) -> TradeIntent:
    """Long 100 at 100, stop 97 (1.5 ATR, 3x the bar range), target 106 (2R)."""
    values: dict[str, Any] = dict(proposed_entry=100.0, proposed_stop=97.0,
                                  proposed_target=106.0, proposed_size=100.0)
    values.update(overrides)
    return factories.intent(**values)


def run(intent: TradeIntent, ctx: ContextPack | None = None, **config: Any
        ) -> EvaluationResult:
    return RiskRewardEvaluator(config).evaluate(intent, ctx or flat_pack())


def only(result: EvaluationResult, code: str) -> Issue:
    matches = [i for i in result.issues if i.code == code]
    assert len(matches) == 1, [i.code for i in result.issues]
    return matches[0]


def fact(issue: Issue, name: str) -> Fact:
    found = issue.fact(name)
    assert found is not None, (issue.code, name)
    return found


def value(facts, name: str) -> Any:
    return next(f.value for f in facts if f.name == name)


def codes(result: EvaluationResult) -> set[str]:
    return {i.code for i in result.issues}


def flat_spread(close: float = CLOSE, half_range: float = HALF_RANGE) -> float:
    # Flat bars carry no variance, so the whole range is spread: alpha = ln(H/L) exactly.
    return 2.0 * math.tanh(math.log((close + half_range) / (close - half_range)) / 2.0)


# ------------------------------------------------------------------------------ clean case
def test_a_sound_trade_raises_nothing_and_explains_its_numbers() -> None:
    result = run(clean_intent())
    assert result.issues == () and result.score == 100.0
    facts = result.explain_facts
    assert value(facts, "rr") == pytest.approx(2.0)
    assert value(facts, "risk_amount") == pytest.approx(300.0)
    assert value(facts, "risk_budget") == pytest.approx(1_000.0)
    assert value(facts, "risk_pct_equity") == pytest.approx(0.3)
    assert value(facts, "stop_distance_atr") == pytest.approx(1.5)
    assert value(facts, "budget_size") == 333.0
    assert value(facts, "median_range") == pytest.approx(2 * HALF_RANGE)
    assert value(facts, "participation_pct") == pytest.approx(0.01)
    assert next(f for f in facts if f.name == "risk_amount").unit == "USD"


# --------------------------------------------------------------------------------- no stop
@pytest.mark.parametrize(("side", "expected_stop"), [(Side.LONG, 98.0), (Side.SHORT, 102.0)])
def test_no_stop_is_critical_and_suggests_a_stop_and_a_size(side: Side,
                                                            expected_stop: float) -> None:
    intent = clean_intent(side=side, proposed_stop=None, proposed_target=None)
    issue = only(run(intent), "NO_STOP")
    assert issue.severity is Severity.CRITICAL
    facts = issue.mitigation.facts
    # max(1.0 ATR, 1.0 x median range) = 2.0 from the entry, on the stop's side
    assert value(facts, "suggested_stop") == expected_stop
    assert value(facts, "suggested_size") == math.floor(1_000.0 / 2.0)


def test_no_stop_is_fine_when_the_rules_do_not_require_one() -> None:
    ctx = flat_pack(account=factories.account(rules={"stop_required": False}))
    result = run(clean_intent(proposed_stop=None), ctx)
    assert "NO_STOP" not in codes(result)


# ---------------------------------------------------------------------------- reward/risk
@pytest.mark.parametrize(("side", "stop", "target", "suggested"),
                         [(Side.LONG, 97.0, 103.0, 104.5), (Side.SHORT, 103.0, 97.0, 95.5)])
def test_reward_risk_below_minimum(side: Side, stop: float, target: float,
                                   suggested: float) -> None:
    issue = only(run(clean_intent(side=side, proposed_stop=stop, proposed_target=target)),
                 "REWARD_RISK_BELOW_MIN")
    rr = fact(issue, "rr")
    assert rr.value == pytest.approx(1.0) and rr.unit == "R" and rr.threshold == 1.5
    assert value(issue.mitigation.facts, "suggested_target") == suggested  # 1.5 x 3 away


def test_reward_risk_at_the_minimum_passes() -> None:
    assert "REWARD_RISK_BELOW_MIN" not in codes(run(clean_intent(proposed_target=104.5)))


@pytest.mark.parametrize(("stop", "target", "fires"), [
    (96.997, 104.50, False),  # the minimum's price 104.5045: 104.50 is the nearest tick
    (96.997, 104.49, True), (97.0, 104.495, False), (97.0, 104.49, True)])
def test_a_target_within_half_a_tick_of_the_minimum_meets_it(stop: float, target: float,
                                                             fires: bool) -> None:
    """A target rounded to the tick nearest the minimum's price is not 'below the minimum'
    (a generator's 2R target on the grid reads 1.998R); one more tick short is."""
    result = run(clean_intent(proposed_stop=stop, proposed_target=target))
    assert ("REWARD_RISK_BELOW_MIN" in codes(result)) is fires


# ------------------------------------------------------------------------------ the budget
@pytest.mark.parametrize(("size", "severity"), [(500.0, Severity.MEDIUM),
                                                (1_000.0, Severity.HIGH)])
def test_risk_above_budget_names_risk_budget_and_the_size_that_fits(
        size: float, severity: Severity) -> None:
    issue = only(run(clean_intent(proposed_size=size)), "RISK_ABOVE_BUDGET")
    assert issue.severity is severity
    assert fact(issue, "risk_amount").value == pytest.approx(3.0 * size)
    assert fact(issue, "risk_amount").threshold == pytest.approx(1_000.0)
    assert fact(issue, "risk_pct_equity").value == pytest.approx(3.0 * size / 100_000 * 100)
    budget_size = value(issue.mitigation.facts, "budget_size")
    assert budget_size == 333.0
    assert budget_size * 3.0 <= 1_000.0 < (budget_size + 1) * 3.0


def test_budget_size_is_rounded_down_to_lots_and_uses_the_multiplier() -> None:
    ctx = flat_pack(instrument=factories.instrument(lot_size=100.0, contract_multiplier=2.0))
    issue = only(run(clean_intent(proposed_size=500.0), ctx), "RISK_ABOVE_BUDGET")
    assert fact(issue, "risk_amount").value == pytest.approx(3.0 * 500 * 2.0)
    # 1,000 / (3 x 2) = 166.7 units -> 100 (one lot of 100)
    assert value(issue.mitigation.facts, "budget_size") == 100.0
    assert value(issue.mitigation.facts, "risk_at_budget_size") == pytest.approx(600.0)


@pytest.mark.parametrize("equity", [None, 0.0])
def test_missing_equity_is_said_and_no_size_is_ever_suggested(equity: float | None) -> None:
    ctx = flat_pack(account=factories.account(equity_snapshot=equity))
    tight = clean_intent(proposed_stop=99.2, proposed_size=10_000.0,
                         proposed_risk_amount=50.0)
    no_stop = clean_intent(proposed_stop=None)
    for intent in (tight, no_stop):
        result = run(intent, ctx)
        issue = only(result, "NO_EQUITY_SNAPSHOT")
        assert issue.severity is Severity.LOW
        assert fact(issue, "max_risk_per_trade_pct").value == 1.0
        assert "RISK_ABOVE_BUDGET" not in codes(result)
        for i in result.issues:  # each code declares its facts: a size nobody can give is null
            sizes = [f.value for f in i.mitigation.facts
                     if f.name in {"suggested_size", "size_for_stated_risk", "budget_size"}]
            assert sizes == [None] * len(sizes), i
        assert value(result.explain_facts, "budget_size") is None
    noise = only(run(tight, ctx), "STOP_INSIDE_NOISE")
    assert value(noise.mitigation.facts, "suggested_stop") == 98.0
    # the template shows the size it cannot give as n/a, never as a number
    rendered = render_issue(noise, RiskRewardEvaluator.templates[noise.code])
    assert "cut the size to n/a to keep the risk at n/a" in rendered.mitigation


def test_other_currency_is_flagged_and_not_compared_with_equity() -> None:
    ctx = flat_pack(instrument=factories.instrument(currency="EUR"))
    result = run(clean_intent(proposed_size=100_000.0), ctx)
    issue = only(result, "ACCOUNT_CURRENCY_MISMATCH")
    assert fact(issue, "risk_amount").unit == "EUR"
    assert fact(issue, "risk_amount").value == pytest.approx(300_000.0)
    assert not codes(result) & {"RISK_ABOVE_BUDGET", "NOTIONAL_ABOVE_BUYING_POWER",
                                "NO_EQUITY_SNAPSHOT"}


@pytest.mark.parametrize(("stated", "severity"), [(250.0, Severity.MEDIUM),
                                                  (400.0, Severity.LOW), (290.0, None)])
def test_stated_risk_amount_must_match_within_tolerance(stated: float,
                                                        severity: Severity | None) -> None:
    result = run(clean_intent(proposed_risk_amount=stated))
    if severity is None:  # 300 vs 290 is 3.4%, inside the 5% tolerance
        assert "RISK_AMOUNT_MISMATCH" not in codes(result)
        return
    issue = only(result, "RISK_AMOUNT_MISMATCH")
    assert issue.severity is severity
    assert fact(issue, "risk_mismatch_pct").value == pytest.approx(100 * (300 - stated) / stated,
                                                                  abs=1e-4)
    assert value(issue.mitigation.facts, "size_for_stated_risk") == math.floor(stated / 3.0)


# ------------------------------------------------------------------------------ stop noise
@pytest.mark.parametrize(("side", "stop", "expected"), [(Side.LONG, 99.2, 98.0),
                                                        (Side.SHORT, 100.8, 102.0)])
def test_stop_inside_noise_widens_on_the_right_side_and_keeps_the_risk(
        side: Side, stop: float, expected: float) -> None:
    intent = clean_intent(side=side, proposed_stop=stop,
                          proposed_target=100.0 + side.sign * 6.0)
    issue = only(run(intent), "STOP_INSIDE_NOISE")
    assert issue.severity is Severity.HIGH  # 0.4 ATR is under half the 1.0 ATR threshold
    distance_atr = fact(issue, "stop_distance_atr")
    assert distance_atr.value == pytest.approx(0.4) and distance_atr.threshold == 1.0
    assert distance_atr.unit == "ATR"
    facts = issue.mitigation.facts
    suggested = value(facts, "suggested_stop")
    assert suggested == expected and (suggested - 100.0) * side.sign < 0
    risk = 0.8 * 100  # the current risk, already inside the budget
    assert value(facts, "risk_amount") == pytest.approx(risk)
    size = value(facts, "suggested_size")
    assert size == math.floor(risk / 2.0) and size * 2.0 <= risk
    rendered = render_issue(issue, RiskRewardEvaluator.templates[issue.code])
    assert rendered.renderer == "template"
    assert rendered.mitigation == (f"Widen the stop to at least {expected:.2f}, or cut the "
                                   "size to 40 shares to keep the risk at USD 80.00.")


@pytest.mark.parametrize("side", [Side.LONG, Side.SHORT])
def test_suggested_stop_is_on_the_tick_grid_and_at_least_the_threshold_away(side: Side
                                                                             ) -> None:
    atr = 2.03
    ctx = flat_pack(atr=atr, instrument=factories.instrument(tick_size=0.05))
    intent = clean_intent(side=side, proposed_stop=100.0 - side.sign * 0.5,
                          proposed_target=100.0 + side.sign * 6.0)
    issue = only(run(intent, ctx), "STOP_INSIDE_NOISE")
    suggested = value(issue.mitigation.facts, "suggested_stop")
    assert is_on_tick(suggested, 0.05)
    assert (suggested - 100.0) * side.sign < 0
    assert abs(100.0 - suggested) >= atr - 1e-12
    assert abs(100.0 - suggested) < atr + 0.05
    assert suggested == (97.95 if side is Side.LONG else 102.05)


def test_suggested_size_keeps_the_risk_within_the_budget() -> None:
    # 10,000 shares 0.8 from entry risk 8,000: the wider stop keeps the budget's 1,000 only.
    issue = only(run(clean_intent(proposed_stop=99.2, proposed_size=10_000.0)),
                 "STOP_INSIDE_NOISE")
    facts = issue.mitigation.facts
    assert value(facts, "risk_amount") == pytest.approx(1_000.0)
    size = value(facts, "suggested_size")
    assert size == 500.0 and size * abs(100.0 - value(facts, "suggested_stop")) <= 1_000.0


def test_stop_inside_the_recent_range_but_outside_atr_noise() -> None:
    ctx = flat_pack(half_range=2.0)  # bar range 4.0 = 2 ATR
    result = run(clean_intent(), ctx, max_slippage_share_pct=100.0)
    issue = only(result, "STOP_INSIDE_RECENT_RANGE")
    assert "STOP_INSIDE_NOISE" not in codes(result)
    assert fact(issue, "stop_distance_range").value == pytest.approx(3.0 / 4.0)
    assert fact(issue, "median_range").value == pytest.approx(4.0)
    assert value(issue.mitigation.facts, "suggested_stop") == 96.0
    # risk 300 kept with a 4.0 stop: 75 shares
    assert value(issue.mitigation.facts, "suggested_size") == 75.0


def test_median_range_uses_only_the_lookback_bars() -> None:
    ctx = flat_pack()
    assert ctx.market is not None
    bars = ctx.market.bars.copy()
    bars.loc[bars.index[:-5], "high"] = CLOSE + 10.0  # wide bars, all before the last 5
    ctx = dataclasses.replace(ctx, market=dataclasses.replace(ctx.market, bars=bars))
    assert value(run(clean_intent(), ctx, lookback_bars=5).explain_facts,
                 "median_range") == pytest.approx(1.0)
    expected = float(np.median((bars["high"] - bars["low"]).tail(20)))
    assert value(run(clean_intent(), ctx).explain_facts,
                 "median_range") == pytest.approx(expected)


# ---------------------------------------------------------------------------- too wide
def test_a_stop_beyond_max_atr_is_too_wide() -> None:
    issue = only(run(clean_intent(proposed_stop=80.0, proposed_target=150.0)),
                 "STOP_TOO_WIDE")
    assert fact(issue, "stop_distance_atr").value == pytest.approx(10.0)
    assert fact(issue, "stop_distance_atr").threshold == 6.0
    suggested = value(issue.mitigation.facts, "suggested_stop")
    assert suggested == 88.0 and suggested < 100.0  # 6 ATR, rounded towards the entry


def test_a_budget_below_one_lot_makes_the_stop_too_wide() -> None:
    ctx = flat_pack(instrument=factories.instrument(lot_size=100.0),
                    account=factories.account(equity_snapshot=10_000.0))
    issue = only(run(clean_intent(), ctx), "STOP_TOO_WIDE")  # budget 100 / 3 = 33 < 100
    assert fact(issue, "budget_size").value == 0.0
    assert fact(issue, "min_position_size").value == 100.0
    suggested = value(issue.mitigation.facts, "suggested_stop")
    assert 100.0 - suggested <= 100.0 / 100.0  # one lot then fits the budget
    assert "STOP_TOO_WIDE" not in codes(run(clean_intent(), ctx, min_position_lots=0.0))


# -------------------------------------------------------------------------------- costs
@pytest.mark.parametrize(("order_type", "crossings"), [(OrderType.LIMIT, 0.5),
                                                       (OrderType.MARKET, 1.0)])
def test_slippage_is_a_large_share_of_a_one_atr_stop(order_type: OrderType,
                                                     crossings: float) -> None:
    intent = clean_intent(proposed_stop=98.0, proposed_target=104.0, order_type=order_type)
    issue = only(run(intent), "SLIPPAGE_RISK")
    expected = crossings * flat_spread() * 100.0 + 0.05 * ATR
    assert fact(issue, "expected_slippage").value == pytest.approx(expected)
    assert fact(issue, "spread_pct").value == pytest.approx(100 * flat_spread(), abs=1e-4)
    assert fact(issue, "slippage_share_pct").value == pytest.approx(100 * expected / 2.0,
                                                                   abs=1e-4)
    suggested = value(issue.mitigation.facts, "suggested_stop")
    assert suggested < 100.0 and is_on_tick(suggested, 0.01)
    assert expected / (100.0 - suggested) <= 0.25 + 1e-9  # at the suggested stop it fits
    assert value(issue.mitigation.facts, "slippage_cost") == pytest.approx(expected * 100,
                                                                           abs=0.01)


def test_participation_above_the_limit() -> None:
    ctx = flat_pack(volume=10_000.0)
    issue = only(run(clean_intent(proposed_size=200.0), ctx), "HIGH_PARTICIPATION")
    assert fact(issue, "participation_pct").value == pytest.approx(2.0)
    assert fact(issue, "participation_pct").threshold == 1.0
    assert value(issue.mitigation.facts, "participation_size_limit") == 100.0


def test_notional_above_buying_power() -> None:
    ctx = flat_pack(account=factories.account(buying_power_snapshot=5_000.0))
    issue = only(run(clean_intent(), ctx), "NOTIONAL_ABOVE_BUYING_POWER")
    assert issue.severity is Severity.HIGH
    assert fact(issue, "notional").value == pytest.approx(10_000.0)
    assert fact(issue, "notional").threshold == pytest.approx(5_000.0)
    assert value(issue.mitigation.facts, "buying_power_size_limit") == 50.0


@pytest.mark.parametrize(("entry", "fires"), [(107.0, True), (106.0, False), (93.0, True)])
def test_entry_far_from_the_last_close(entry: float, fires: bool) -> None:
    intent = clean_intent(proposed_entry=entry, proposed_stop=entry - 3.0,
                          proposed_target=entry + 6.0)
    result = run(intent)
    assert ("ENTRY_FAR_FROM_MARKET" in codes(result)) is fires
    if fires:
        issue = only(result, "ENTRY_FAR_FROM_MARKET")
        assert fact(issue, "entry_distance_atr").value == pytest.approx(abs(entry - 100) / 2)
        assert fact(issue, "last_close").value == 100.0  # evidence; the mitigation cites it


def test_missing_atr_skips_atr_checks_without_inventing_a_value() -> None:
    ctx = factories.pack(market=factories.market(with_features=False))
    intent = clean_intent(proposed_entry=200.0, proposed_stop=199.9, proposed_target=201.0)
    result = run(intent, ctx)
    assert not codes(result) & {"STOP_INSIDE_NOISE", "ENTRY_FAR_FROM_MARKET"}
    assert "STOP_INSIDE_RECENT_RANGE" in codes(result)  # the bar range still speaks
    assert value(result.explain_facts, "stop_distance_atr") is None


# ------------------------------------------------------------------ rendering and config
def test_with_a_complete_account_every_issue_renders_and_passes_the_guardrails() -> None:
    ctx = flat_pack(volume=10_000.0,
                    account=factories.account(buying_power_snapshot=5_000.0))
    intents = [
        clean_intent(proposed_stop=None),
        clean_intent(proposed_stop=99.2, proposed_target=100.5, proposed_size=5_000.0,
                     proposed_risk_amount=100.0, proposed_entry=100.0),
        clean_intent(proposed_entry=108.0, proposed_stop=80.0, proposed_target=160.0),
    ]
    seen = set()
    for intent in intents:
        for issue in run(intent, ctx).issues:
            seen.add(issue.code)
            template = RiskRewardEvaluator.templates[issue.code]
            rendered = render_issue(issue, template)
            assert rendered.renderer == "template", (issue.code, rendered)
            facts = (*issue.evidence, *issue.mitigation.facts)
            for text in (rendered.explanation, rendered.mitigation, *rendered.evidence):
                verdict = check_text(text, facts, allowed=(template.explanation,
                                                           template.mitigation))
                assert verdict.ok, (issue.code, text, verdict.reasons)
    assert len(seen) >= 9, seen


def test_config_errors_name_the_field_the_range_and_the_value() -> None:
    with pytest.raises(ConfigError) as err:
        RiskRewardConfig(min_stop_atr=-1.0)
    text = str(err.value)
    assert "risk_reward.min_stop_atr" in text and "between 0 and 10" in text and "-1" in text
    with pytest.raises(ConfigError, match="min_stop_atr: must be <= max_stop_atr"):
        RiskRewardConfig(min_stop_atr=5.0, max_stop_atr=4.0)
    with pytest.raises(ConfigError, match="did you mean 'max_participation_pct'"):
        RiskRewardEvaluator({"max_partcipation_pct": 2.0})
    with pytest.raises(ConfigError, match="lookback_bars"):
        RiskRewardConfig(lookback_bars=1)


def test_thresholds_come_from_config() -> None:
    intent = clean_intent(proposed_stop=98.0, proposed_target=104.0)  # 1 ATR, 2R
    assert "STOP_INSIDE_NOISE" in codes(run(intent, min_stop_atr=1.5))
    assert "SLIPPAGE_RISK" not in codes(run(intent, max_slippage_share_pct=50.0))
    assert "ENTRY_FAR_FROM_MARKET" in codes(run(clean_intent(proposed_entry=103.0,
                                                             proposed_stop=100.0,
                                                             proposed_target=109.0),
                                                max_entry_distance_atr=1.0))


# ------------------------------------------------------------------------- point in time
def pit_intents(ctx: ContextPack, symbol: str, tf: str, as_of: pd.Timestamp
                ) -> list[TradeIntent]:
    """Return a sound intent and a reckless one, both priced off the full pack."""
    assert ctx.market is not None
    tick = ctx.instrument.tick_size
    close = round(round(ctx.market.last_close / tick) * tick, 6)
    atr = ctx.market.latest_features["atr_14"]
    base = dict(symbol=symbol, timeframe=Timeframe(tf), as_of=as_of.to_pydatetime(),
                proposed_entry=close)
    unit = 10_000.0 if ctx.instrument.lot_size > 1 else 100.0
    return [
        factories.intent(**base, proposed_stop=round(close - 1.5 * atr, 6),
                         proposed_target=round(close + 3 * atr, 6), proposed_size=unit),
        factories.intent(**base, side=Side.SHORT, proposed_stop=round(close + 0.3 * atr, 6),
                         proposed_target=round(close - 0.2 * atr, 6),
                         proposed_size=unit * 1_000, proposed_risk_amount=123.0,
                         order_type=OrderType.MARKET),
        factories.intent(**base, proposed_stop=None, proposed_target=None),
    ]


def pit_packs(sample_store: Store, truncated_store, symbol: str, tf: str, as_of: str
              ) -> tuple[pd.Timestamp, ContextPack, ContextPack]:
    t = pd.Timestamp(as_of)
    full = ContextPackBuilder(sample_store).build("u1", symbol, Timeframe(tf), t)
    cut = ContextPackBuilder(truncated_store(symbol, t)).build("u1", symbol, Timeframe(tf), t)
    acct = factories.account()
    return t, dataclasses.replace(full, account=acct), dataclasses.replace(cut, account=acct)


@pytest.mark.parametrize(("symbol", "tf", "as_of"), PIT_POINTS + EXTRA_PIT_POINTS)
def test_point_in_time(sample_store: Store, truncated_store, symbol: str, tf: str,
                       as_of: str) -> None:
    t, full, cut = pit_packs(sample_store, truncated_store, symbol, tf, as_of)
    evaluator = RiskRewardEvaluator()
    sound, reckless, bare = pit_intents(full, symbol, tf, t)
    for intent in (sound, reckless, bare):
        result = evaluator.evaluate(intent, full)
        assert result == evaluator.evaluate(intent, cut)
        assert value(result.explain_facts, "atr_14") is not None
    # The comparison is not vacuous: the reckless and bare intents trip ATR- and
    # bar-based checks, whose numbers would differ if either pack saw a different history.
    result = evaluator.evaluate(reckless, full)
    assert {"STOP_INSIDE_NOISE", "RISK_ABOVE_BUDGET"} <= codes(result)
    assert value(result.explain_facts, "participation_pct") is not None
    assert value(result.explain_facts, "spread_pct") is not None
    assert value(only(evaluator.evaluate(bare, full), "NO_STOP").mitigation.facts,
                 "suggested_stop") is not None
