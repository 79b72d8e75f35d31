"""exit_plan's batch form equals its scalar form, row by row.

On the real cases (``all_cases``) under the default config and stricter ones, and on variants
of them whose accounts hold exit templates (the real replay user has none): templates that
fill in a missing target or time stop, partial exits that do not split the size, unknown and
empty template names, and values typed as ints where the scalar evidence keeps ints.
"""

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
from buddy.domain import TradeIntent
from buddy.evaluators.base import Evaluator
from buddy.evaluators.exit_plan import ExitPlanEvaluator
from buddy.users.model import AccountContext, ExitTemplate, PartialExit, RiskRules
from tests.batch.parity import assert_batch_matches_scalar, runnable

Case = tuple[TradeIntent, ContextPack]

#: Configs the parity runs under: the default, a strict one under which most codes fire on
#: the real cases, and one whose thresholds are typed unusually (an int reach_k, float bars).
CONFIGS: dict[str, dict[str, Any]] = {
    "default": {},
    "strict": dict(reach_k=0.5, min_horizon_bars=5, max_horizon_bars_1d=20,
                   max_horizon_bars_1h=10, template_target_tolerance_r=0.0,
                   template_horizon_tolerance_pct=0.0),
    "odd_types": dict(reach_k=1, min_horizon_bars=2.0, max_horizon_bars_1d=30.0,
                      max_horizon_bars_1h=48, template_target_tolerance_r=1,
                      template_horizon_tolerance_pct=10),
}

CODES = frozenset(ExitPlanEvaluator.templates)

TEMPLATES = (
    ExitTemplate(name="swing", target_r=2.0, time_stop_bars=10,
                 partials=(PartialExit(at_r=1.0, fraction=0.5),)),
    ExitTemplate(name="ints", target_r=3, time_stop_bars=20),
    ExitTemplate(name="bare"),
    ExitTemplate(name="over", target_r=1.5,
                 partials=(PartialExit(at_r=1.0, fraction=0.6),
                           PartialExit(at_r=2.0, fraction=0.6))),
    ExitTemplate(name="thirds", time_stop_bars=5,
                 partials=tuple(PartialExit(at_r=r, fraction=1 / 3) for r in (1.0, 2.0, 3.0))),
    ExitTemplate(name="zero", target_r=2.5, time_stop_bars=0,
                 partials=(PartialExit(at_r=1.0, fraction=0.0),
                           PartialExit(at_r=2.0, fraction=0.25))),
    ExitTemplate(name="float_stop", target_r=1.75, time_stop_bars=7.0),  # type: ignore[arg-type]
)

#: Intent changes each base case is varied by (None: the field is dropped).
VARIANTS: tuple[dict[str, Any], ...] = (
    {},
    dict(proposed_stop=None, proposed_target=None, holding_horizon=None),
    dict(proposed_target=None, holding_horizon=None),
    dict(proposed_target=None, exit_template="swing", proposed_size=33.0),
    dict(holding_horizon=None, exit_template="ints", proposed_size=1_500.0),
    dict(proposed_target=None, holding_horizon=None, exit_template="bare"),
    dict(exit_template="over", holding_horizon=400),
    dict(proposed_target=None, holding_horizon=None, exit_template="thirds",
         proposed_size=1_000.0),
    dict(holding_horizon=None, exit_template="zero", proposed_size=4_000.0),
    dict(proposed_target=None, holding_horizon=None, exit_template="float_stop"),
    dict(holding_horizon=13, exit_template="swing"),
    dict(exit_template="no_such_template"),
    dict(exit_template="", holding_horizon=None),
)


def accounts(base: AccountContext) -> list[AccountContext]:
    """Variants of ``base``: every template with a default one, an int min_reward_risk and no
    stop rule; no templates but a default name; one template and no default."""
    return [
        dataclasses.replace(base, exit_templates=TEMPLATES, rules=RiskRules(
            default_exit_template="swing", stop_required=False, min_reward_risk=2)),
        dataclasses.replace(base, exit_templates=(), rules=RiskRules(
            default_exit_template="missing")),
        dataclasses.replace(base, exit_templates=TEMPLATES[1:2], rules=RiskRules()),
    ]


@pytest.fixture(scope="module")
def template_cases(all_cases: list[Case]) -> list[Case]:
    """Every VARIANT of a spread of real cases (each symbol) and the contract's full pack,
    under each account of ``accounts``."""
    bases = [c for c in all_cases[::37] if c[1].account is not None]
    assert {p.symbol for _, p in bases} >= {"AAPL", "MSFT", "EURUSD"}
    cases = []
    for n, (intent, pack) in enumerate(bases):
        for a, account in enumerate(accounts(pack.account)):
            varied_pack = dataclasses.replace(pack, account=account)
            for v, change in enumerate(VARIANTS):
                cases.append((dataclasses.replace(intent, intent_id=f"t{n}-{a}-{v}", **change),
                              varied_pack))
    return cases


