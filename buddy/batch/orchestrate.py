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
- overall: ``buddy.scoring.overall_columns``, the one score and verdict rule (the scalar
  report is a batch of one through it): verdict by the worst RANKED issue (not_checked codes
  and CONTEXT_MISSING items are not issues), capped at review while a risk module is
  unknown; the score in the verdict's band, placed by the weighted module mean with unknown
  modules at ``unknown_module_score``; the issue count after ``dedupe`` (one per code,
  orchestrator items per module; every item, as ``len(BuddyReport.all_issues)``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from buddy.batch.context import BatchContext
from buddy.batch.result import (
    BatchResult,
    FactColumn,
    concat_columns,
    concat_facts,
    concat_results,
    fact_refs,
    object_frame,
    render_facts,
    severity_ranks,
    take_columns,
)
from buddy.context.piece_columns import PieceColumn
from buddy.domain import ModuleStatus, Severity
from buddy.evaluators.base import Evaluator
from buddy.orchestrator import (
    ORCHESTRATOR_TEMPLATES,
    Orchestrator,
    run_module,
)
from buddy.scoring import overall_columns


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchReport:
    """The report columns of N intents.

    ``overall``: one row per intent (row, overall_score, overall_severity, n_issues, and
    ``buddy.scoring.OVERALL_COLUMNS``: verdict, module_mean, band_lo, band_hi, n_unknown,
    risk_unknown; n_ranked: the ranked issues after dedupe);
    ``modules``: one row per (intent, module run) (row, module, version, status, score,
    severity, n_issues), by row then configured order; ``issue_data``: one row per issue
    (row, module, issue_no, code, severity, and the facts: typed as ``facts``, a
    ``buddy.batch.result.FACTS_SCHEMA`` table, or as ``evidence_json``), by row, module
    order, issue_no; ``issues`` the same as a frame with the evidence JSON.
    """

    overall: pd.DataFrame
    modules: pd.DataFrame
    issue_data: Mapping[str, Any]
    fallbacks: tuple[str, ...] = ()  # modules that ran row by row (no batch form or it raised)
    rendered: list[pd.DataFrame] = field(default_factory=list, init=False, repr=False,
                                         compare=False)

    @property
    def issues(self) -> pd.DataFrame:
        """The issues as a frame (row, module, issue_no, code, severity, evidence_json)."""
        if not self.rendered:
            columns = {name: self.issue_data[name] for name in ISSUE_REPORT_COLUMNS
                       if name in self.issue_data}
            if "evidence_json" not in columns:
                columns["evidence_json"] = render_facts(self.issue_data["facts"])
            self.rendered.append(object_frame(columns).loc[:, [*ISSUE_REPORT_COLUMNS]])
        return self.rendered[0]


#: The columns of BatchReport.issues.
ISSUE_REPORT_COLUMNS: tuple[str, ...] = ("row", "module", "issue_no", "code", "severity",
                                         "evidence_json")


def run_batch(orchestrator: Orchestrator, ctx: BatchContext) -> BatchReport:
    """Evaluate every row of ``ctx`` with ``orchestrator``'s modules; see the module doc."""
    n = ctx.n
    account_code, opted_out = _opt_outs(ctx)
    module_frames, issue_parts, fallbacks = [], [], []
    for order, (evaluator, weight) in enumerate(orchestrator.evaluators):
        runs = np.array([evaluator.name not in off for off in opted_out], dtype=bool)
        rows = np.flatnonzero(runs[account_code])
        result, fell_back = _run_module(evaluator, ctx, rows)
        if fell_back:
            fallbacks.append(evaluator.name)
        k = len(rows)
        module_frames.append({
            "row": rows, "_order": np.full(k, order, dtype=np.int64),
            "module": np.full(k, evaluator.name, dtype=object),
            "version": np.full(k, result.version, dtype=object),
            "status": np.asarray(result.status, dtype=object),
            "score": np.asarray(result.score, dtype=np.float64),
            "severity": np.asarray(result.severity, dtype=object),
            "n_issues": result.n_issues.astype(np.int32),
            "_weight": np.full(k, weight, dtype=np.float64),
            "_guards_risk": np.full(k, bool(evaluator.guards_risk), dtype=bool)})
        columns = result.issue_arrays
        if len(columns["row"]):
            local = np.asarray(columns["row"], dtype=np.int64)
            columns["row"] = rows[local]
            columns["issue_no"] = _within_row(local)
            columns["module"] = np.full(len(local), evaluator.name, dtype=object)
            columns["_order"] = np.full(len(local), order, dtype=np.int64)
            issue_parts.append(columns)
    if module_frames:
        # by row, then configured order (each module once per row); text kept as objects
        # (the readers want objects, and inferring Arrow strings costs a pass each way)
        joined = {name: np.concatenate([f[name] for f in module_frames])
                  for name in module_frames[0]}
        by_row = np.lexsort((joined["_order"], joined["row"]))
        modules = object_frame({name: values[by_row] for name, values in joined.items()})
    else:
        modules = pd.DataFrame(columns=["row", "_order", "module", "version", "status",
                                        "score", "severity", "n_issues", "_weight",
                                        "_guards_risk"])
    issues = concat_columns(issue_parts)
    if issue_parts:
        issues = take_columns(issues, np.lexsort((issues["issue_no"], issues["_order"],
                                                  issues["row"])))
    else:
        issues.update(issue_no=np.zeros(0, dtype=np.int32), module=np.zeros(0, dtype=object))
    issues.pop("_order", None)
    overall = _overall(orchestrator, n, modules, issues)
    return BatchReport(
        overall=overall, modules=modules.drop(columns=["_order", "_weight", "_guards_risk"]),
        issue_data=issues, fallbacks=tuple(fallbacks))


def _within_row(rows: np.ndarray) -> np.ndarray:
    """Return each issue's number within its row (``rows`` sorted: 0, 1, ... per row)."""
    if not len(rows):
        return np.zeros(0, dtype=np.int32)
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
    counts = np.diff(np.r_[starts, len(rows)])
    return (np.arange(len(rows)) - np.repeat(starts, counts)).astype(np.int32)


def _opt_outs(ctx: BatchContext) -> tuple[np.ndarray, list[frozenset[str]]]:
    """Return (per row, the number of its distinct account object; each one's opt-outs)."""
    code, accounts = ctx.distinct_pieces("account")
    return code, [frozenset(getattr(account, "disabled_modules", ()) or ())
                  for account in accounts]


def _run_module(evaluator: Evaluator, ctx: BatchContext, rows: np.ndarray
                ) -> tuple[BatchResult, bool]:
    """Return the module's result on ``rows`` of ctx (renumbered), and whether it fell back."""
    sub = _take(ctx, rows)
    skipped_rows, skipped = _skipped(evaluator, sub)
    parts: list[tuple[np.ndarray, BatchResult]] = []
    if skipped is not None:
        parts.append((skipped_rows, skipped))
    ready = np.setdiff1d(np.arange(len(rows)), skipped_rows, assume_unique=True)
    fell_back = False
    if len(ready):
        part = _take(sub, ready)
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


def _take(ctx: BatchContext, rows: np.ndarray) -> BatchContext:
    """Return ``ctx.take(rows)``, or ctx itself when ``rows`` are all of its rows in order
    (the common case: nobody opted out, nothing missing) and its frames are numbered 0..n-1
    as a take's are."""
    n = ctx.n
    if len(rows) == n and (n == 0 or (rows[0] == 0 and rows[-1] == n - 1)) and all(
            isinstance(f.index, pd.RangeIndex) and f.index.start == 0 and f.index.step == 1
            for f in (ctx.intents, ctx.instrument, ctx.market, ctx.latest)):
        return ctx  # rows are sorted and distinct (flatnonzero), so 0..n-1 means all
    return ctx.take(rows)


def _present(ctx: BatchContext, piece: str) -> np.ndarray:
    """Return ``ctx.present(piece)``, asked once per distinct piece object."""
    if piece == "market" or isinstance(ctx.piece(piece), PieceColumn):
        return ctx.present(piece)
    codes, first = ctx.piece_codes(piece)
    pieces = ctx.piece(piece)
    return np.array([pieces[i] is not None for i in first.tolist()], dtype=bool)[codes]


def _skipped(evaluator: Evaluator, ctx: BatchContext
             ) -> tuple[np.ndarray, BatchResult | None]:
    """Return (the rows of ctx missing a required piece, the module's SKIPPED result on
    them: one CONTEXT_MISSING issue per missing piece, in piece-name order), or None
    results when no row misses one."""
    issue_rows, issue_evidence = [], []
    for piece in sorted(evaluator.requires):
        at = np.flatnonzero(~_present(ctx, piece))
        if not len(at):
            continue
        reasons = ctx.missing[piece][at]
        reasons[np.array([r is None for r in reasons.tolist()], dtype=bool)] = "not provided"
        issue_rows.append(at)
        issue_evidence.append(fact_refs([
            FactColumn("module_name", evaluator.name), FactColumn("piece", piece),
            FactColumn("reason", reasons)], len(at)))
    if not issue_rows:
        return np.zeros(0, dtype=np.int64), None
    rows = np.concatenate(issue_rows)
    order = np.argsort(rows, kind="stable")  # by row, then piece name (concatenated so)
    rows, evidence = rows[order], concat_facts(issue_evidence).take(order)
    skipped_rows, renumbered = np.unique(rows, return_inverse=True)
    n = len(skipped_rows)
    k = len(rows)
    issues = {"row": renumbered.reshape(-1).astype(np.int64),
              "code": np.full(k, "CONTEXT_MISSING", dtype=object),
              "severity": np.full(k, Severity.LOW.value, dtype=object),
              "action": np.full(k, "", dtype=object), "facts": evidence,
              "action_facts": fact_refs([], k)}
    return skipped_rows, BatchResult(
        module=evaluator.name, version=evaluator.version, score=np.full(n, math.nan),
        severity=np.full(n, Severity.LOW.value, dtype=object),
        status=np.full(n, ModuleStatus.SKIPPED.value, dtype=object), issue_data=issues)


def _overall(orchestrator: Orchestrator, n: int, modules: pd.DataFrame,
             issues: Mapping[str, Any]) -> pd.DataFrame:
    status = modules["status"].to_numpy(dtype=object)
    score = modules["score"].to_numpy(np.float64)
    rows = np.asarray(issues["row"], dtype=np.int64)
    codes = np.asarray(issues["code"], dtype=object)
    names = np.asarray(issues["module"], dtype=object)
    # asked once per distinct (module, code)
    module_no, _ = pd.factorize(names)
    code_no, code_names = pd.factorize(codes)
    _, first, pair = np.unique(module_no * max(len(code_names), 1) + code_no,
                               return_index=True, return_inverse=True)
    ranked = np.array([orchestrator.is_ranked(names[i], codes[i]) for i in first.tolist()],
                      dtype=bool)[pair.reshape(-1)]
    overall = overall_columns(
        n, orchestrator.config, module_row=modules["row"].to_numpy(np.int64),
        module_score=score, module_weight=modules["_weight"].to_numpy(np.float64),
        module_known=(status == ModuleStatus.OK.value) & ~np.isnan(score),
        module_guards_risk=modules["_guards_risk"].to_numpy(bool),
        issue_row=rows[ranked], issue_rank=severity_ranks(
            np.asarray(issues["severity"], dtype=object))[ranked])
    # dedupe keeps one issue per code, except orchestrator items, which are per module:
    # a key per distinct (module, code), per module only for orchestrator items
    per_module = np.isin(code_names, list(ORCHESTRATOR_TEMPLATES))
    key = np.where(per_module[code_no], module_no * len(code_names) + code_no,
                   -1 - code_no) if len(rows) else np.zeros(0, dtype=np.int64)
    overall.insert(3, "n_issues", _distinct_per_row(n, rows, key))
    overall["n_ranked"] = _distinct_per_row(n, rows[ranked], key[ranked])
    return overall


def _distinct_per_row(n: int, rows: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Return per row how many distinct ``key`` values its issues hold."""
    if not len(rows):
        return np.zeros(n, dtype=np.int32)
    # one int64 per (row, key): keys numbered densely, the row as the high part
    codes, uniques = pd.factorize(key)
    pairs = np.unique(rows.astype(np.int64) * len(uniques) + codes)
    return np.bincount(pairs // len(uniques), minlength=n).astype(np.int32)
