"""The orchestrator over a BatchContext: every module's batch form, then the report columns.

``run_batch`` gives, for N intents, the rows ``Orchestrator.run`` + ``replay.engine
.report_rows`` give one intent at a time:

- a row's modules are the configured, enabled ones minus the user's opt-outs
  (``account.disabled_modules`` of that row);
- a module whose required piece is missing on a row is SKIPPED there with one
  CONTEXT_MISSING issue per missing piece (score NaN, severity LOW);
- each module's ``evaluate_batch`` runs on the rows it applies to; if it raises, the module
  runs row by row through ``buddy.orchestrator.run_module`` on rebuilt packs, so a failing
  row becomes a MODULE_ERROR item exactly as in the scalar path;
- overall: the weighted mean of the OK modules' scores in configured order, rounded to one
  decimal (Python's ``round``, as the scalar path); the highest severity of all issues; the
  issue count after ``dedupe`` (one per code, orchestrator items per module).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from buddy.batch.context import BatchContext
from buddy.batch.result import (
    SEVERITY_BY_RANK,
    SEVERITY_RANK,
    BatchResult,
    concat_results,
    empty_issues,
)
from buddy.domain import ModuleStatus, Severity
from buddy.evaluators.base import Evaluator
from buddy.orchestrator import ORCHESTRATOR_TEMPLATES, Orchestrator, run_module


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchReport:
    """The report columns of N intents.

    ``overall``: one row per intent (row, overall_score, overall_severity, n_issues);
    ``modules``: one row per (intent, module run) (row, module, version, status, score,
    severity, n_issues), by row then configured order; ``issues``: one row per issue (row,
    module, issue_no, code, severity, evidence_json), by row, module order, issue_no.
    """

    overall: pd.DataFrame
    modules: pd.DataFrame
    issues: pd.DataFrame
    fallbacks: tuple[str, ...] = ()  # modules that ran row by row (no batch form or it raised)


def run_batch(orchestrator: Orchestrator, ctx: BatchContext) -> BatchReport:
    """Evaluate every row of ``ctx`` with ``orchestrator``'s modules; see the module doc."""
    n = ctx.n
    opted_out = _opt_outs(ctx)
    module_frames, issue_frames, fallbacks = [], [], []
    weighted = np.zeros(n)
    total_weight = np.zeros(n)
    for order, (evaluator, weight) in enumerate(orchestrator.evaluators):
        runs = np.array([evaluator.name not in off for off in opted_out], dtype=bool)
        result, fell_back = _run_module(evaluator, ctx, np.flatnonzero(runs))
        if fell_back:
            fallbacks.append(evaluator.name)
        rows = np.flatnonzero(runs)
        ok = (result.status == ModuleStatus.OK.value) & ~np.isnan(result.score)
        # the scalar sum adds module by module in configured order: so do we
        weighted[rows[ok]] += result.score[ok] * weight
        total_weight[rows[ok]] += weight
        module_frames.append(pd.DataFrame({
            "row": rows, "_order": order, "module": evaluator.name,
            "version": result.version, "status": result.status, "score": result.score,
            "severity": result.severity, "n_issues": result.n_issues.astype(np.int32)}))
        if len(result.issues):
            issues = result.issues.copy()
            issues["row"] = rows[issues["row"].to_numpy(np.int64)]
            issues["issue_no"] = issues.groupby("row").cumcount().astype(np.int32)
            issues["module"] = evaluator.name
            issues["_order"] = order
            issue_frames.append(issues)
    modules = (pd.concat(module_frames, ignore_index=True) if module_frames
               else pd.DataFrame(columns=["row", "_order", "module", "version", "status",
                                          "score", "severity", "n_issues"]))
    modules = modules.sort_values(["row", "_order"], kind="stable", ignore_index=True)
    issues = (pd.concat(issue_frames, ignore_index=True) if issue_frames
              else empty_issues().assign(issue_no=np.int32(0), module="", _order=0))
    issues = issues.sort_values(["row", "_order", "issue_no"], kind="stable",
                                ignore_index=True)
    overall = _overall(n, weighted, total_weight, issues)
    return BatchReport(
        overall=overall, modules=modules.drop(columns="_order"),
        issues=issues.loc[:, ["row", "module", "issue_no", "code", "severity",
                              "evidence_json"]],
        fallbacks=tuple(fallbacks))