def scalar_codes(evaluator: Evaluator, cases: list[Case]) -> Counter[str]:
    """Issues per code the scalar form emits on ``cases``."""
    return Counter(issue.code for intent, pack in runnable(evaluator, cases)
                   for issue in evaluator.evaluate(intent, pack).issues)


def test_the_module_has_its_own_batch_form() -> None:
    assert "evaluate_batch" in ExitPlanEvaluator.__dict__
    assert ExitPlanEvaluator.evaluate_batch is not Evaluator.evaluate_batch


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_batch_matches_scalar_on_the_real_cases(config: str, all_cases: list[Case]) -> None:
    evaluator = ExitPlanEvaluator(CONFIGS[config])
    batch = assert_batch_matches_scalar(evaluator, all_cases)
    fired = Counter(batch.issues["code"])
    assert set(scalar_codes(evaluator, all_cases)) <= set(fired)
    assert len(batch) == len(runnable(evaluator, all_cases)) > 400


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_batch_matches_scalar_with_exit_templates(config: str,
                                                  template_cases: list[Case]) -> None:
    evaluator = ExitPlanEvaluator(CONFIGS[config])
    batch = assert_batch_matches_scalar(evaluator, template_cases)
    want = scalar_codes(evaluator, template_cases)
    assert Counter(batch.issues["code"]) == want
    assert set(want) == CODES  # every code fires on these cases


def test_every_code_fires_on_the_real_cases_under_the_strict_config(
        all_cases: list[Case]) -> None:
    evaluator = ExitPlanEvaluator(CONFIGS["strict"])
    fired = Counter(evaluator.evaluate_batch(from_packs(
        [i for i, _ in all_cases], [p for _, p in all_cases])).issues["code"])
    assert set(fired) == CODES
    assert fired["TARGET_BEYOND_REACH"] > 100 and fired["HORIZON_INCONSISTENT"] > 10


def test_taken_rows_give_the_same_results(all_cases: list[Case]) -> None:
    """Rows taken in another order, repeated (as a large replay repeats packs), give each
    row's own result; no rows give none."""
    evaluator = ExitPlanEvaluator(CONFIGS["strict"])
    ctx = from_packs([i for i, _ in all_cases], [p for _, p in all_cases])
    rows = np.resize(np.arange(ctx.n)[::-1], 3 * ctx.n)
    whole = evaluator.evaluate_batch(ctx)
    taken = evaluator.evaluate_batch(ctx.take(rows))
    assert np.array_equal(taken.score, whole.score[rows])
    assert list(taken.severity) == list(whole.severity[rows])
    per_row = {row: list(map(tuple, group.drop(columns="row").to_numpy().tolist()))
               for row, group in whole.issues.groupby("row")}
    for row, group in taken.issues.groupby("row"):
        assert list(map(tuple, group.drop(columns="row").to_numpy().tolist())) == (
            per_row[rows[row]])
    assert set(taken.issues["row"]) == {j for j, r in enumerate(rows) if r in per_row}
    assert len(evaluator.evaluate_batch(ctx.take([]))) == 0


def test_a_row_the_scalar_form_cannot_take_makes_the_batch_form_raise(
        template_cases: list[Case]) -> None:
    """A negative time stop makes ``evaluate`` raise (square root): the batch form raises too,
    so the orchestrator runs the module row by row and reports that row's error."""
    intent, pack = template_cases[0]
    broken = dataclasses.replace(pack, account=dataclasses.replace(
        pack.account, exit_templates=(ExitTemplate(name="neg", time_stop_bars=-3),)))
    intent = dataclasses.replace(intent, holding_horizon=None, exit_template="neg")
    evaluator = ExitPlanEvaluator()
    with pytest.raises(ValueError):
        evaluator.evaluate(intent, broken)
    with pytest.raises(ValueError):
        evaluator.evaluate_batch(from_packs([intent], [broken]))


def test_round_array_is_pythons_round() -> None:
    rng = np.random.default_rng(3)
    ties = np.array([0.00005, 1.00005, 2.00015, 2.675, 1.23455, 123.45675, 0.123456785,
                     -2.00015, 1e13 + 0.12345, 3e15, 5e-324, 0.0, -0.0])
    values = np.concatenate([ties, rng.uniform(-1e3, 1e3, 20_000),
                             np.round(rng.uniform(0, 100, 20_000), 5),
                             [math.nan, math.inf, -math.inf]])
    got = py_round(values, 4)
    want = np.array([round(v, 4) if math.isfinite(v) else v for v in values.tolist()])
    same = (got == want) | (np.isnan(got) & np.isnan(want))
    assert same.all(), values[~same]
