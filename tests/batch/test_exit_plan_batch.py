"""ExitPlan over columns: a batch of N says what N batches of one say, and the column form
says what the plain rules (tests/evaluators/oracles/exit_plan.py) say.

On the real cases (``all_cases``) under the default config and stricter ones, and on variants
of them whose accounts hold exit templates (the real replay user has none): templates that
fill in a missing target or time stop, partial exits that do not split the size, unknown and
empty template names, a zero time stop, numbers typed as ints.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from buddy.batch.context import from_packs
from buddy.context.pack import ContextPack
from buddy.domain import Fact, TradeIntent
from buddy.evaluators.exit_plan import ExitPlanConfig, ExitPlanEvaluator
from buddy.testing import assert_rows_match_batches_of_one, runnable
from buddy.users.model import AccountContext, ExitTemplate, PartialExit, RiskRules
from tests.evaluators.oracles.exit_plan import scan

Case = tuple[TradeIntent, ContextPack]

#: Configs the tests run under: the default, a strict one under which most codes fire on the
#: real cases, and one whose float thresholds are given as ints.
CONFIGS: dict[str, dict[str, Any]] = {
    "default": {},
    "strict": dict(reach_k=0.5, min_horizon_bars=5, max_horizon_bars_1d=20,
                   max_horizon_bars_1h=10, template_target_tolerance_r=0.0,
                   template_horizon_tolerance_pct=0.0, compare_default_template=True,
                   partial_rounding_tolerance_pct=0.0),
    "odd_types": dict(reach_k=1, min_horizon_bars=2, max_horizon_bars_1d=30,
                      max_horizon_bars_1h=48, template_target_tolerance_r=1,
                      template_horizon_tolerance_pct=10),
}

CODES = frozenset(ExitPlanEvaluator.codes)

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
        assert isinstance(pack.account, AccountContext)
        for a, account in enumerate(accounts(pack.account)):
            varied_pack = dataclasses.replace(pack, account=account)
            for v, change in enumerate(VARIANTS):
                cases.append((dataclasses.replace(intent, intent_id=f"t{n}-{a}-{v}", **change),
                              varied_pack))
    return cases


def test_a_batch_equals_its_batches_of_one(all_cases: list[Case],
                                          template_cases: list[Case]) -> None:
    """Row independence needs no more than a sample (the oracle test reads every row)."""
    fired: set[str] = set()
    for config, step in (("default", 2), ("strict", 4), ("odd_types", 6)):
        evaluator = ExitPlanEvaluator(CONFIGS[config])
        for cases in (all_cases[::3 * step // 2], template_cases[::step]):
            batch = assert_rows_match_batches_of_one(evaluator, cases)
            fired |= set(batch.issues["code"])
    assert fired == CODES, CODES - fired


def test_the_column_form_says_what_the_plain_rules_say(all_cases: list[Case],
                                                       template_cases: list[Case]) -> None:
    digits = {e.name: e.digits for spec in ExitPlanEvaluator.codes.values()
              for e in (*spec.evidence, *spec.action_facts)}
    digits.update({e.name: e.digits for e in ExitPlanEvaluator.explain})
    for config in sorted(CONFIGS):
        evaluator = ExitPlanEvaluator(CONFIGS[config])
        cfg = ExitPlanConfig.from_mapping(CONFIGS[config])
        cases = runnable(evaluator, [*all_cases, *template_cases])
        batch = evaluator.evaluate_batch(from_packs([i for i, _ in cases],
                                                    [p for _, p in cases]))
        fired: dict[str, int] = {}
        for row, (intent, pack) in enumerate(cases):
            got = batch.row(row)
            want, explain = scan(intent, pack, cfg)
            label = f"{config} {intent.intent_id}"
            assert [(i.code, i.severity) for i in got.issues] == [(c, s) for c, s, _ in want], (
                label)
            for issue, (code, _, facts) in zip(got.issues, want, strict=True):
                have = {f.name: f for f in (*issue.evidence, *issue.mitigation.facts)}
                assert set(have) == set(facts), (label, code)
                for name, (value, unit) in facts.items():
                    assert have[name].unit == unit, (label, code, name)
                    assert_close(have[name], value, digits.get(name), f"{label} {code}")
                fired[code] = fired.get(code, 0) + 1
            assert {f.name for f in got.explain_facts} == set(explain), label
            for fact in got.explain_facts:
                assert_close(fact, explain[fact.name], digits.get(fact.name), label)
        assert set(fired) == CODES, (config, CODES - set(fired))
        if config == "strict":
            assert fired["TARGET_BEYOND_REACH"] > 100 and fired["HORIZON_INCONSISTENT"] > 10


def assert_close(fact: Fact, want: Any, digits: int | None, label: str) -> None:
    """Assert ``fact`` holds ``want`` rounded to the declared ``digits`` (a whole float may
    read as an int: bars and counts are written as ints)."""
    if isinstance(want, float) and not (want.is_integer() and type(fact.value) is int):
        assert isinstance(fact.value, float), (label, fact, want)
        rounding = 0.5 * 10.0 ** -digits if digits is not None else 0.0
        assert abs(fact.value - want) <= rounding + 1e-9 * max(1.0, abs(want)), (
            label, fact, want)
    else:
        assert fact.value == want, (label, fact, want)


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


@pytest.mark.parametrize(("template", "field"), [
    (ExitTemplate(name="bad", time_stop_bars=-3), "time_stop_bars"),
    (ExitTemplate(name="bad", time_stop_bars=2.5), "time_stop_bars"),  # type: ignore[arg-type]
    (ExitTemplate(name="bad", target_r=float("nan")), "target_r"),
    (ExitTemplate(name="bad", partials=(PartialExit(at_r=1.0, fraction=float("inf")),)),
     "partials.fraction")])
def test_a_template_the_checks_cannot_use_is_refused(template: ExitTemplate, field: str,
                                                     template_cases: list[Case]) -> None:
    """A row whose template holds a number the checks cannot use makes the module raise,
    naming the template and the field, so the orchestrator reports that row's error."""
    intent, pack = template_cases[0]
    assert pack.account is not None
    broken = dataclasses.replace(pack, account=dataclasses.replace(
        pack.account, exit_templates=(template,)))
    intent = dataclasses.replace(intent, holding_horizon=None, exit_template="bad")
    with pytest.raises(ValueError, match=f"'bad': {field} must be"):
        ExitPlanEvaluator().evaluate(intent, broken)


# The real cases (~440 packs built one by one) are a session fixture: one worker builds them.
pytestmark = pytest.mark.xdist_group("batch_cases")
