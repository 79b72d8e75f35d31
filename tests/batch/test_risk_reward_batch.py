"""RiskReward over columns: a batch of N says row by row what N batches of one say, and what
the plain rules (tests/evaluators/oracles/risk_reward.py) say, on the real cases and the
contract cases, with the default thresholds and with stricter ones (so that every code fires
on many rows), and on edge cases the real data lacks (another currency, no equity, no ATR,
odd lots)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest

from buddy.batch.context import from_packs
from buddy.context.pack import ContextPack
from buddy.domain import OrderType, Side, TradeIntent
from buddy.evaluators.risk_reward import RiskRewardEvaluator
from buddy.testing import assert_rows_match_batches_of_one, runnable
from tests import factories
from tests.evaluators.oracles.risk_reward import audit

Case = tuple[TradeIntent, ContextPack]

#: Thresholds under which most checks fire on the real cases (a short lookback, tight limits).
STRICT: dict[str, Any] = dict(
    min_stop_atr=2.0, max_stop_atr=2.5, lookback_bars=5, min_stop_range=3.0,
    min_position_lots=200.0, risk_amount_tolerance_pct=0.0, slippage_atr=0.2,
    max_slippage_share_pct=1.0, max_participation_pct=0.001, max_entry_distance_atr=0.2)
#: A lookback longer than every window (NaN-padded tails), zero noise and slippage
#: thresholds (the falsy branches), loose stop and slippage limits.
LONG_LOOKBACK: dict[str, Any] = dict(
    min_stop_atr=0.0, max_stop_atr=1.0, lookback_bars=300, min_stop_range=0.0,
    min_position_lots=0.0, slippage_atr=0.0, max_slippage_share_pct=10.0,
    max_participation_pct=0.05, max_entry_distance_atr=0.1)
CONFIGS = {"default": {}, "strict": STRICT, "long_lookback": LONG_LOOKBACK}
#: Codes that cannot fire under a config (zero noise thresholds).
SILENT = {"long_lookback": {"STOP_INSIDE_NOISE", "STOP_INSIDE_RECENT_RANGE"}}


def edge_cases() -> list[Case]:
    """Cases the real and contract cases lack: another instrument currency, a zero (int)
    equity snapshot, no buying power, no ATR, a stop not required, lots of 100 with a
    multiplier, FX units, stop and limit orders, gaps (NaN bars) in the window."""
    market = factories.market(n_bars=60)
    bars = market.bars.copy()
    bars.loc[[3, 10, 57], ["high", "low", "close", "volume"]] = float("nan")
    bars.loc[20, "low"] = 0.0  # unusable for the spread estimate
    bars.loc[30, "volume"] = 0.0
    gappy = dataclasses.replace(market, bars=bars)
    close = round(market.last_close, 2)
    atr = market.latest_features["atr_14"]

    def intent(**overrides: Any) -> TradeIntent:
        values: dict[str, Any] = dict(proposed_entry=close, proposed_stop=round(close - atr, 2),
                                      proposed_target=round(close + 1.2 * atr, 2),
                                      proposed_size=2_000.0)
        values.update(overrides)
        return factories.intent(**values)

    packs = [
        factories.pack(market=gappy, instrument=factories.instrument(currency="EUR")),
        factories.pack(market=gappy, account=factories.account(equity_snapshot=0,
                                                               buying_power_snapshot=None)),
        factories.pack(market=factories.market(n_bars=30, with_features=False)),
        factories.pack(market=gappy, account=factories.account(
            rules={"stop_required": False, "min_reward_risk": 2, "max_risk_per_trade_pct": 2},
            equity_snapshot=5_000.0, buying_power_snapshot=1_000.0)),
        factories.pack(market=gappy, instrument=factories.instrument(
            lot_size=100.0, contract_multiplier=2.0)),
        factories.pack(market=gappy, instrument=factories.instrument(
            asset_class="fx", lot_size=1000.0, currency="USD")),
    ]
    intents = [
        intent(order_type=OrderType.STOP),
        intent(proposed_stop=round(close - 0.3 * atr, 2), proposed_risk_amount=37.0),
        intent(proposed_entry=round(close * 1.2, 2), proposed_stop=round(close * 1.2 - 0.01, 2),
               proposed_target=round(close * 1.2 + 0.5, 2)),
        intent(proposed_stop=None, side=Side.LONG),
        intent(side=Side.SHORT, proposed_stop=round(close + 9 * atr, 2),
               proposed_target=round(close - 2 * atr, 2), proposed_risk_amount=45_678.9),
        intent(order_type=OrderType.LIMIT, proposed_size=1_000_000.0),
    ]
    return [(dataclasses.replace(i, intent_id=f"edge-{k}-{j}"), p)
            for k, p in enumerate(packs) for j, i in enumerate(intents)]


@pytest.fixture(scope="module")
def cases(all_cases: list[Case]) -> list[Case]:
    return [*all_cases, *edge_cases()]


@pytest.mark.parametrize("config", list(CONFIGS))
def test_a_batch_of_n_is_n_batches_of_one(config: str, cases: list[Case]) -> None:
    evaluator = RiskRewardEvaluator(CONFIGS[config])
    batch = assert_rows_match_batches_of_one(evaluator, cases)
    # every code but the config's silent ones fires somewhere in these cases
    assert set(batch.issues["code"]) == set(RiskRewardEvaluator.codes) - SILENT.get(config,
                                                                                    set())


@pytest.mark.parametrize("config", ["default", "strict"])
def test_the_columns_say_what_the_plain_rules_say(config: str, cases: list[Case]) -> None:
    """Codes, severities, evidence and mitigation facts (value, unit, threshold) of every
    row against the oracle's, on the real, contract and edge cases."""
    evaluator = RiskRewardEvaluator(CONFIGS[config])
    cases = runnable(evaluator, cases)
    batch = evaluator.evaluate_batch(from_packs([i for i, _ in cases], [p for _, p in cases]))
    fired = 0
    for row, (intent, pack) in enumerate(cases):
        got = batch.row(row).issues
        want = audit(intent, pack, evaluator.config)
        label = f"{config} {intent.intent_id}"
        assert [(i.code, i.severity.value) for i in got] == [w[:2] for w in want], label
        for issue, (code, _, evidence, action) in zip(got, want, strict=True):
            assert_facts(issue.evidence, evidence, f"{label} {code}")
            assert_facts(issue.mitigation.facts, action, f"{label} {code} mitigation")
            fired += 1
    assert fired > len(cases) // 2


