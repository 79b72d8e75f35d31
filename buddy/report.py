"""The Buddy Report: the verdict and score, what was not checked, the ranked issues in plain
words (the top ones shown, every one reachable) and every module's result."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from buddy.config import config_label
from buddy.disclosures import NO_PREDICTION, DisclosureSelection, select_disclosures
from buddy.domain import (
    EvaluationResult,
    Issue,
    ModuleStatus,
    NotChecked,
    Severity,
    TradeIntent,
    Verdict,
)
from buddy.explain import RenderedIssue

DISCLAIMER = NO_PREDICTION
#: The colour of each severity in the HTML report.
SEVERITY_COLOURS = {"critical": "#b71c1c", "high": "#e65100", "medium": "#f9a825",
                    "low": "#2e7d32", "info": "#546e7a"}


@dataclass(frozen=True, slots=True)
class LogStatus:
    """Whether an evaluation's rows reached the database: ``state`` is 'logged', 'queued'
    (the file was busy: the rows wait in a durable queue next to it, logged by the next
    write), 'failed' (not logged, and queueing failed: ``detail`` says why) or
    'not_logged' (logging was not asked for)."""

    state: str = "not_logged"
    detail: str = ""

    @property
    def logged(self) -> bool:
        """Return True when the rows are in the database."""
        return self.state == "logged"

    def text(self) -> str:
        """Return one line for the user ('' when logged or not asked for)."""
        if self.state == "queued":
            return f"Log queued: {self.detail}"
        if self.state == "failed":
            return f"NOT logged: {self.detail}"
        return ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ExperimentArm:
    """The arm one nudge/warning experiment assigned this report
    (``buddy.behavior.experiments``): ``action`` show | reword | hold_back, applied to the
    report items ``codes`` (the same items in every arm); ``exempt`` the targeted items too
    severe to change, shown as they were; ``unchanged`` the items of ``codes`` a rewording
    left as they were (its style did not apply, or the guardrails refused it)."""

    experiment_id: str
    arm: str
    action: str
    codes: tuple[str, ...] = ()
    exempt: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """Return the arm as JSON-ready values."""
        return {"experiment_id": self.experiment_id, "arm": self.arm, "action": self.action,
                "codes": list(self.codes), "exempt": list(self.exempt),
                "unchanged": list(self.unchanged)}


@dataclass(frozen=True, slots=True, kw_only=True)
class BuddyReport:
    """What one orchestrator run says about one intent.

    ``verdict`` and ``overall_score`` follow ``buddy.scoring`` (the score lies in the verdict's
    ``score_band``; ``module_mean`` places it there). ``ranked_issues`` are every issue in
    rank order, ``top_issues`` the shown prefix; ``not_checked`` what could not be checked
    (never ranked, never scored as good); ``all_issues`` every deduped item, the logged ones.
    """

    eval_id: str
    intent: TradeIntent
    overall_score: float | None
    overall_severity: Severity  # the worst ranked issue's (info when none)
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
    verdict: Verdict = Verdict.CLEAR
    score_band: tuple[float, float] = (0.0, 100.0)  # the verdict's band, points
    module_mean: float | None = None  # weighted module mean (unknown modules at neutral)
    ranked_issues: tuple[Issue, ...] = ()  # every ranked issue; top_issues is its prefix
    rendered_more: tuple[RenderedIssue, ...] = ()  # ranked_issues after the top, same order
    not_checked: tuple[NotChecked, ...] = ()
    timezone: str = "UTC"  # the exchange's zone: times are shown in it
    logging: LogStatus = LogStatus()  # set by buddy.api after the log (or its queueing)
    experiment_arms: tuple[ExperimentArm, ...] = ()  # stored on the evaluation

    @property
    def n_unknown(self) -> int:
        """Return how many modules could not run (skipped or failed)."""
        return sum(not module_ok(m) for m in self.modules)

    def as_of_text(self) -> str:
        """Return the intent's as_of in the exchange's zone: '2012-06-01 16:00
        America/New_York'."""
        local = self.intent.as_of.astimezone(ZoneInfo(self.timezone))
        return f"{local:%Y-%m-%d %H:%M} {self.timezone}"

    def not_checked_text(self) -> str:
        """Return the one "not checked" line (empty when everything was checked): modules
        grouped by reason, then the not_checked codes by title."""
        modules: dict[str, list[str]] = {}
        for item in self.not_checked:
            if item.code in ("CONTEXT_MISSING", "MODULE_ERROR"):
                modules.setdefault(item.why, []).append(item.what)
        parts = [f"{', '.join(dict.fromkeys(names))} ({why})" for why, names in modules.items()]
        parts += [item.what.lower() for item in self.not_checked
                  if item.code not in ("CONTEXT_MISSING", "MODULE_ERROR")]
        return "not checked: " + "; ".join(parts) if parts else ""

    def history_text(self) -> str:
        """Return the "your history" line of the strategy-consistency module: the playbook
        the idea resembles with its membership, n and win rate, or the nearest one when none
        fits (empty when the module did not place the idea)."""
        module = next((m for m in self.modules if m.module == "strategy_consistency"
                       and m.status is ModuleStatus.OK), None)
        if module is None:
            return ""
        facts = {f.name: f.value for f in module.explain_facts}
        if facts.get("p_value") is None:  # not placed: the "not checked" line says why
            return ""
        number = facts.get("playbook_number")
        if number is not None:
            win = facts.get("playbook_win_rate")
            win_text = ("n/a" if win is None else
                        f"{win:.2f} {facts.get('playbook_win_rate_interval') or ''}".strip())
            return (f"Resembles your playbook #{number} '{facts.get('playbook_name')}' "
                    f"({facts.get('membership'):.0f}% membership; "
                    f"n={facts.get('playbook_n')}, win rate {win_text})")
        nearest = facts.get("nearest_number")
        if nearest is None:
            return "No playbook of yours fits this idea (you have no stable playbook yet)"
        return (f"No playbook of yours fits this idea (nearest #{nearest}, "
                f"{facts.get('nearest_membership'):.0f}%)")

    def issue_items(self) -> list[dict[str, Any]]:
        """Return every ranked issue as JSON, in rank order, with its ``rank`` (1 = first),
        ``shown`` (among the top issues) and its words."""
        words = {(r.module, r.code): r for r in (*self.rendered, *self.rendered_more)}
        shown = len(self.top_issues)
        items = []
        for rank, issue in enumerate(self.ranked_issues or self.top_issues, 1):
            item = issue.as_dict()
            item["rank"] = rank
            item["shown"] = rank <= shown
            rendered = words.get((issue.module, issue.code))
            if rendered is not None:
                item["title"] = rendered.title
                item["explanation"] = rendered.explanation
                item["recommendation"]["text"] = rendered.mitigation
                item["evidence_text"] = list(rendered.evidence)
                item["renderer"] = rendered.renderer
                item["fallback_reason"] = rendered.fallback_reason
            items.append(item)
        return items

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
            "verdict": self.verdict.value,
            "overall_score": self.overall_score,
            "overall_severity": self.overall_severity.value,
            "not_checked": [n.as_dict() for n in self.not_checked],
            "top_issues": [{"module": r.module, "code": r.code, "severity": r.severity,
                            "title": r.title, "explanation": r.explanation,
                            "mitigation": r.mitigation, "renderer": r.renderer,
                            "fallback_reason": r.fallback_reason} for r in self.rendered],
            "n_issues_total": len(self.all_issues),
            "n_ranked": len(self.ranked_issues),
            "disabled_modules": list(self.disabled_modules),
            "context_missing": dict(self.context_missing),
            "explanation_source": self.explanation_source,
            "disclosures": self.disclosures.as_dict(),
            "disclaimer": DISCLAIMER,
        }

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON report (the CLI's --json output): every ranked issue with its rank
        (the top ones ``shown``), and what was not checked."""
        return {
            "eval_id": self.eval_id,
            "intent": self.intent.as_dict(),
            "eval_ts": self.eval_ts.isoformat(),
            "as_of_local": self.as_of_text(),
            "verdict": self.verdict.value,
            "overall_score": self.overall_score,
            "overall_severity": self.overall_severity.value,
            "score_band": list(self.score_band),
            "module_mean": self.module_mean,
            "n_issues": len(self.ranked_issues),
            "n_shown": len(self.top_issues),
            "issues": self.issue_items(),
            "not_checked": [n.as_dict() for n in self.not_checked],
            "n_unknown": self.n_unknown,
            "modules_run": self.modules_run(),
            "experiment_arms": [a.as_dict() for a in self.experiment_arms],
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
            "experiment_arms_json": (json.dumps([a.as_dict() for a in self.experiment_arms])
                                     if self.experiment_arms else None),
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
        return self.text()

    def text(self, *, show_all: bool = False) -> str:
        """Return the text report: the verdict first, what was not checked, the top issues
        (every ranked issue with ``show_all``), the modules and the config."""
        i = self.intent
        score = "n/a" if self.overall_score is None else f"{self.overall_score:.0f}/100"
        stop = "none" if i.proposed_stop is None else f"{i.proposed_stop:g}"
        target = "none" if i.proposed_target is None else f"{i.proposed_target:g}"
        n_ranked, n_top = len(self.ranked_issues), len(self.top_issues)
        shown = (f"all {n_ranked} shown" if show_all or n_top == n_ranked else
                 f"top {n_top} shown; --all shows every one")
        lines = [
            f"Buddy Report  {i.symbol} {i.side.value} {i.timeframe.value}  as of "
            f"{self.as_of_text()}",
            f"  verdict {self.verdict.value.upper()}   score {score}   worst issue "
            f"{self.overall_severity.value.upper()}   issues {n_ranked} ({shown})",
        ]
        not_checked = self.not_checked_text()
        if not_checked:
            lines.append(f"  {not_checked}")
        lines.append(f"  entry {i.proposed_entry:g}  stop {stop}  target {target}  size "
                     f"{i.proposed_size:g}")
        history = self.history_text()
        if history:
            lines.append(f"  your history: {history}")
        rendered = (*self.rendered, *self.rendered_more) if show_all else self.rendered
        for n, r in enumerate(rendered, 1):
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
        return self.html()

    def html(self) -> str:
        """Return the report as HTML (template ``buddy/templates/report.html.j2``): the
        verdict, the top issues with their evidence, the others behind an expander."""
        from buddy.templates import render

        modules = ", ".join(f"{m.module}: {m.status.value}"
                            + ("" if m.score is None else f" {m.score:.0f}")
                            for m in self.modules)
        return render("report.html.j2", colours=SEVERITY_COLOURS, intent=self.intent,
                      as_of=self.as_of_text(), verdict=self.verdict.value,
                      score="n/a" if self.overall_score is None else f"{self.overall_score:.0f}",
                      worst=self.overall_severity.value, not_checked=self.not_checked_text(),
                      rendered=self.rendered, rendered_more=self.rendered_more,
                      modules=modules, config=self.config_label(), disclaimer=DISCLAIMER)


def module_ok(result: EvaluationResult) -> bool:
    """Return True when a module produced a score."""
    return result.status is ModuleStatus.OK and result.score is not None
