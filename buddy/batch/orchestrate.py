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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from buddy.batch.columns import factorize_objects, numbered, repeated
from buddy.batch.context import BatchContext
from buddy.batch.result import (
    SEVERITY_BY_RANK,
    SEVERITY_RANK,
    TYPED_COLUMNS,
    BatchResult,
    FactColumn,
    concat_columns,
    fact_refs,
    grouped_fact_refs,
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

    ``encoded``: the text that run_batch held as numbers, for readers that store numbers
    (replay): ``module_names`` (the modules by configured position), ``module_order`` (per
    row of ``modules``, its module's position), ``issue_module_order`` (the same per issue),
    ``code_names`` and ``issue_code_no`` (per issue, its code's position in code_names),
    ``issue_severity_rank`` (per issue, 0 info .. 4 critical), and, unless a module gave a
    status or severity outside the known ones, ``module_status_no`` (per row of ``modules``,
    its status's position in ``MODULE_STATUS_TEXT``) and ``module_severity_rank``.
    """

    overall: pd.DataFrame
    modules: pd.DataFrame
    issue_data: Mapping[str, Any]
    fallbacks: tuple[str, ...] = ()  # modules that ran row by row (no batch form or it raised)
    encoded: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
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
    evaluators = orchestrator.evaluators
    parts: list[_Ran] = []
    fallbacks = []
    shared = _Shared(ctx)
    for order, (evaluator, _) in enumerate(evaluators):
        on = np.array([evaluator.name not in off for off in opted_out], dtype=bool)
        rows = np.flatnonzero(on[account_code])
        ran, fell_back = _run_module(evaluator, shared, rows)
        if fell_back:
            fallbacks.append(evaluator.name)
        parts += [_Ran(order, rows[local], result) for local, result in ran]
    # inside the batch a module is its configured position, and a row's module runs are a
    # row of ``runs``: module rows and issues are placed by counting, not sorted, and their
    # text is taken from the few distinct values at the end
    runs = np.zeros((n, len(evaluators)), dtype=bool)
    counts = np.zeros((n, len(evaluators)), dtype=np.int64)  # issues per (row, module)
    for part in parts:
        runs[part.rows, part.order] = True
        counts[part.rows, part.order] = part.result.n_issues
    modules, module_order, module_coded = _module_frame(evaluators, runs, counts, parts)
    issues, issue_order = _issue_columns(evaluators, counts, parts)
    overall, coded = _overall(orchestrator, n, modules, module_order, issues, issue_order)
    return BatchReport(overall=overall, modules=modules, issue_data=issues,
                       fallbacks=tuple(fallbacks), encoded={
                           "module_names": tuple(e.name for e, _ in evaluators),
                           "module_order": module_order, "issue_module_order": issue_order,
                           **module_coded, **coded})


@dataclass(frozen=True, slots=True)
class _Ran:
    """A module's result on some rows of the batch: those it skipped, or those it ran on."""

    order: int  # the module's configured position
    rows: np.ndarray  # the batch's row of each result row
    result: BatchResult


def _module_frame(evaluators: Sequence[tuple[Evaluator, float]], runs: np.ndarray,
                  counts: np.ndarray, parts: Sequence[_Ran]
                  ) -> tuple[pd.DataFrame, np.ndarray, dict[str, np.ndarray]]:
    """Return one row per (row, module run), by row then configured order, each one's
    module position, and its status and severity as numbers (``MODULE_STATUS_TEXT``,
    ``SEVERITY_BY_RANK``; none when a module gave a value outside them)."""
    # a module run's place: how many runs come before it, row by row
    slot = (np.cumsum(runs.ravel()) - 1).reshape(runs.shape)
    rows, order = np.nonzero(runs)
    k = len(rows)
    status_no, severity_rank = np.zeros(k, dtype=np.int64), np.zeros(k, dtype=np.int64)
    score = np.full(k, math.nan)
    for part in parts:
        at = slot[part.rows, part.order]
        status_no[at] = numbered(part.result.status, _STATUS_NO)
        severity_rank[at] = numbered(part.result.severity, SEVERITY_RANK)
        score[at] = part.result.score
    coded = {}
    if (status_no < 0).any() or (severity_rank < 0).any():  # the modules' own text
        status, severity = np.empty(k, dtype=object), np.empty(k, dtype=object)
        for part in parts:
            at = slot[part.rows, part.order]
            status[at], severity[at] = part.result.status, part.result.severity
    else:  # references to the few texts, and their numbers for readers that store numbers
        status, severity = MODULE_STATUS_TEXT[status_no], SEVERITY_BY_RANK[severity_rank]
        coded = {"module_status_no": status_no, "module_severity_rank": severity_rank}
    names = np.array([e.name for e, _ in evaluators] or [""], dtype=object)
    versions = np.array([e.version for e, _ in evaluators] or [""], dtype=object)
    return _frame({"row": rows.astype(np.int64), "module": names[order],
                   "version": versions[order], "status": status, "score": score,
                   "severity": severity,
                   "n_issues": counts.ravel()[runs.ravel()].astype(np.int32)}), order, coded


#: A module status by its number (``BatchReport.encoded["module_status_no"]``).
MODULE_STATUS_TEXT: np.ndarray = np.array([s.value for s in ModuleStatus], dtype=object)
_STATUS_NO: dict[str, int] = {text: no for no, text in enumerate(MODULE_STATUS_TEXT.tolist())}


def _frame(columns: dict[str, np.ndarray]) -> pd.DataFrame:
    """Return a frame of ``columns``, text kept as Python objects, each column its own block
    (the readers take columns; a frame made from a dict copies the text columns into one
    block, which costs more than the rest of the frame)."""
    numbers = {name: values for name, values in columns.items() if values.dtype != object}
    frame = pd.DataFrame(numbers, index=pd.RangeIndex(len(next(iter(columns.values())))))
    for at, (name, values) in enumerate(columns.items()):
        if values.dtype == object:
            frame.insert(at, name, pd.Series(values, dtype=object, copy=False))
    return frame


def _issue_columns(evaluators: Sequence[tuple[Evaluator, float]], counts: np.ndarray,
                   parts: Sequence[_Ran]) -> tuple[dict[str, Any], np.ndarray]:
    """Return the issues by row, configured order and issue_no, and each one's module
    position."""
    width = counts.shape[1]
    # an issue's place: the issues of the (row, module) runs before its own, plus its number
    starts = np.cumsum(counts.ravel()) - counts.ravel()
    found, places, orders = [], [], []
    for part in parts:
        columns = part.result.issue_arrays
        if not len(columns["row"]):
            continue
        local = np.asarray(columns["row"], dtype=np.int64)
        columns["row"] = part.rows[local]
        columns["issue_no"] = _within_row(local)
        places.append(starts[columns["row"] * width + part.order] + columns["issue_no"])
        orders.append(np.full(len(local), part.order, dtype=np.int64))
        found.append(columns)
    issues = concat_columns(found)
    if not found:
        issues.update(issue_no=np.zeros(0, dtype=np.int32), module=np.zeros(0, dtype=object))
        return issues, np.zeros(0, dtype=np.int64)
    at = np.empty(len(issues["row"]), dtype=np.int64)
    at[np.concatenate(places)] = np.arange(len(at))
    issues = take_columns(issues, at)
    order = np.concatenate(orders)[at]
    names = np.array([e.name for e, _ in evaluators], dtype=object)
    # the columns in the order they always came: the module's, issue_no, module, the facts
    typed = {name: issues.pop(name) for name in (*TYPED_COLUMNS.values(), *TYPED_COLUMNS)
             if name in issues}
    issues["module"] = names[order]
    issues.update(typed)
    return issues, order


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


class _Shared:
    """What the modules of one batch share: each piece's presence, asked once, and the
    context of the rows a module runs on, taken once for every module that runs on the same
    rows (as every module shares the whole context when it runs on every row)."""

    def __init__(self, ctx: BatchContext) -> None:
        self.ctx = ctx
        self._present: dict[str, np.ndarray] = {}
        self._taken: dict[bytes, BatchContext] = {}

    def present(self, piece: str) -> np.ndarray:
        """Return per row whether ``piece`` is present, asked once per distinct piece
        object."""
        if piece not in self._present:
            ctx = self.ctx
            if piece == "market" or isinstance(ctx.piece(piece), PieceColumn):
                self._present[piece] = ctx.present(piece)
            else:
                codes, first = ctx.piece_codes(piece)
                pieces = ctx.piece(piece)
                self._present[piece] = np.array([pieces[i] is not None for i in first.tolist()],
                                                dtype=bool)[codes]
        return self._present[piece]

    def take(self, rows: np.ndarray) -> BatchContext:
        """Return ``ctx.take(rows)`` (``rows`` sorted and distinct), or ctx itself when
        ``rows`` are all of its rows and its frames are numbered 0..n-1 as a take's are."""
        ctx = self.ctx
        n = ctx.n
        if len(rows) == n and (n == 0 or (rows[0] == 0 and rows[-1] == n - 1)) and all(
                isinstance(f.index, pd.RangeIndex) and f.index.start == 0 and f.index.step == 1
                for f in (ctx.intents, ctx.instrument, ctx.market, ctx.latest)):
            return ctx
        key = np.asarray(rows, dtype=np.int64).tobytes()
        if key not in self._taken:
            self._taken[key] = ctx.take(rows)
        return self._taken[key]


def _run_module(evaluator: Evaluator, shared: _Shared, rows: np.ndarray
                ) -> tuple[list[tuple[np.ndarray, BatchResult]], bool]:
    """Return the module's results on ``rows`` of the batch: (which of ``rows``, the result
    on them) for the rows it skipped and for those it ran on; and whether it fell back."""
    skipped_rows, skipped = _skipped(evaluator, shared, rows)
    parts: list[tuple[np.ndarray, BatchResult]] = []
    if skipped is not None:
        parts.append((skipped_rows, skipped))
    ready = np.setdiff1d(np.arange(len(rows)), skipped_rows, assume_unique=True)
    fell_back = False
    if len(ready):
        part = shared.take(rows[ready])
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
    return parts, fell_back


def _skipped(evaluator: Evaluator, shared: _Shared, rows: np.ndarray
             ) -> tuple[np.ndarray, BatchResult | None]:
    """Return (which of ``rows`` miss a required piece, the module's SKIPPED result on
    them: one CONTEXT_MISSING issue per missing piece, in piece-name order), or None
    results when no row misses one."""
    pieces = sorted(evaluator.requires)
    missing = [np.flatnonzero(~shared.present(piece)[rows]) for piece in pieces]
    if not any(len(at) for at in missing):
        return np.zeros(0, dtype=np.int64), None
    at = np.concatenate(missing)
    piece_no = np.repeat(np.arange(len(pieces)), [len(m) for m in missing])
    reasons = np.concatenate([shared.ctx.missing[piece][rows[m]]
                              for piece, m in zip(pieces, missing, strict=True)])
    order = np.argsort(at, kind="stable")  # by row, then piece name (concatenated so)
    at, piece_no, reasons = at[order], piece_no[order], reasons[order]
    first = np.r_[True, at[1:] != at[:-1]]  # a row's first missing piece
    skipped_rows, renumbered = at[first], np.cumsum(first) - 1
    n, k = len(skipped_rows), len(at)
    # a few distinct reasons (None: "not provided"): numbered with the piece, they are the
    # issues' fact sets, each encoded once
    reason_no, distinct_reasons = factorize_objects(reasons)
    texts = distinct_reasons.tolist()
    grouped = all(type(text) is str for text in texts) and all(  # (1 and 1.0 share a code)
        reason is None for reason in reasons[reason_no < 0].tolist())  # (NaN stays NaN)
    if grouped:
        reasons = np.array([*texts, "not provided"], dtype=object)[reason_no]
    else:
        reasons[np.array([r is None for r in reasons.tolist()], dtype=bool)] = "not provided"
    columns = [FactColumn("module_name", evaluator.name),
               FactColumn("piece", np.array(pieces, dtype=object)[piece_no]),
               FactColumn("reason", reasons)]
    facts = (grouped_fact_refs(columns, piece_no * (len(texts) + 1) + reason_no + 1)
             if grouped else fact_refs(columns, k))
    issues = {"row": renumbered.astype(np.int64),
              "code": repeated("CONTEXT_MISSING", k),
              "severity": repeated(Severity.LOW.value, k),
              "action": repeated("", k), "facts": facts,
              "action_facts": fact_refs([], k)}
    return skipped_rows, BatchResult(
        module=evaluator.name, version=evaluator.version, score=np.full(n, math.nan),
        severity=repeated(Severity.LOW.value, n),
        status=repeated(ModuleStatus.SKIPPED.value, n), issue_data=issues)


def _overall(orchestrator: Orchestrator, n: int, modules: pd.DataFrame,
             module_order: np.ndarray, issues: Mapping[str, Any], issue_order: np.ndarray
             ) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Return the overall frame, and the issues' codes and severities as numbers."""
    status = modules["status"].to_numpy(dtype=object)
    score = modules["score"].to_numpy(np.float64)
    rows = np.asarray(issues["row"], dtype=np.int64)
    weights = np.array([w for _, w in orchestrator.evaluators] or [0.0], dtype=np.float64)
    guards = np.array([bool(e.guards_risk) for e, _ in orchestrator.evaluators] or [False],
                      dtype=bool)
    # a module by its name (as the scalar report keys it), a code by its number: what is
    # asked per issue is asked once per distinct (module, code)
    module_no, module_names = pd.factorize(np.array(
        [e.name for e, _ in orchestrator.evaluators] or [""], dtype=object))
    code_no, code_names = factorize_objects(np.asarray(issues["code"], dtype=object))
    width = max(len(code_names), 1)
    pair_no, pairs = pd.factorize(module_no[issue_order] * width + code_no)
    pair_codes = np.asarray(code_names, dtype=object)[pairs % width]
    ranked = np.array([orchestrator.is_ranked(name, code) for name, code in zip(
        module_names[pairs // width].tolist(), pair_codes.tolist(), strict=True)],
        dtype=bool)[pair_no]
    severity_rank = severity_ranks(np.asarray(issues["severity"], dtype=object))
    overall = overall_columns(
        n, orchestrator.config, module_row=modules["row"].to_numpy(np.int64),
        module_score=score, module_weight=weights[module_order],
        module_known=(status == ModuleStatus.OK.value) & ~np.isnan(score),
        module_guards_risk=guards[module_order],
        issue_row=rows[ranked], issue_rank=severity_rank[ranked])
    # dedupe keeps one issue per code, except orchestrator items, which are per module:
    # a key per code, per (module, code) only for orchestrator items, numbered densely
    per_module = np.isin(pair_codes, list(ORCHESTRATOR_TEMPLATES))
    _, pair_key = np.unique(np.where(per_module, -1 - np.arange(len(pairs)),
                                     pairs % width), return_inverse=True)
    key = pair_key.reshape(-1)[pair_no]
    overall.insert(3, "n_issues", _distinct_per_row(n, rows, key, len(pairs)))
    overall["n_ranked"] = _distinct_per_row(n, rows[ranked], key[ranked], len(pairs))
    return overall, {"code_names": tuple(code_names.tolist()), "issue_code_no": code_no,
                     "issue_severity_rank": severity_rank}


#: Up to how many (row, key) cells ``_distinct_per_row`` marks in a table (else it sorts).
_TABLE_CELLS = 1 << 25


def _distinct_per_row(n: int, rows: np.ndarray, key: np.ndarray, keys: int) -> np.ndarray:
    """Return per row how many distinct ``key`` values (0..keys-1) its issues hold."""
    if not len(rows):
        return np.zeros(n, dtype=np.int32)
    cell = rows.astype(np.int64) * keys + key
    if n * keys <= _TABLE_CELLS:  # a few keys (codes): mark each (row, key) seen, count
        seen = np.zeros(n * keys, dtype=bool)
        seen[cell] = True
        return np.count_nonzero(seen.reshape(n, keys), axis=1).astype(np.int32)
    return np.bincount(np.unique(cell) // keys, minlength=n).astype(np.int32)
