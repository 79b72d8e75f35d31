"""One contract, every registered evaluator: deterministic, pure, evidence-backed, no
predictive wording, and it reads only the context pieces it declares."""

from __future__ import annotations

import builtins
import dataclasses
import socket

import pytest

from buddy.context.pack import PIECES
from buddy.domain import ModuleStatus
from buddy.evaluators import available
from buddy.evaluators.base import check_evaluator_class
from buddy.guardrails import predictive_phrases
from buddy.orchestrator import run_module
from tests.evaluator_cases import contract_cases

EVALUATORS = sorted(available())


@pytest.mark.parametrize("name", EVALUATORS)
def test_class_is_valid(name: str) -> None:
    assert check_evaluator_class(available()[name]) == []


@pytest.mark.parametrize("name", EVALUATORS)
def test_templates_carry_no_predictive_wording(name: str) -> None:
    for code, template in available()[name].templates.items():
        for text in (template.title, template.explanation, template.mitigation):
            assert predictive_phrases(text) == [], (code, text)


@pytest.mark.parametrize("name", EVALUATORS)
def test_deterministic_and_evidence_backed(name: str) -> None:
    evaluator = available()[name]()
    cases = contract_cases()
    emitted = 0
    for intent, ctx in cases:
        first = evaluator.evaluate(intent, ctx)
        assert first == evaluator.evaluate(intent, ctx)
        assert first.status is ModuleStatus.OK
        assert first.score is not None and 0 <= first.score <= 100
        for issue in first.issues:
            emitted += 1
            assert issue.code in evaluator.templates, issue.code
            assert issue.module == name
            assert issue.evidence, f"{issue.code} has no evidence"
            assert any(isinstance(f.value, int | float) and not isinstance(f.value, bool)
                       for f in issue.evidence), f"{issue.code} has no numeric evidence"
            assert issue.mitigation.action
    assert emitted > 0, f"{name} emitted no issue on any contract case: the cases are too weak"


@pytest.mark.parametrize("name", EVALUATORS)
def test_no_io_during_evaluate(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    evaluator = available()[name]()
    cases = contract_cases()

    def refuse(*args, **kwargs):
        raise AssertionError(f"{name} attempted I/O")

    import duckdb

    monkeypatch.setattr(builtins, "open", refuse)
    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(duckdb, "connect", refuse)
    for intent, ctx in cases:
        evaluator.evaluate(intent, ctx)


@pytest.mark.parametrize("name", EVALUATORS)
def test_reads_only_declared_pieces(name: str) -> None:
    cls = available()[name]
    evaluator = cls()
    undeclared = [p for p in PIECES if p not in cls.requires | cls.optional]
    for intent, ctx in contract_cases():
        stripped = dataclasses.replace(ctx, **{p: None for p in undeclared})
        assert evaluator.evaluate(intent, stripped) == evaluator.evaluate(intent, ctx)
        for piece in cls.requires:
            without = dataclasses.replace(ctx, **{piece: None},
                                          missing={**ctx.missing, piece: "removed in test"})
            result = run_module(evaluator, intent, without)
            assert result.status is ModuleStatus.SKIPPED
            assert result.missing[piece] == "removed in test"
