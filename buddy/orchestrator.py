"""The orchestrator: run the configured bundle, dedupe, rank and cap, score, summarise.

A module that raises becomes a MODULE_ERROR item; a module whose required context piece is
missing is skipped and becomes a CONTEXT_MISSING item naming the piece and the reason. Neither
ever crashes the report. Ranked issues are the issue codes (kind 'issue') and MODULE_ERROR
items; CONTEXT_MISSING items and ``not_checked`` codes go to the report's "not checked"
list with every module that could not run. The score and verdict come from
``buddy.scoring.overall_arrays`` (the one rule; a report is a batch of one).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from buddy.batch.context import BatchContext, from_pack, intent_frame
from buddy.batch.result import SEVERITY_RANK
from buddy.config import ModuleConfig, ScoringConfig
from buddy.context.pack import ContextPack
from buddy.disclosures import select_disclosures
from buddy.domain import (
    EvaluationResult,
    Fact,
    Issue,
    Mitigation,
    ModuleStatus,
    NotChecked,
    Severity,
    TradeIntent,
    Verdict,
)
from buddy.evaluators import registry
from buddy.evaluators.base import Evaluator, IssueTemplate
from buddy.explain import Explainer, RenderedIssue, TemplateExplainer, explanation_source
from buddy.report import BuddyReport, module_ok
from buddy.scoring import overall_arrays

ORCHESTRATOR = "orchestrator"

#: Templates for the items the orchestrator itself emits.
ORCHESTRATOR_TEMPLATES: Mapping[str, IssueTemplate] = {
    "CONTEXT_MISSING": IssueTemplate(
        "Check not run: context missing",
        "The {module_name} check needs {piece}, which is missing: {reason}.",
        "Provide the missing context, or read this report without that check."),
    "MODULE_ERROR": IssueTemplate(
        "Check failed",
        "The {module_name} check raised {error_type}: {error_message}.",
        "Report the error; the rest of the report is unaffected."),
}


@dataclass(frozen=True, slots=True)
class ItemClaim:
    """What an orchestrator item claims, as a module's ``Code`` does: its kind, the harm it
    warns of and the outcome measure that could show it."""

    kind: str
    harm: str
    measure: str | None


#: The orchestrator's items declared as the modules declare theirs: a module skipped for a
#: missing piece did not check anything (never ranked); one that raised is ranked as an issue
#: but claims no harm an outcome could show.
ORCHESTRATOR_CLAIMS: Mapping[str, ItemClaim] = {
    "CONTEXT_MISSING": ItemClaim("not_checked", "", None),
    "MODULE_ERROR": ItemClaim("issue", "the module failed, so its checks did not run; no "
                                       "outcome measure judges a failure", None),
}


class Orchestrator:
    """Run a ScoringConfig's enabled evaluators over an intent and its ContextPack."""

    templates: ClassVar[Mapping[str, IssueTemplate]] = ORCHESTRATOR_TEMPLATES

    def __init__(self, config: ScoringConfig, *, disabled: Iterable[str] = (),
                 explainer: Explainer | None = None) -> None:
        self.config = config
        self.explainer = explainer or TemplateExplainer()
        self.config_hash = config.hash
        self.disabled = tuple(sorted(set(disabled) | {m.name for m in config.modules
                                                      if not m.enabled}))
        self.evaluators: list[tuple[Evaluator, float]] = []
        for spec in config.modules:
            if spec.name in self.disabled:
                continue
            cls = registry.get(spec.name)
            params: ModuleConfig = cls.config_cls.from_mapping(spec.params)
            self.evaluators.append((cls(params), spec.weight))
        # orchestrator items (CONTEXT_MISSING, MODULE_ERROR) carry the module's name
        self._templates = {e.name: {**ORCHESTRATOR_TEMPLATES, **e.templates}
                           for e, _ in self.evaluators}
        self.weights = {e.name: w for e, w in self.evaluators}
        self.guards_risk = {e.name: bool(e.guards_risk) for e, _ in self.evaluators}
        #: per module, the codes that are not issues (never ranked, never scored)
        self.unranked = {e.name: e.unscored_codes() | {"CONTEXT_MISSING"}
                         for e, _ in self.evaluators}
        #: the last pack and its row context (``row_context``)
        self._last_row: tuple[ContextPack, BatchContext] | None = None

    def is_ranked(self, module: str, code: str) -> bool:
        """Return True when ``code`` of ``module`` is an issue (ranked, counted in the
        verdict): not a not_checked code, not a CONTEXT_MISSING item."""
        return code not in self.unranked.get(module, {"CONTEXT_MISSING"})

    def run_modules(self, intent: TradeIntent, ctx: ContextPack) -> list[EvaluationResult]:
        """Return each enabled module's result, in configured order (never raises).

        Modules the user switched off (``ctx.account.disabled_modules``) do not run.
        """
        off = user_opt_outs(ctx)
        row = self.row_context(intent, ctx)  # one row context shared by every module
        return [run_module(evaluator, intent, ctx, row) for evaluator, _ in self.evaluators
                if evaluator.name not in off]

    def row_context(self, intent: TradeIntent, ctx: ContextPack) -> BatchContext:
        """Return the one-row BatchContext of ``intent`` on ``ctx`` (``from_pack``). The
        pack's columns are built once per pack: re-evaluating against the last pack (the
        workbench trying another entry or stop) rebuilds only the intent's columns."""
        last = self._last_row
        if last is not None and last[0] is ctx:
            return dataclasses.replace(last[1], intents=intent_frame(intent))
        row = from_pack(intent, ctx)
        self._last_row = (ctx, row)
        return row

    def run(self, intent: TradeIntent, ctx: ContextPack, *, eval_id: str | None = None
            ) -> BuddyReport:
        """Evaluate ``intent`` and return the Buddy Report."""
        results = self.run_modules(intent, ctx)
        return self.assemble(intent, ctx, results, eval_id=eval_id)

    def assemble(self, intent: TradeIntent, ctx: ContextPack,
                 results: list[EvaluationResult], *, eval_id: str | None = None
                 ) -> BuddyReport:
        """Combine module results into a report: dedupe, rank, cap, score, verdict."""
        issues = dedupe([i for r in results for i in r.issues])
        ranked = rank_issues(tuple(i for i in issues if self.is_ranked(i.module, i.code)),
                             self.weights)
        top = cap_ranked(ranked, self.config.min_issues, self.config.max_issues)
        columns = overall_arrays(
            1, self.config, module_row=np.zeros(len(results), dtype=np.int64),
            module_score=np.array([r.score if module_ok(r) else np.nan for r in results],
                                  dtype=np.float64),
            module_weight=np.array([self.weights[r.module] for r in results],
                                   dtype=np.float64),
            module_known=np.array([module_ok(r) for r in results], dtype=bool),
            module_guards_risk=np.array([self.guards_risk[r.module] for r in results],
                                        dtype=bool),
            issue_row=np.zeros(len(ranked), dtype=np.int64),
            issue_rank=np.array([SEVERITY_RANK[i.severity.value] for i in ranked],
                                dtype=np.int64))
        overall = {name: values[0] for name, values in columns.items()}
        rendered = self.explainer.render(top, self._templates)
        # the issues below the cap keep the template words (no extra explainer calls)
        more: tuple[RenderedIssue, ...] = TemplateExplainer().render(ranked[len(top):],
                                                                    self._templates)
        score = float(overall["overall_score"])
        return BuddyReport(
            eval_id=eval_id or uuid.uuid4().hex, intent=intent,
            overall_score=None if np.isnan(score) else score,
            overall_severity=Severity(overall["overall_severity"]),
            verdict=Verdict(overall["verdict"]),
            score_band=(float(overall["band_lo"]), float(overall["band_hi"])),
            module_mean=(None if np.isnan(overall["module_mean"])
                         else round(float(overall["module_mean"]), 1)),
            top_issues=top, rendered=rendered, ranked_issues=ranked, rendered_more=more,
            all_issues=issues, not_checked=self.not_checked(issues, results),
            modules=tuple(results), config_name=self.config.name,
            config_version=self.config.version, config_hash=self.config_hash,
            config_alias=self.config.alias,
            disabled_modules=tuple(sorted(set(self.disabled) | user_opt_outs(ctx))),
            context_missing=self.context_missing(ctx, results),
            timezone=ctx.instrument.timezone if ctx.instrument is not None else "UTC",
            explanation_source=explanation_source(rendered),
            disclosures=select_disclosures(getattr(ctx.account, "disclosures_off", ())))

    def not_checked(self, issues: tuple[Issue, ...], results: list[EvaluationResult]
                    ) -> tuple[NotChecked, ...]:
        """Return what the report could not check: each module that was skipped (with the
        missing piece's reason) or failed, then each not_checked code, in module order."""
        out = []
        for result in results:
            if result.status is ModuleStatus.SKIPPED:
                out += [NotChecked(module=result.module, code="CONTEXT_MISSING",
                                   what=result.module, why=reason)
                        for reason in dict.fromkeys(result.missing.values())]
            elif result.status is ModuleStatus.ERROR or not module_ok(result):
                out.append(NotChecked(module=result.module, code="MODULE_ERROR",
                                      what=result.module,
                                      why=f"failed: {result.error or 'no score'}"))
        codes = [i for i in issues
                 if i.code != "CONTEXT_MISSING" and not self.is_ranked(i.module, i.code)]
        for words in TemplateExplainer().render(tuple(codes), self._templates):
            out.append(NotChecked(module=words.module, code=words.code,
                                  what=words.title, why=words.explanation))
        return tuple(out)

    def context_missing(self, ctx: ContextPack, results: list[EvaluationResult]
                        ) -> dict[str, str]:
        """Return the missing pieces that a module of this report needed or would have read
        (a piece nobody reads, such as one not yet provided, is not missing from it)."""
        ran = {r.module for r in results}
        read: set[str] = set()
        for evaluator, _ in self.evaluators:
            if evaluator.name in ran:
                read |= evaluator.requires | evaluator.optional
        return {piece: reason for piece, reason in ctx.missing.items() if piece in read}


