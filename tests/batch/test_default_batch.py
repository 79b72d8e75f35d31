"""A BatchContext loses nothing a module reads: row i rebuilt as a ContextPack
(``BatchContext.pack``, the path a failing module falls back to row by row) gives the same
verdict as row i of the batch."""

from __future__ import annotations

import pytest

import buddy.evaluators  # noqa: F401  (registers the built-in modules)
from buddy.batch.context import from_packs
from buddy.evaluators import registry
from buddy.testing import assert_row_matches, runnable

#: The batch cases hold no trader's history, so no row has these modules' strategy or
#: behavior piece; the same check runs on the demo trader's cases in
#: tests/strategy/test_consistency_kit.py and tests/evaluators/test_behavior_nudges.py.
NEEDS_HISTORY = {"strategy_consistency", "behavior_nudges"}


@pytest.mark.parametrize("name", sorted(set(registry.available()) - NEEDS_HISTORY))
def test_rebuilt_packs_give_the_batch_results(name: str, all_cases: list) -> None:
    evaluator = registry.get(name)()
    cases = runnable(evaluator, all_cases)[::4]  # every family of cases, a quarter of them
    ctx = from_packs([i for i, _ in cases], [p for _, p in cases])
    batch = evaluator.evaluate_batch(ctx)
    assert len(batch) == ctx.n > 10
    for i in range(ctx.n):
        assert_row_matches(batch, i, evaluator.evaluate(ctx.intent(i), ctx.pack(i)),
                           label=f"{name} row {i}")


# The real cases (~440 packs built one by one) are a session fixture: one worker builds them.
pytestmark = pytest.mark.xdist_group("batch_cases")
