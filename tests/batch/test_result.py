"""The column-wise evidence writer and issue frames equal their one-issue-at-a-time forms."""

from __future__ import annotations

import numpy as np
import pandas as pd

from buddy.batch.result import (
    BatchResult,
    FactColumn,
    IssueBlock,
    evidence_json,
    issue_evidence_json,
    issues_frame,
)
from buddy.domain import Fact, Severity


def test_evidence_json_writes_what_json_dumps_writes_per_issue() -> None:
    rng = np.random.default_rng(1)
    n = 500
    floats = rng.normal(size=n) * 10.0 ** rng.integers(-8, 18, n)
    floats[[3, 7]] = [np.nan, np.inf]
    ints = rng.integers(-5, 10**9, n)
    labels = np.array(["a%s", 'q"uote', None, "ünï", "x"] * (n // 5), dtype=object)
    mixed = np.array([1, 1.0, True, "1", None] * (n // 5), dtype=object)
    flags = rng.random(n) < 0.5
    facts = [FactColumn("f", floats, "R", 2.0), FactColumn("i", ints, "bars", floats),
             FactColumn("label", labels), FactColumn("mixed", mixed, "%", None),
             FactColumn("flag", flags), FactColumn("const", 2.5, "ATR", np.nan)]
    got = evidence_json(facts, n)
    for row in range(n):
        want = issue_evidence_json([
            Fact(name="f", value=float(floats[row]), unit="R", threshold=2.0),
            Fact(name="i", value=int(ints[row]), unit="bars", threshold=float(floats[row])),
            Fact(name="label", value=labels[row]), Fact(name="mixed", value=mixed[row],
                                                        unit="%"),
            Fact(name="flag", value=bool(flags[row])),
            Fact(name="const", value=2.5, unit="ATR", threshold=float("nan"))])
        assert got[row] == want, row


def test_issues_come_by_row_in_block_order_and_take_may_repeat_rows() -> None:
    evidence = np.array(["[]", "[1]", "[2]"], dtype=object)
    frame = issues_frame([
        IssueBlock("B", np.array([0, 2]), Severity.HIGH, evidence[[0, 1]]),
        IssueBlock("A", np.array([2]), np.array(["low"], dtype=object), evidence[[2]]),
        IssueBlock("C", np.array([], dtype=np.int64), Severity.LOW, evidence[:0])])
    assert frame[["row", "code", "severity"]].values.tolist() == [
        [0, "B", "high"], [2, "B", "high"], [2, "A", "low"]]
    result = BatchResult.from_issues("m", "1", 3, frame)
    assert result.score.tolist() == [70.0, 100.0, 65.0]
    assert result.severity.tolist() == ["high", "info", "high"]
    taken = result.take(np.array([2, 0, 2]))
    assert taken.issues[["row", "code"]].values.tolist() == [
        [0, "B"], [0, "A"], [1, "B"], [2, "B"], [2, "A"]]
    assert taken.score.tolist() == [65.0, 70.0, 65.0]
    assert isinstance(taken.issues, pd.DataFrame) and taken.n_issues.tolist() == [2, 1, 2]


def test_evidence_of_many_rows_is_encoded_once_per_distinct_combination() -> None:
    import buddy.batch.result as result_module

    rng = np.random.default_rng(0)
    n = 5000
    value = rng.integers(0, 5, n).astype(np.float64)
    value[::7] = np.nan
    label = np.array(["a", "b", None], dtype=object)[rng.integers(0, 3, n)]
    facts = [result_module.FactColumn("x", value, "ATR", 1.5),
             result_module.FactColumn("s", label),
             result_module.FactColumn("k", rng.integers(0, 3, n), "bars",
                                      np.where(value > 2, 1.0, 2.0))]
    once = result_module.evidence_json(facts, n)
    row_by_row = np.array([result_module.evidence_json(
        [result_module.FactColumn(f.name, *(np.asarray(p)[i : i + 1]
                                            if isinstance(p, np.ndarray) else p
                                            for p in (f.value, f.unit, f.threshold)))
         for f in facts], 1)[0] for i in range(0, n, 97)], dtype=object)
    assert once[::97].tolist() == row_by_row.tolist()
    mixed = [result_module.FactColumn("m", np.array([1, True, 1.0] * 400, dtype=object))]
    assert result_module.evidence_json(mixed, 1200)[:3].tolist() == [
        '[{"name": "m", "threshold": null, "unit": "", "value": 1}]',
        '[{"name": "m", "threshold": null, "unit": "", "value": true}]',
        '[{"name": "m", "threshold": null, "unit": "", "value": 1.0}]']