def user_opt_outs(ctx: ContextPack) -> set[str]:
    """Return the modules the user switched off, from the pack's account piece."""
    return set(getattr(ctx.account, "disabled_modules", ()) or ())


def run_module(evaluator: Evaluator[Any], intent: TradeIntent, ctx: ContextPack,
               row: BatchContext | None = None) -> EvaluationResult:
    """Run one evaluator, turning a missing piece or an exception into a result.

    ``row``: the batch of one of (intent, ctx), when the caller already built it.
    """
    missing = ctx.missing_pieces(evaluator.requires)
    if missing:
        issues = tuple(
            Issue(module=evaluator.name, code="CONTEXT_MISSING", severity=Severity.LOW,
                  evidence=(Fact(name="module_name", value=evaluator.name),
                            Fact(name="piece", value=piece), Fact(name="reason", value=reason)),
                  mitigation=Mitigation(action="PROVIDE_CONTEXT"))
            for piece, reason in missing.items())
        return EvaluationResult(module=evaluator.name, version=evaluator.version, score=None,
                                severity=Severity.LOW, issues=issues,
                                status=ModuleStatus.SKIPPED, missing=missing)
    try:
        result = evaluator.evaluate_batch(row if row is not None else from_pack(intent, ctx))
        return result.row(0)
    except Exception as exc:  # a broken module must never crash the report
        message = str(exc).splitlines()[0][:200] if str(exc) else "no message"
        issue = Issue(module=evaluator.name, code="MODULE_ERROR", severity=Severity.MEDIUM,
                      evidence=(Fact(name="module_name", value=evaluator.name),
                                Fact(name="error_type", value=type(exc).__name__),
                                Fact(name="error_message", value=message)),
                      mitigation=Mitigation(action="REPORT_MODULE_ERROR"))
        return EvaluationResult(module=evaluator.name, version=evaluator.version, score=None,
                                severity=Severity.MEDIUM, issues=(issue,),
                                status=ModuleStatus.ERROR, error=f"{type(exc).__name__}: "
                                                                 f"{message}")


