"""One contract, every registered evaluator: the public kit (``buddy.testing.check_evaluator``)
on the real-data cases and the factory edge cases, and the orchestrator's skip of a module
whose required piece is missing (the kit checks modules, not the orchestrator)."""

from __future__ import annotations

import pytest

from buddy.domain import ModuleStatus
from buddy.evaluators import available
from buddy.orchestrator import run_module
from buddy.testing import REMOVED, check_evaluator, sample_cases, without
from tests.evaluator_cases import contract_cases

# one worker builds the kit's real-data store once for this file and the kit's own tests
pytestmark = pytest.mark.xdist_group("evaluator_kit")

EVALUATORS = sorted(available())
#: Modules whose required piece the kit's store cannot give (it holds no trades): their
#: contract runs on the demo trader's store in their own test file.
KIT_CANNOT_REACH = {"strategy_consistency",  # tests/strategy/test_consistency_kit.py
                    "behavior_nudges"}  # tests/evaluators/test_behavior_nudges.py


@pytest.mark.parametrize("name", sorted(set(EVALUATORS) - KIT_CANNOT_REACH))
def test_keeps_the_contract(name: str) -> None:
    report = check_evaluator(available()[name], cases=[*sample_cases(), *contract_cases()])
    # the cases reach the module: rows ran, issues fired, point-in-time pairs compared
    assert report.rows >= 20 and sum(report.issues.values()) > 0
    assert report.point_in_time_rows >= 10


@pytest.mark.parametrize("name", EVALUATORS)
def test_skipped_with_the_reason_when_a_required_piece_is_missing(name: str) -> None:
    evaluator = available()[name]()
    for intent, ctx in contract_cases():
        for piece in evaluator.requires:
            result = run_module(evaluator, intent, without(ctx, [piece]))
            assert result.status is ModuleStatus.SKIPPED
            assert result.missing[piece] == REMOVED
