"""The orchestrator: run the configured bundle, dedupe, rank and cap, score, summarise.

A module that raises becomes a MODULE_ERROR item; a module whose required context piece is
missing is skipped and becomes a CONTEXT_MISSING item naming the piece and the reason. Neither
ever crashes the report.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from buddy.batch.context import BatchContext, from_pack
from buddy.config import ModuleConfig, ScoringConfig
from buddy.context.pack import ContextPack
from buddy.disclosures import select_disclosures
from buddy.domain import (
    EvaluationResult,
    Fact,
    Issue,
    Mitigation,
    ModuleStatus,
    Severity,
    TradeIntent,
)
from buddy.evaluators import registry
from buddy.evaluators.base import Evaluator, IssueTemplate
from buddy.explain import Explainer, TemplateExplainer, explanation_source
from buddy.report import BuddyReport, module_ok

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

    def run_modules(self, intent: TradeIntent, ctx: ContextPack) -> list[EvaluationResult]:
        """Return each enabled module's result, in configured order (never raises).

        Modules the user switched off (``ctx.account.disabled_modules``) do not run.
        """
        off = user_opt_outs(ctx)
        row = from_pack(intent, ctx)  # one row context shared by every module
        return [run_module(evaluator, intent, ctx, row) for evaluator, _ in self.evaluators
                if evaluator.name not in off]

    def run(self, intent: TradeIntent, ctx: ContextPack, *, eval_id: str | None = None
            ) -> BuddyReport:
        """Evaluate ``intent`` and return the Buddy Report."""
        results = self.run_modules(intent, ctx)
        return self.assemble(intent, ctx, results, eval_id=eval_id)

    def assemble(self, intent: TradeIntent, ctx: ContextPack,
                 results: list[EvaluationResult], *, eval_id: str | None = None
                 ) -> BuddyReport:
        """Combine module results into a report: dedupe, rank, cap, score."""
        weights = {e.name: w for e, w in self.evaluators}
        issues = dedupe([i for r in results for i in r.issues])
        top = rank_and_cap(issues, weights, self.config.min_issues, self.config.max_issues)
        scored = [(r.score, weights[r.module]) for r in results
                  if module_ok(r) and r.score is not None]
        total_weight = sum(w for _, w in scored)
        overall = (round(sum(s * w for s, w in scored) / total_weight, 1)
                   if total_weight > 0 else None)
        rendered = self.explainer.render(top, self._templates)
        return BuddyReport(
            eval_id=eval_id or uuid.uuid4().hex, intent=intent, overall_score=overall,
            overall_severity=Severity.highest(i.severity for i in issues),
            top_issues=top, rendered=rendered, all_issues=issues,
            modules=tuple(results), config_name=self.config.name,
            config_version=self.config.version, config_hash=self.config_hash,
            config_alias=self.config.alias,
            disabled_modules=tuple(sorted(set(self.disabled) | user_opt_outs(ctx))),
            context_missing=dict(ctx.missing),
            explanation_source=explanation_source(rendered),
            disclosures=select_disclosures(getattr(ctx.account, "disclosures_off", ())))


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
        if row is None:
            return evaluator.evaluate(intent, ctx)
        return evaluator.evaluate_batch(row).row(0)
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


def rank_and_cap(issues: tuple[Issue, ...], weights: Mapping[str, float], min_issues: int,
                 max_issues: int) -> tuple[Issue, ...]:
    """Return the top issues: by severity, then module weight, then code; at most
    ``max_issues``. Items below MEDIUM only fill the list up to ``min_issues``."""
    ordered = sorted(issues, key=lambda i: (-i.severity.rank, -weights.get(i.module, 0.0),
                                            i.module, i.code))
    serious = [i for i in ordered if i.severity.rank >= Severity.MEDIUM.rank]
    minor = [i for i in ordered if i.severity.rank < Severity.MEDIUM.rank]
    top = serious[:max_issues]
    if len(top) < min_issues:
        top += minor[: min_issues - len(top)]
    return tuple(top)