def dedupe(issues: list[Issue]) -> tuple[Issue, ...]:
    """Keep one issue per code (the most severe; the first on ties), in first-seen order.

    Orchestrator items (CONTEXT_MISSING, MODULE_ERROR) are per module and never merged.
    """
    kept: dict[tuple[str, str], Issue] = {}
    for issue in issues:
        key = (issue.module if issue.code in ORCHESTRATOR_TEMPLATES else "", issue.code)
        current = kept.get(key)
        if current is None or issue.severity.rank > current.severity.rank:
            kept[key] = issue
    return tuple(kept.values())


def rank_issues(issues: tuple[Issue, ...], weights: Mapping[str, float]) -> tuple[Issue, ...]:
    """Return ``issues`` in rank order: by severity, then module weight, then module and
    code."""
    return tuple(sorted(issues, key=lambda i: (-i.severity.rank, -weights.get(i.module, 0.0),
                                               i.module, i.code)))


def cap_ranked(ranked: tuple[Issue, ...], min_issues: int, max_issues: int
               ) -> tuple[Issue, ...]:
    """Return the top of ``ranked`` (in rank order): at most ``max_issues``; items below
    MEDIUM only fill the list up to ``min_issues``. Always a prefix of ``ranked``."""
    serious = sum(i.severity.rank >= Severity.MEDIUM.rank for i in ranked)
    shown = min(serious, max_issues)
    if shown < min_issues:
        shown = min(min_issues, len(ranked))
    return ranked[:shown]


def rank_and_cap(issues: tuple[Issue, ...], weights: Mapping[str, float], min_issues: int,
                 max_issues: int) -> tuple[Issue, ...]:
    """Return the top issues: by severity, then module weight, then code; at most
    ``max_issues``. Items below MEDIUM only fill the list up to ``min_issues``."""
    return cap_ranked(rank_issues(issues, weights), min_issues, max_issues)