def _opt_outs(ctx: BatchContext) -> list[frozenset[str]]:
    accounts = ctx.piece("account")
    cache: dict[int, frozenset[str]] = {}
    out = []
    for account in accounts:
        key = id(account)
        if key not in cache:
            cache[key] = frozenset(getattr(account, "disabled_modules", ()) or ())
        out.append(cache[key])
    return out


def _run_module(evaluator: Evaluator, ctx: BatchContext, rows: np.ndarray
                ) -> tuple[BatchResult, bool]:
    """Return the module's result on ``rows`` of ctx (renumbered), and whether it fell back."""
    sub = ctx.take(rows)
    missing = sub.missing_reasons(evaluator.requires)
    skipped = np.array([bool(m) for m in missing], dtype=bool)
    parts: list[tuple[np.ndarray, BatchResult]] = []
    if skipped.any():
        parts.append((np.flatnonzero(skipped), _skipped(evaluator, [missing[i] for i in
                                                                    np.flatnonzero(skipped)])))
    ready = np.flatnonzero(~skipped)
    fell_back = False
    if len(ready):
        part = sub.take(ready)
        try:
            result = evaluator.evaluate_batch(part)
            if len(result) != len(ready):
                raise ValueError(f"{evaluator.name}.evaluate_batch returned {len(result)} rows "
                                 f"for {len(ready)}")
        except Exception:  # the scalar path turns each failing row into MODULE_ERROR
            fell_back = True
            result = BatchResult.from_results(
                evaluator.name, evaluator.version,
                [run_module(evaluator, part.intent(i), part.pack(i)) for i in range(len(ready))])
        parts.append((ready, result))
    return concat_results(evaluator.name, evaluator.version, parts, len(rows)), fell_back


def _skipped(evaluator: Evaluator, missing: list[dict[str, str]]) -> BatchResult:
    rows, evidence = [], []
    for row, pieces in enumerate(missing):
        for piece, reason in pieces.items():
            rows.append(row)
            evidence.append(json.dumps([
                {"name": "module_name", "threshold": None, "unit": "",
                 "value": evaluator.name},
                {"name": "piece", "threshold": None, "unit": "", "value": piece},
                {"name": "reason", "threshold": None, "unit": "", "value": reason}],
                sort_keys=True, default=str))
    n = len(missing)
    issues = pd.DataFrame({"row": np.asarray(rows, dtype=np.int64), "code": "CONTEXT_MISSING",
                           "severity": Severity.LOW.value,
                           "evidence_json": np.asarray(evidence, dtype=object)})
    return BatchResult(module=evaluator.name, version=evaluator.version,
                       score=np.full(n, math.nan),
                       severity=np.full(n, Severity.LOW.value, dtype=object),
                       status=np.full(n, ModuleStatus.SKIPPED.value, dtype=object),
                       issue_data=issues)


def _overall(n: int, weighted: np.ndarray, total_weight: np.ndarray, issues: pd.DataFrame
             ) -> pd.DataFrame:
    score = np.full(n, math.nan)
    has = total_weight > 0
    # Python's round, as the scalar path (numpy's rounds some halves the other way)
    score[has] = [round(v, 1) for v in (weighted[has] / total_weight[has]).tolist()]
    rows = issues["row"].to_numpy(np.int64)
    highest = np.zeros(n, dtype=np.int64)
    if len(issues):
        np.maximum.at(highest, rows, issues["severity"].map(SEVERITY_RANK).to_numpy(np.int64))
    # dedupe keeps one issue per code, except orchestrator items, which are per module
    per_module = issues["code"].isin(list(ORCHESTRATOR_TEMPLATES)).to_numpy()
    key = np.where(per_module, issues["module"].astype(str) + "\x00" + issues["code"],
                   "\x00" + issues["code"].astype(str)) if len(issues) else np.array([])
    distinct = (pd.DataFrame({"row": rows, "key": key}).drop_duplicates()
                .groupby("row").size()) if len(issues) else pd.Series(dtype=np.int64)
    n_issues = np.zeros(n, dtype=np.int32)
    n_issues[distinct.index.to_numpy(np.int64)] = distinct.to_numpy(np.int32)
    return pd.DataFrame({"row": np.arange(n, dtype=np.int64), "overall_score": score,
                         "overall_severity": SEVERITY_BY_RANK[highest],
                         "n_issues": n_issues})