def assert_facts(got: Any, want: dict[str, tuple[Any, str, Any]], label: str) -> None:
    assert [f.name for f in got] == list(want), label
    for fact in got:
        value, unit, threshold = want[fact.name]
        assert fact.unit == unit, (label, fact)
        for g, w in ((fact.value, value), (fact.threshold, threshold)):
            if isinstance(w, float) and isinstance(g, float):
                # the last digit may differ on exact halves (np.round against round)
                assert math.isclose(g, w, rel_tol=1e-9, abs_tol=1e-8), (label, fact, w)
            else:
                assert g == w and type(g) is type(w), (label, fact, w)


def test_no_rows_give_an_empty_result(all_cases: list[Case]) -> None:
    ctx = from_packs([i for i, _ in all_cases[:3]], [p for _, p in all_cases[:3]]).take([])
    result = RiskRewardEvaluator().evaluate_batch(ctx)
    assert len(result) == 0 and result.issues.empty


def test_mixed_currencies_get_each_rows_unit(cases: list[Case]) -> None:
    """A batch mixing EUR and USD instruments, shares and FX units: each issue's money and
    size facts carry its own row's units."""
    evaluator = RiskRewardEvaluator(STRICT)
    cases = runnable(evaluator, cases)
    batch = evaluator.evaluate_batch(from_packs([i for i, _ in cases], [p for _, p in cases]))
    seen = set()
    for row, (_, pack) in enumerate(cases):
        size_unit = "shares" if pack.instrument.asset_class == "equity" else "units"
        for issue in batch.row(row).issues:
            for fact in (*issue.evidence, *issue.mitigation.facts):
                if fact.name in {"risk_amount", "notional", "slippage_cost"}:
                    assert fact.unit == pack.instrument.currency, (issue.code, fact)
                    seen.add(fact.unit)
                if fact.name in {"size", "budget_size", "suggested_size"}:
                    assert fact.unit == size_unit, (issue.code, fact)
                    seen.add(fact.unit)
    assert {"EUR", "USD", "shares", "units"} <= seen


# The real cases (~440 packs built one by one) are a session fixture: one worker builds them.
pytestmark = pytest.mark.xdist_group("batch_cases")
