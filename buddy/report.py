"""The Buddy Report: overall score, the top issues in plain words, and every module's result."""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from buddy.config import config_label
from buddy.disclosures import NO_PREDICTION, DisclosureSelection, select_disclosures
from buddy.domain import EvaluationResult, Issue, ModuleStatus, Severity, TradeIntent
from buddy.explain import RenderedIssue

DISCLAIMER = NO_PREDICTION


@dataclass(frozen=True, slots=True, kw_only=True)
class BuddyReport:
    """What one orchestrator run says about one intent."""

    eval_id: str
    intent: TradeIntent
    overall_score: float | None
    overall_severity: Severity
    top_issues: tuple[Issue, ...]
    rendered: tuple[RenderedIssue, ...]  # plain-language form of top_issues, same order
    all_issues: tuple[Issue, ...]
    modules: tuple[EvaluationResult, ...]
    config_name: str
    config_version: str
    config_hash: str
    config_alias: str = ""  # what the config was resolved from: 'production', 'packaged'
    disabled_modules: tuple[str, ...] = ()
    context_missing: Mapping[str, str] = field(default_factory=dict)
    explanation_source: str = "template"  # 'template', 'llm' or 'mixed'
    disclosures: DisclosureSelection = field(default_factory=select_disclosures)

    @property
    def eval_ts(self) -> datetime:
        """Return the point in time the evaluation describes (the intent's as_of)."""
        return self.intent.as_of

    def config_dict(self) -> dict[str, str]:
        """Return the config as resolved: name, version, the alias it came from, hash."""
        return {"name": self.config_name, "version": self.config_version,
                "alias": self.config_alias, "hash": self.config_hash}

    def config_label(self) -> str:
        """Return 'name@version (alias) #hash', the config as the report names it."""
        return config_label(self.config_name, self.config_version, self.config_alias,
                            self.config_hash)

    def modules_run(self) -> list[dict[str, Any]]:
        """Return each module's name, version, status, score and weight-free summary."""
        return [{"name": m.module, "version": m.version, "status": m.status.value,
                 "score": m.score, "n_issues": len(m.issues), "missing": dict(m.missing),
                 "error": m.error} for m in self.modules]

    def summary(self) -> dict[str, Any]:
        """Return the Buddy Summary: score, severity, and the top issues in plain words."""
        return {
            "overall_score": self.overall_score,
            "overall_severity": self.overall_severity.value,
            "top_issues": [{"module": r.module, "code": r.code, "severity": r.severity,
                            "title": r.title, "explanation": r.explanation,
                            "mitigation": r.mitigation, "renderer": r.renderer,
                            "fallback_reason": r.fallback_reason} for r in self.rendered],
            "n_issues_total": len(self.all_issues),
            "disabled_modules": list(self.disabled_modules),
            "context_missing": dict(self.context_missing),
            "explanation_source": self.explanation_source,
            "disclosures": self.disclosures.as_dict(),
            "disclaimer": DISCLAIMER,
        }

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON report (the CLI's --json output)."""
        rendered = {(r.module, r.code): r for r in self.rendered}
        issues = []
        for issue in self.top_issues:
            item = issue.as_dict()
            words = rendered.get((issue.module, issue.code))
            if words is not None:
                item["title"] = words.title
                item["explanation"] = words.explanation
                item["recommendation"]["text"] = words.mitigation
                item["renderer"] = words.renderer
                item["fallback_reason"] = words.fallback_reason
            issues.append(item)
        return {
            "eval_id": self.eval_id,
            "intent": self.intent.as_dict(),
            "eval_ts": self.eval_ts.isoformat(),
            "overall_score": self.overall_score,
            "overall_severity": self.overall_severity.value,
            "issues": issues,
            "modules_run": self.modules_run(),
            "config": self.config_dict(),
            "config_hash": self.config_hash,
            "disabled_modules": list(self.disabled_modules),
            "context_missing": dict(self.context_missing),
            "explanation_source": self.explanation_source,
            "disclosures": self.disclosures.as_dict(),
            "disclaimer": DISCLAIMER,
        }

    def to_json(self, indent: int | None = 2) -> str:
        """Return the report as JSON text."""
        return json.dumps(self.to_dict(), indent=indent, default=str)

    # ---------------------------------------------------------------- logging rows
    def evaluation_row(self) -> dict[str, Any]:
        """Return the trade_evaluations row (created_at is stamped by the store)."""
        return {
            "eval_id": self.eval_id, "intent_id": self.intent.intent_id,
            "user_id": self.intent.user_id, "symbol": self.intent.symbol,
            "timeframe": self.intent.timeframe.value, "eval_ts": self.eval_ts,
            "overall_score": self.overall_score,
            "overall_severity": self.overall_severity.value,
            "modules_run_json": json.dumps({"config": self.config_dict(),
                                            "modules": self.modules_run()}, default=str),
            "summary_json": json.dumps(self.summary(), default=str),
        }

    def item_rows(self) -> list[dict[str, Any]]:
        """Return one trade_evaluation_items row per issue found (all, not only the top)."""
        rows = []
        for n, issue in enumerate(self.all_issues):
            data = issue.as_dict()
            rows.append({"eval_item_id": f"{self.eval_id}-{n:03d}", "eval_id": self.eval_id,
                         "module_name": issue.module, "issue_code": issue.code,
                         "severity": issue.severity.value,
                         "evidence_json": json.dumps(data["evidence"]),
                         "recommendation_json": json.dumps(data["recommendation"])})
        return rows

    # ---------------------------------------------------------------- human forms
    def __str__(self) -> str:
        i = self.intent
        score = "n/a" if self.overall_score is None else f"{self.overall_score:.0f}/100"
        stop = "none" if i.proposed_stop is None else f"{i.proposed_stop:g}"
        target = "none" if i.proposed_target is None else f"{i.proposed_target:g}"
        lines = [
            f"Buddy Report  {i.symbol} {i.side.value} {i.timeframe.value}  as of "
            f"{i.as_of:%Y-%m-%d %H:%M} UTC",
            f"  entry {i.proposed_entry:g}  stop {stop}  target {target}  size "
            f"{i.proposed_size:g}",
            f"  score {score}   severity {self.overall_severity.value.upper()}   "
            f"issues {len(self.all_issues)} (top {len(self.top_issues)} shown)",
        ]
        for n, r in enumerate(self.rendered, 1):
            lines.append(f"  {n}. [{r.severity.upper()}] {r.title} ({r.module}/{r.code})")
            lines.append(f"     {r.explanation}")
            lines.append(f"     -> {r.mitigation}")
        ran = ", ".join(f"{m.module} {m.status.value}" for m in self.modules)
        lines.append(f"  modules: {ran}")
        if self.disabled_modules:
            lines.append(f"  switched off: {', '.join(self.disabled_modules)}")
        lines.append(f"  config {self.config_label()}"
                     f"   eval {self.eval_id}   explanations: {self.explanation_source}")
        lines.extend(f"  {note}" for note in self.disclosures.notes())
        lines.append(f"  {DISCLAIMER}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        colours = {"critical": "#b71c1c", "high": "#e65100", "medium": "#f9a825",
                   "low": "#2e7d32", "info": "#546e7a"}
        i = self.intent
        score = "n/a" if self.overall_score is None else f"{self.overall_score:.0f}"
        rows = "".join(
            f"<li><b style='color:{colours[r.severity]}'>{r.severity.upper()}</b> "
            f"{html.escape(r.title)} <code>{r.code}</code><br>{html.escape(r.explanation)}"
            f"<br><i>{html.escape(r.mitigation)}</i><details><summary>evidence</summary>"
            + "<br>".join(html.escape(e) for e in r.evidence) + "</details></li>"
            for r in self.rendered)
        modules = ", ".join(f"{m.module}: {m.status.value}"
                            + ("" if m.score is None else f" {m.score:.0f}")
                            for m in self.modules)
        return (f"<div><h4>Buddy Report: {html.escape(i.symbol)} {i.side.value} "
                f"{i.timeframe.value} as of {i.as_of:%Y-%m-%d %H:%M} UTC</h4>"
                f"<p>Score <b>{score}</b>/100, severity <b>{self.overall_severity.value}</b>"
                f"</p><ol>{rows}</ol><p><small>{html.escape(modules)}<br>config "
                f"{html.escape(self.config_label())}<br>{DISCLAIMER}</small></p></div>")


def module_ok(result: EvaluationResult) -> bool:
    """Return True when a module produced a score."""
    return result.status is ModuleStatus.OK and result.score is not None
