"""The default batch form (row by row on packs rebuilt from the columns) equals the scalar
form: proves ``from_packs`` -> ``BatchContext.pack`` loses nothing a module reads."""

from __future__ import annotations

import pytest

import buddy.evaluators  # noqa: F401  (registers the built-in modules)
from buddy.batch.result import BatchResult
from buddy.evaluators import registry
from buddy.evaluators.base import Evaluator
from buddy.testing import assert_batch_matches_scalar


@pytest.mark.parametrize("name", sorted(registry.available()))
def test_rebuilt_packs_give_the_scalar_results(name: str, all_cases: list) -> None:
    evaluator = registry.get(name)()
    default = Evaluator.evaluate_batch.__get__(evaluator)  # the row-by-row base form

    class RowByRow:  # the evaluator with its own batch form bypassed
        def __getattr__(self, attr: str) -> object:
            return getattr(evaluator, attr)

        def evaluate_batch(self, ctx):  # type: ignore[no-untyped-def]
            return default(ctx)

    result = assert_batch_matches_scalar(RowByRow(), all_cases)  # type: ignore[arg-type]
    assert isinstance(result, BatchResult) and len(result) > 10
