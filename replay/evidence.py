"""Evidence rendered on demand from a replay's typed fact columns.

A replay stores each issue's facts as typed columns (``buddy.store.replay_facts``), not as a
JSON string per row. When a person asks for an issue's evidence, ``render_evidence`` writes
it back exactly as the module emitted it (``buddy.batch.result.issue_evidence_json``: the
same bytes), and ``evidence_facts`` gives the Facts themselves, for the report's phrasing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from buddy.domain import Fact
from buddy.store import Store


def _missing(value: Any) -> bool:
    """Return True for a SQL NULL as a frame gives it (None, NaN, pd.NA or masked)."""
    return value is None or value is pd.NA or value is np.ma.masked or (
        isinstance(value, float) and math.isnan(value))


def _text(value: Any) -> str:
    """Return the JSON text of a stored float (null when missing)."""
    if _missing(value):
        return "null"
    return float.__repr__(float(value))


def _part(numbers: Sequence[Any] | None, texts: Sequence[Any] | None, k: int) -> str:
    """Return fact ``k``'s value (or threshold) as JSON text: its stored text when it is not
    a float (re-encoded as Python writes it), else the float, else null."""
    if texts is not None and not _missing(texts[k]):
        return json.dumps(json.loads(texts[k]), sort_keys=True)
    if numbers is None:
        return "null"
    return _text(numbers[k])


def _listed(value: Any) -> Sequence[Any] | None:
    if _missing(value):
        return None
    if isinstance(value, np.ma.MaskedArray):  # a list column with NULL elements
        return value.tolist()
    return list(value)


def render_one(names: Sequence[str], units: Sequence[str], values: Sequence[Any] | None,
               value_json: Sequence[Any] | None, thresholds: Sequence[Any] | None,
               threshold_json: Sequence[Any] | None) -> str:
    """Return one issue's evidence JSON from its typed facts."""
    parts = []
    for k, name in enumerate(names):
        parts.append(f'{{"name": {json.dumps(name)}, "threshold": '
                     f'{_part(thresholds, threshold_json, k)}, "unit": {json.dumps(units[k])}, '
                     f'"value": {_part(values, value_json, k)}}}')
    return "[" + ", ".join(parts) + "]"


def _first_listed(own: Any, declared: Any) -> Sequence[Any]:
    """Return the issue's own list when it has one, else the code's declared one."""
    listed = _listed(own)
    return listed if listed is not None else (_listed(declared) or [])


def render_evidence(facts: pd.DataFrame) -> np.ndarray:
    """Return the evidence JSON of each row of ``facts`` (``buddy.store.replay_facts
    .issue_facts`` rows), as the module emitted it."""
    out = []
    for row in facts.itertuples(index=False):
        names = _first_listed(row.fact_names, row.declared_names)
        units = _first_listed(row.fact_units, row.declared_units)
        out.append(render_one(names, units, _listed(row.fact_values), _listed(row.fact_json),
                              _listed(row.fact_thresholds), _listed(row.threshold_json)))
    return np.asarray(out, dtype=object)


def evidence_facts(evidence_json: str) -> tuple[Fact, ...]:
    """Return the Facts of one issue's evidence JSON."""
    return tuple(Fact(name=d["name"], value=d["value"], unit=d["unit"],
                      threshold=d["threshold"]) for d in json.loads(evidence_json))


#: The facts of the orchestrator's own items, by code (``buddy.orchestrator``).
ORCHESTRATOR_FACTS: dict[str, tuple[str, ...]] = {
    "CONTEXT_MISSING": ("module_name", "piece", "reason"),
    "MODULE_ERROR": ("module_name", "error_type", "error_message"),
}


def declared_facts(module: str, code: str) -> tuple[list[str], list[str]] | None:
    """Return the names and units ``code`` of ``module`` declares for its evidence, in order
    (an orchestrator item's facts are labels); None when the module is not registered here
    (its issues then keep their own names and units)."""
    from buddy.evaluators import registry

    if code in ORCHESTRATOR_FACTS:
        names = list(ORCHESTRATOR_FACTS[code])
        return names, [""] * len(names)
    try:
        spec = registry.get(module).codes.get(code)
    except KeyError:
        return None
    if spec is None:
        return None
    return [e.name for e in spec.evidence], [e.unit for e in spec.evidence]


def explain_intent(store: Store, run_id: str, intent_id: str) -> dict[str, Any]:
    """Return one replayed intent as a person reads it: the intent, its verdict, score and
    outcome, and every issue its modules raised with the evidence rendered from the stored
    facts (each fact's words, value, unit and threshold, and the code's safe phrasing when
    its template can be filled from the evidence). Raises ReplayError for an unknown run or
    intent."""
    from buddy.domain import Issue, Mitigation, Severity
    from buddy.evaluators import registry
    from buddy.explain import fact_text, render_issue
    from buddy.orchestrator import ORCHESTRATOR_TEMPLATES
    from replay.engine import ReplayError, issues_frame, results_frame

    results = results_frame(store, run_id)
    match = results[results["intent_id"] == intent_id]
    if match.empty:
        raise ReplayError(f"run {run_id} has no evaluated intent {intent_id!r}")
    result = match.iloc[0]
    issues = issues_frame(store, run_id, evidence=True)
    issues = issues[issues["intent_id"] == intent_id]
    shown = []
    for row in issues.itertuples(index=False):
        issue = Issue(module=row.module, code=row.code, severity=Severity(row.severity),
                      evidence=evidence_facts(row.evidence_json), mitigation=Mitigation(
                          action=""))
        try:
            templates = registry.get(row.module).templates
        except KeyError:
            templates = {}
        template = {**ORCHESTRATOR_TEMPLATES, **templates}.get(row.code)
        rendered = render_issue(issue, template)
        shown.append({"module": row.module, "code": row.code, "severity": row.severity,
                      "title": rendered.title, "explanation": rendered.explanation,
                      "evidence": [fact_text(f) for f in issue.evidence],
                      "facts": json.loads(row.evidence_json)})
    scores = {c.removeprefix("score__"): _plain(result[c]) for c in results.columns
              if str(c).startswith("score__")}
    return {"run_id": run_id, "intent_id": intent_id,
            "intent": {k: _plain(result[k]) for k in ("symbol", "timeframe", "side", "as_of")},
            "verdict": str(result["overall_severity"]),
            "overall_score": _plain(result["overall_score"]), "module_scores": scores,
            "outcome": {k: _plain(result[k]) for k in ("exit_reason", "realized_r", "win")},
            "issues": shown}


def _plain(value: Any) -> Any:
    """Return a JSON-ready scalar (None for a missing value, ISO text for a time)."""
    if _missing(value) or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value.item() if hasattr(value, "item") else value
