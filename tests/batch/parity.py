"""The row-independence check every module passes: a batch of N says, row by row, what N
batches of one say.

``assert_batch_matches_scalar(evaluator, cases)`` runs ``evaluator.evaluate`` (a batch of one)
on each (intent, pack) and ``evaluator.evaluate_batch`` once on ``from_packs`` of all of them,
and requires the same verdicts row by row: status, severity, issue codes and severities in the
same order, scores and every evidence number equal (floats to 1e-9 relative), strings, ints,
bools and nulls exactly. It catches rows leaking into each other (shared keys, misaligned
masks) and the fast builder's columns differing from the packs'.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from buddy.batch.context import BatchContext, from_packs
from buddy.batch.result import BatchResult, issue_evidence_json
from buddy.context.pack import ContextPack
from buddy.domain import EvaluationResult, TradeIntent
from buddy.evaluators.base import Evaluator

REL = 1e-9
ABS = 1e-12


def runnable(evaluator: Evaluator, cases: Sequence[tuple[TradeIntent, ContextPack]]
             ) -> list[tuple[TradeIntent, ContextPack]]:
    """Return the cases whose packs hold every piece ``evaluator`` requires."""
    return [(i, p) for i, p in cases if not p.missing_pieces(evaluator.requires)]


def assert_batch_matches_scalar(evaluator: Evaluator,
                                cases: Sequence[tuple[TradeIntent, ContextPack]],
                                ctx: BatchContext | None = None) -> BatchResult:
    """Assert the batch form equals the scalar form on ``cases``; return the batch result.

    ``ctx``: the BatchContext to run the batch form on (default: ``from_packs`` of the cases;
    the engine tests pass one from the fast builder).
    """
    cases = runnable(evaluator, cases)
    assert cases, f"{evaluator.name}: no case holds its required pieces"
    intents = [i for i, _ in cases]
    scalar = [evaluator.evaluate(i, p) for i, p in cases]
    batch = evaluator.evaluate_batch(ctx if ctx is not None else from_packs(
        intents, [p for _, p in cases]))
    assert len(batch) == len(cases)
    for row, (intent, expected) in enumerate(zip(intents, scalar, strict=True)):
        assert_row_matches(batch, row, expected, label=f"{evaluator.name} {intent.intent_id}")
    return batch


def scalar_codes(evaluator: Evaluator, cases: Sequence[tuple[TradeIntent, ContextPack]]
                 ) -> set[str]:
    """Return the issue codes the scalar form emits on ``cases``."""
    return {issue.code for intent, pack in runnable(evaluator, cases)
            for issue in evaluator.evaluate(intent, pack).issues}


def assert_batch_covers_scalar(evaluator: Evaluator,
                               cases: Sequence[tuple[TradeIntent, ContextPack]]) -> BatchResult:
    """Assert parity on ``cases`` and that every code the scalar form emits fired in batch
    (so the cases exercise each code's batch path); return the batch result."""
    batch = assert_batch_matches_scalar(evaluator, cases)
    assert scalar_codes(evaluator, cases) <= set(batch.issues["code"])
    return batch


def assert_row_matches(batch: BatchResult, row: int, expected: EvaluationResult, *,
                       label: str) -> None:
    """Assert row ``row`` of ``batch`` says what ``expected`` says."""
    assert batch.module == expected.module, label
    assert batch.status[row] == expected.status.value, label
    assert batch.severity[row] == expected.severity.value, (
        f"{label}: severity {batch.severity[row]} != {expected.severity.value}")
    assert_number(batch.score[row], expected.score, f"{label}: score")
    issues = batch.issues[batch.issues["row"] == row]
    got = list(zip(issues["code"], issues["severity"], strict=True))
    want = [(i.code, i.severity.value) for i in expected.issues]
    assert got == want, f"{label}: issues {got} != {want}"
    for (_, issue), want_issue in zip(issues.iterrows(), expected.issues, strict=True):
        assert_evidence(issue["evidence_json"], issue_evidence_json(want_issue.evidence),
                        f"{label} {want_issue.code}")


def assert_evidence(got_json: str, want_json: str, label: str) -> None:
    """Assert two evidence JSON strings hold the same facts (floats to 1e-9)."""
    got, want = json.loads(got_json), json.loads(want_json)
    assert [f["name"] for f in got] == [f["name"] for f in want], (
        f"{label}: facts {got_json} != {want_json}")
    for g, w in zip(got, want, strict=True):
        assert g["unit"] == w["unit"], f"{label}: {g} != {w}"
        for key in ("value", "threshold"):
            assert_value(g[key], w[key], f"{label} {w['name']}.{key}: {g} != {w}")


def assert_value(got: Any, want: Any, label: str) -> None:
    if isinstance(want, float) and not isinstance(got, bool):
        # a float that happens to be integral must still be written as a float
        assert isinstance(got, float), f"{label} (type {type(got).__name__})"
        assert math.isclose(got, want, rel_tol=REL, abs_tol=ABS), label
    else:
        assert type(got) is type(want) and got == want, label


def assert_number(got: float, want: float | None, label: str) -> None:
    if want is None:
        assert math.isnan(got), f"{label}: {got} != None"
    else:
        assert math.isclose(got, want, rel_tol=REL, abs_tol=ABS), f"{label}: {got} != {want}"
