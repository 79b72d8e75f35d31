"""Typed facts (what Evaluator.fire hands the replay writer) say what the evidence JSON says."""

from __future__ import annotations

import numpy as np

from buddy.batch.result import (
    BatchResult,
    FactColumn,
    IssueBlock,
    evidence_json,
    fact_table,
    facts_from_json,
    issue_columns,
    render_facts,
)
from buddy.domain import Severity


def _facts(n: int) -> list[FactColumn]:
    rng = np.random.default_rng(7)
    floats = rng.normal(size=n) * 10.0 ** rng.integers(-8, 18, n)
    floats[[3, 7, 9]] = [np.nan, np.inf, -0.0]
    ints = rng.integers(-5, 10**9, n)
    labels = np.array(["a%s", 'q"uote', None, "ünï", "x"] * (n // 5), dtype=object)
    mixed = np.array([1, 1.0, True, "1", None] * (n // 5), dtype=object)
    units = np.array(["USD", "EUR", None, "x", "y"] * (n // 5), dtype=object)
    nested = np.empty(n, dtype=object)
    for i in range(n):
        nested[i] = [1, 2.5, {"b": i, "a": None}]
    return [FactColumn("f", floats, "R", 2.0), FactColumn("i", ints, "bars", floats),
            FactColumn("label", labels, units), FactColumn("mixed", mixed, "%", None),
            FactColumn("flag", rng.random(n) < 0.5, "", "thr"),
            FactColumn("const", 2.5, "ATR", np.nan), FactColumn("nested", nested, "", 3)]


def test_typed_facts_are_the_parsed_json_and_render_it_byte_for_byte() -> None:
    n = 500
    facts = _facts(n)
    emitted = evidence_json(facts, n)
    typed = fact_table(facts, n)
    assert typed.equals(facts_from_json(emitted))
    assert render_facts(typed).tolist() == emitted.tolist()
    # many rows sharing few distinct facts: each distinct set is encoded once
    shared = [FactColumn("module_name", "mtfa"), FactColumn(
        "reason", np.array(["no bars", None, 'a "b"'] * 500, dtype=object), "",
        np.array([1.5, np.nan, 2.0] * 500))]
    assert fact_table(shared, 1500).equals(facts_from_json(evidence_json(shared, 1500)))
    assert render_facts(fact_table(shared, 1500)).tolist() == evidence_json(
        shared, 1500).tolist()
    for few in ([], [FactColumn("c", None, None, "x"), FactColumn("d", 3, "u", 1)]):
        assert fact_table(few, 3).equals(facts_from_json(evidence_json(few, 3)))
        assert render_facts(fact_table(few, 3)).tolist() == evidence_json(few, 3).tolist()


def test_typed_and_json_blocks_give_the_same_rows_and_takes() -> None:
    n = 10
    facts = _facts(n)
    rows = np.arange(n)
    typed = [IssueBlock("A", rows, Severity.HIGH, fact_table(facts, n)),
             IssueBlock("B", rows[::3], Severity.LOW, fact_table(facts[:2], n).take(rows[::3]))]
    plain = [IssueBlock("A", rows, Severity.HIGH, evidence_json(facts, n)),
             IssueBlock("B", rows[::3], Severity.LOW, evidence_json(facts[:2], n)[::3])]
    assert "facts" in issue_columns(typed) and "evidence_json" in issue_columns(plain)
    one = BatchResult.of_blocks("m", "1", n, typed)
    other = BatchResult.of_blocks("m", "1", n, plain)
    assert one.issues.equals(other.issues)
    for i in (0, 3, 9):
        assert one.row(i) == other.row(i)
    pick = np.array([9, 0, 9, 3])
    assert one.take(pick).issues.equals(other.take(pick).issues)
    assert one.take(pick).n_issues.tolist() == [2, 2, 2, 2]
