"""RiskReward's batch form equals its scalar form: on the real cases and the contract cases,
with the default thresholds and with stricter ones (so that every code fires on many rows),
and on edge cases the real data lacks (another currency, no equity, no ATR, odd lots)."""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from typing import Any

import numpy as np
import pytest

from buddy.batch.columns import py_round
from buddy.batch.context import from_packs
from buddy.context.pack import ContextPack
from buddy.domain import OrderType, Side, TradeIntent
from buddy.evaluators.base import Evaluator
from buddy.evaluators.risk_reward import RiskRewardEvaluator, _lots
from tests import factories
from tests.batch.parity import assert_batch_matches_scalar, runnable

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


def test_the_module_has_its_own_batch_form() -> None:
    assert RiskRewardEvaluator.evaluate_batch is not Evaluator.evaluate_batch
    assert "evaluate_batch" in vars(RiskRewardEvaluator)


@pytest.mark.parametrize("config", list(CONFIGS))
def test_batch_equals_scalar(config: str, cases: list[Case]) -> None:
    evaluator = RiskRewardEvaluator(CONFIGS[config])
    batch = assert_batch_matches_scalar(evaluator, cases)
    # coverage: every code the scalar form emits on these cases fired in the batch run too,
    # as often; and every code but the config's silent ones is among them
    scalar = Counter(issue.code for intent, pack in runnable(evaluator, cases)
                     for issue in evaluator.evaluate(intent, pack).issues)
    assert Counter(batch.issues["code"]) == scalar
    assert set(scalar) == set(RiskRewardEvaluator.templates) - SILENT.get(config, set())


@pytest.mark.parametrize("config", ["default", "strict"])
def test_the_real_and_contract_cases_alone_match(config: str, all_cases: list[Case]) -> None:
    """``all_cases`` as they are (without the edge cases)."""
    evaluator = RiskRewardEvaluator(CONFIGS[config])
    batch = assert_batch_matches_scalar(evaluator, all_cases)
    scalar = {issue.code for intent, pack in runnable(evaluator, all_cases)
              for issue in evaluator.evaluate(intent, pack).issues}
    assert scalar <= set(batch.issues["code"])


def test_no_rows_give_an_empty_result(all_cases: list[Case]) -> None:
    ctx = from_packs([i for i, _ in all_cases[:3]], [p for _, p in all_cases[:3]]).take([])
    result = RiskRewardEvaluator().evaluate_batch(ctx)
    assert len(result) == 0 and result.issues.empty


def test_column_rounding_is_pythons_round() -> None:
    """Decimal ties (0.125, 2.675, 1.005, ...) are where rint(v * 10**d) / 10**d and Python's
    correctly rounded round() can part; the column form must agree on them too."""
    rng = np.random.default_rng(3)
    ties = np.array([0.125, 0.375, 2.675, 1.005, 1.015, 0.285, 1234.5675, 99.99995,
                     -0.125, -2.675, 0.5e-8, 2.5e-9, 1e17 + 0.5, 3.0, -0.0])
    values = np.concatenate([ties, rng.normal(0, 1e3, 5_000), rng.lognormal(0, 5, 5_000),
                             np.round(rng.normal(0, 100, 5_000), 3) + 0.0005])
    for digits in (2, 4, 8, 9):
        got = py_round(values, digits)
        want = np.array([round(float(v), digits) for v in values])
        assert (got == want).all(), values[got != want]


def test_column_lots_are_the_scalar_lots() -> None:
    """Sizes a hair below a whole number of lots round up to it, as ``_TradeRisk.lots``."""
    rng = np.random.default_rng(4)
    whole = rng.integers(0, 10_000_000, 5_000).astype(float)
    units = np.concatenate([whole - 4e-10, whole - 6e-10, whole + 1e-12, whole - 1e-7,
                            rng.lognormal(5, 4, 5_000), [0.0, 0.4, 1.0, 999.9999999996]])
    for lot in (1.0, 100.0, 1000.0, 0.01):
        lots = np.full(len(units), lot)
        got = _lots(units * lot, lots)
        # Python floats, as the scalar form has (numpy's float64.__round__ rounds otherwise)
        want = np.array([max(0.0, math.floor(round(u * lot / lot, 9)) * lot)
                         for u in units.tolist()])
        assert (got == want).all(), units[got != want]
