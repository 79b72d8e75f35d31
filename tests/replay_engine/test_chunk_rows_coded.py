"""A chunk's rows are the same whether the report's text columns come as objects or coded
(pandas Categoricals: encoded by their categories, not row by row)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from buddy.batch.result import FactColumn, fact_refs
from replay.engine import Numbering, ReplayError, _chunk_rows

NUMBERING = Numbering(modules=("risk", "levels"), versions=("1", "1"),
                      codes=(("risk", "CONTEXT_MISSING"), ("risk", "TOO_BIG"),
                             ("levels", "CONTEXT_MISSING"), ("levels", "NEAR_LEVEL")),
                      declared=((["size"], ["shares"]), (["size"], ["shares"]),
                                (["price"], ["price"]), (["price"], ["price"])))


def _report(coded: bool) -> dict[str, Any]:
    """Three intents' report columns, the text as objects or as Categoricals (with an unused
    category, and in an order of their own)."""
    def text(values: list[str], categories: list[str]) -> Any:
        array = np.array(values, dtype=object)
        return pd.Categorical(array, categories=categories) if coded else array

    issues = 4
    return dict(
        overall_score=np.array([50.0, 80.0, 95.0]),
        verdict=text(["high", "low", "info"], ["info", "low", "high", "critical"]),
        n_issues=np.array([2, 1, 1]),
        modules={"row": np.array([0, 0, 1, 2, 2]),
                 "module": text(["risk", "levels", "levels", "risk", "levels"],
                                ["levels", "risk", "unused"]),
                 "status": text(["ok", "ok", "skipped", "ok", "ok"], ["skipped", "ok"]),
                 "score": np.array([40.0, 60.0, 50.0, 100.0, 90.0]),
                 "severity": text(["high", "low", "low", "info", "low"],
                                  ["low", "high", "info"]),
                 "n_issues": np.array([1, 1, 1, 0, 1])},
        issues={"row": np.array([0, 0, 1, 2]), "issue_no": np.array([0, 0, 0, 0]),
                "module": text(["risk", "levels", "levels", "levels"], ["levels", "risk"]),
                "code": text(["TOO_BIG", "NEAR_LEVEL", "CONTEXT_MISSING", "NEAR_LEVEL"],
                             ["NEAR_LEVEL", "CONTEXT_MISSING", "TOO_BIG"]),
                "severity": text(["high", "low", "low", "low"], ["low", "high"]),
                "facts": fact_refs([FactColumn("size", np.arange(issues) * 1.5)], issues)})


def test_coded_text_gives_the_rows_objects_give() -> None:
    plain = _chunk_rows(0, np.array([7, 8, 9]), NUMBERING, elapsed_s=0.0, **_report(False))
    coded = _chunk_rows(0, np.array([7, 8, 9]), NUMBERING, elapsed_s=0.0, **_report(True))
    assert coded.results.equals(plain.results)
    assert coded.issues.equals(plain.issues)
    assert coded.facts is not None and plain.facts is not None
    assert coded.facts.equals(plain.facts)
    assert plain.issues.column("code_no").to_pylist() == [1, 3, 2, 3]
    assert plain.results.column("verdict").to_pylist() == [3, 1, 0]


def test_a_coded_value_outside_the_vocabulary_is_refused_by_name() -> None:
    report = _report(True)
    report["modules"]["status"] = pd.Categorical(["ok", "ok", "lost", "ok", "ok"])
    with pytest.raises(ReplayError, match="module status: 'lost'"):
        _chunk_rows(0, np.array([7, 8, 9]), NUMBERING, elapsed_s=0.0, **report)
    report = _report(True)
    report["issues"]["code"] = pd.Categorical(["TOO_BIG", "NEAR_LEVEL", "TOO_BIG",
                                               "NEAR_LEVEL"])
    with pytest.raises(ReplayError, match="issue code 'TOO_BIG' of module 'levels'"):
        _chunk_rows(0, np.array([7, 8, 9]), NUMBERING, elapsed_s=0.0, **report)
