"""The Buddy Report view: a plain model of what is shown, and the widgets that show it.

``ReportModel.build`` reads a BuddyReport and its ContextPack generically: issues, modules and
missing pieces come from the report as they are, so a new evaluator module appears here
without a change. Only the context pieces (regime, MTFA) have badges of their own, and an
absent piece shows as "missing: <reason>".

The header leads with the verdict and the one "not checked" line; the top issues are shown as
cards, and every other ranked issue sits in an expander below them ("All other issues").
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import ipywidgets as w

from buddy.context.pack import ContextPack
from buddy.domain import Fact, Issue, Side
from buddy.evidence import format_value
from buddy.explain import RenderedIssue, fact_label
from buddy.report import DISCLAIMER, BuddyReport

if TYPE_CHECKING:
    from buddy.store import Store

SEVERITY_COLOURS: Mapping[str, str] = {
    "critical": "#b71c1c", "high": "#e65100", "medium": "#f9a825", "low": "#2e7d32",
    "info": "#546e7a",
}
TONE_COLOURS: Mapping[str, str] = {
    "good": "#2e7d32", "warn": "#e65100", "bad": "#b71c1c", "neutral": "#546e7a",
}
#: Colour of each verdict's pill.
VERDICT_COLOURS: Mapping[str, str] = {
    "blocked": "#b71c1c", "fix first": "#e65100", "review": "#f9a825", "clear": "#2e7d32",
}
#: Transition risk (probability of leaving the current regime within the horizon) shown as
#: a warning from this value.
TRANSITION_RISK_WARN = 0.5
#: MTFA alignment (-1..+1) at or beyond this magnitude counts as aligned or opposed.
ALIGNMENT_MARGIN = 0.3


@dataclass(frozen=True, slots=True, kw_only=True)
class EvidenceRow:
    """One number behind an issue, formatted with its unit."""

    name: str
    value: str
    threshold: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class IssueRow:
    """One of the top issues, as the trader reads it."""

    rank: int
    module: str
    code: str
    severity: str
    colour: str
    title: str
    explanation: str
    action: str  # the recommended action in plain words
    action_code: str
    evidence: tuple[EvidenceRow, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Badge:
    """A labelled value with a tone (good, warn, bad, neutral)."""

    label: str
    value: str
    tone: str = "neutral"


@dataclass(frozen=True, slots=True, kw_only=True)
class PieceBadges:
    """The badges of one context piece, or the reason it is missing."""

    piece: str
    badges: tuple[Badge, ...] = ()
    missing: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ModuleRow:
    """What one module did: ran with a score, was skipped, or failed."""

    name: str
    status: str
    score: float | None
    n_issues: int
    note: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportModel:
    """Everything the report view shows, derived from one BuddyReport and its ContextPack."""

    eval_id: str
    headline: str
    score: float | None
    severity: str
    colour: str
    issues: tuple[IssueRow, ...]
    n_issues_total: int
    regime: PieceBadges
    mtfa: PieceBadges
    modules: tuple[ModuleRow, ...]
    disabled_modules: tuple[str, ...]
    context_missing: Mapping[str, str] = field(default_factory=dict)
    config: str = ""
    disclosures: tuple[tuple[str, str], ...] = ()  # (title, text) of each shown disclosure
    disclosure_notes: tuple[str, ...] = ()
    disclaimer: str = DISCLAIMER
    verdict: str = "clear"  # 'blocked', 'fix first', 'review' or 'clear'
    not_checked: str = ""  # the report's one "not checked" line ('' when all was checked)
    more_issues: tuple[IssueRow, ...] = ()  # the ranked issues after the top ones

    @property
    def score_text(self) -> str:
        """Return the score as shown ('82/100', or 'n/a' when no module could score)."""
        return "n/a" if self.score is None else f"{self.score:.0f}/100"

    @classmethod
    def build(cls, report: BuddyReport, ctx: ContextPack) -> ReportModel:
        """Return the view model of ``report`` evaluated on ``ctx``."""
        intent = report.intent
        issues = tuple(_issue_row(n, issue, words) for n, (issue, words) in enumerate(
            zip(report.top_issues, report.rendered, strict=True), 1))
        ranked = report.ranked_issues or report.top_issues
        more = tuple(_issue_row(n, issue, words) for n, (issue, words) in enumerate(
            zip(ranked[len(issues):], report.rendered_more, strict=True), len(issues) + 1))
        modules = tuple(ModuleRow(name=m.module, status=m.status.value, score=m.score,
                                  n_issues=len(m.issues), note=_module_note(m.missing, m.error))
                        for m in report.modules)
        selection = report.disclosures
        return cls(
            eval_id=report.eval_id,
            headline=(f"{intent.symbol} {intent.side.value} {intent.timeframe.value} as of "
                      f"{report.as_of_text()}: entry {intent.proposed_entry:g}, "
                      f"stop {_price(intent.proposed_stop)}, target "
                      f"{_price(intent.proposed_target)}, size {intent.proposed_size:g}"),
            score=report.overall_score, severity=report.overall_severity.value,
            colour=SEVERITY_COLOURS.get(report.overall_severity.value, "#546e7a"),
            issues=issues, n_issues_total=len(ranked),
            regime=regime_badges(ctx, intent.holding_horizon),
            mtfa=mtfa_badges(ctx, intent.side), modules=modules,
            disabled_modules=tuple(report.disabled_modules),
            context_missing=dict(report.context_missing),
            config=f"{report.config_name}@{report.config_version} #{report.config_hash}",
            disclosures=tuple((d.title, d.text) for d in selection.shown
                              if d.text != DISCLAIMER),
            disclosure_notes=selection.notes(), verdict=report.verdict.value,
            not_checked=report.not_checked_text(), more_issues=more)


def _issue_row(rank: int, issue: Issue, words: RenderedIssue) -> IssueRow:
    return IssueRow(rank=rank, module=words.module, code=words.code, severity=words.severity,
                    colour=SEVERITY_COLOURS.get(words.severity, "#546e7a"), title=words.title,
                    explanation=words.explanation, action=words.mitigation,
                    action_code=issue.mitigation.action,
                    evidence=tuple(_evidence_row(f) for f in issue.evidence)
                    + tuple(_evidence_row(f, prefix="action: ")
                            for f in issue.mitigation.facts))


def _price(value: float | None) -> str:
    return "none" if value is None else f"{value:g}"


def _evidence_row(fact: Fact, prefix: str = "") -> EvidenceRow:
    threshold = None if fact.threshold is None else format_value(fact.threshold, fact.unit)
    return EvidenceRow(name=prefix + fact_label(fact.name, fact.unit),
                       value=format_value(fact.value, fact.unit),
                       threshold=threshold)


def _module_note(missing: Mapping[str, str], error: str | None) -> str:
    if error:
        return error
    return "; ".join(f"missing {piece}: {reason}" for piece, reason in missing.items())


def regime_badges(ctx: ContextPack, horizon: int | None) -> PieceBadges:
    """Return trend, volatility, liquidity and transition-risk badges of the regime piece."""
    regime = ctx.regime
    if regime is None:
        return PieceBadges(piece="regime", missing=ctx.missing.get("regime", "not provided"))
    trend_tone = {"up": "good", "down": "bad"}.get(regime.trend_state, "neutral")
    vol_tone = "warn" if regime.vol_state == "volatile" or regime.vol_expansion_flag else (
        "neutral")
    expanding = ", expanding" if regime.vol_expansion_flag else ""
    bars = max(1, horizon or 1)
    risk = regime.transition_risk(bars)
    badges = [
        Badge(label="trend", value=f"{regime.trend_state} (ADX {regime.trend_strength:.0f})",
              tone=trend_tone),
        Badge(label="volatility", value=f"{regime.vol_state} (z {regime.vol_z:+.1f}"
                                        f"{expanding})", tone=vol_tone),
        Badge(label="liquidity", value=f"{regime.liquidity_state} (relvol "
                                       f"{regime.relvol:.2f})",
              tone="warn" if regime.liquidity_state == "thin" else "neutral"),
        Badge(label="transition risk",
              value="n/a (no HMM fitted)" if risk is None else f"{risk:.0%} within {bars} bars",
              tone="warn" if risk is not None and risk >= TRANSITION_RISK_WARN else "neutral"),
    ]
    if regime.hmm_state_label:
        badges.append(Badge(label="HMM state", value=regime.hmm_state_label))
    return PieceBadges(piece="regime", badges=tuple(badges))


def mtfa_badges(ctx: ContextPack, side: Side) -> PieceBadges:
    """Return the alignment badge, one badge per timeframe and one per conflict."""
    mtfa = ctx.mtfa
    if mtfa is None:
        return PieceBadges(piece="mtfa", missing=ctx.missing.get("mtfa", "not provided"))
    signed = mtfa.alignment_score * side.sign
    if signed >= ALIGNMENT_MARGIN:
        tone, words = "good", f"with your {side.value}"
    elif signed <= -ALIGNMENT_MARGIN:
        tone, words = "warn", f"against your {side.value}"
    else:
        tone, words = "neutral", "mixed"
    badges = [Badge(label="alignment", value=f"{mtfa.alignment_score:+.2f} ({words})",
                    tone=tone)]
    badges += [Badge(label=t.timeframe, value=f"{t.direction} (ADX {t.strength:.0f})",
                     tone={"up": "good", "down": "bad"}.get(t.direction, "neutral"))
               for t in mtfa.stack]
    badges += [Badge(label="conflict", value=c, tone="warn") for c in mtfa.conflicts]
    return PieceBadges(piece="mtfa", badges=tuple(badges))


# ------------------------------------------------------------------------------ widgets
def _e(text: Any) -> str:
    return html.escape(str(text))


def _pill(text: str, colour: str) -> str:
    return (f"<span style='background:{colour};color:white;border-radius:9px;padding:1px 8px;"
            f"font-size:11px;font-weight:600'>{_e(text)}</span>")


def _badge_html(badge: Badge) -> str:
    colour = TONE_COLOURS.get(badge.tone, TONE_COLOURS["neutral"])
    return (f"<span class='tb-badge' style='display:inline-block;margin:2px 4px 2px 0;"
            f"border:1px solid {colour};border-radius:4px;padding:1px 6px;font-size:12px'>"
            f"<span style='color:#607d8b'>{_e(badge.label)}</span> "
            f"<b style='color:{colour}'>{_e(badge.value)}</b></span>")


def _piece_html(title: str, piece: PieceBadges) -> str:
    if piece.missing is not None:
        body = (f"<span class='tb-missing' style='color:#78909c;font-size:12px'>missing: "
                f"{_e(piece.missing)}</span>")
    else:
        body = "".join(_badge_html(b) for b in piece.badges)
    return (f"<div class='tb-piece tb-piece-{piece.piece}' style='margin:2px 0'>"
            f"<b style='font-size:12px'>{_e(title)}</b> {body}</div>")


def evidence_table(rows: tuple[EvidenceRow, ...]) -> str:
    """Return the evidence rows as an HTML table."""
    if not rows:
        return "<i>no numbers recorded</i>"
    body = "".join(f"<tr><td>{_e(r.name)}</td><td style='text-align:right'><b>{_e(r.value)}"
                   f"</b></td><td style='color:#78909c'>{_e(r.threshold or '')}</td></tr>"
                   for r in rows)
    return ("<table class='tb-evidence-table' style='font-size:12px;border-collapse:collapse'>"
            "<tr style='color:#78909c'><th style='text-align:left'>fact</th><th>value</th>"
            f"<th>threshold</th></tr>{body}</table>")


class ReportView:
    """The report panel: rebuilt from a ReportModel on each new report, UI-only otherwise."""

    def __init__(self, chart: w.Widget | None = None, *, feedback_store: Store | None = None
                 ) -> None:
        # with a store, each shown issue has Dismiss / Helpful / Not helpful buttons that
        # record the trader's feedback on it (buddy.behavior.feedback)
        self.feedback_store = feedback_store
        self.feedback: list[FeedbackButtons] = []
        self.header = w.HTML("<i>Fill in the idea and press Evaluate.</i>")
        self.header.add_class("tb-header")
        self.context = w.HTML()
        self.issues = w.VBox()
        self.issues.add_class("tb-issues")
        self.more = w.Accordion(selected_index=None, layout=w.Layout(display="none"))
        self.more.add_class("tb-more-issues")
        self.details = w.HTML()
        self.evidence: list[w.Accordion] = []
        middle = [] if chart is None else [chart]
        self.widget = w.VBox([self.header, self.context, *middle, self.issues, self.more,
                              self.details],
                             layout=w.Layout(width="100%"))
        self.widget.add_class("tb-report")
        self.model: ReportModel | None = None

    def show_message(self, text: str, colour: str = "#546e7a") -> None:
        """Replace the report with a message (e.g. after invalid input)."""
        self.model = None
        self.header.value = f"<span style='color:{colour}'>{_e(text)}</span>"
        self.context.value = self.details.value = ""
        self.issues.children = ()
        self.more.children = ()
        self.more.layout.display = "none"
        self.evidence = []

    def show(self, model: ReportModel) -> None:
        """Show ``model``."""
        self.model = model
        verdict = (f"<span class='tb-verdict'>"
                   f"{_pill(model.verdict.upper(), VERDICT_COLOURS.get(model.verdict, '#546e7a'))}"
                   "</span> ")
        not_checked = "" if not model.not_checked else (
            f"<div class='tb-not-checked' style='font-size:12px;color:#6d4c41;margin-top:3px'>"
            f"&#9888; {_e(model.not_checked)}</div>")
        self.header.value = (
            "<div class='tb-summary' style='display:flex;align-items:center;gap:14px'>"
            f"<div class='tb-score' style='font-size:30px;font-weight:700;color:{model.colour}'>"
            f"<span class='tb-score-value'>{_e(model.score_text)}</span></div>"
            f"<div><div>{verdict}{_pill(model.severity.upper(), model.colour)} "
            f"<span style='font-size:12px;color:#546e7a'>worst severity &middot; "
            f"{model.n_issues_total} issues, top {len(model.issues)} shown</span></div>"
            f"<div style='font-size:13px;margin-top:3px'>{_e(model.headline)}</div>"
            f"{not_checked}</div></div>")
        self.context.value = (_piece_html("Regime", model.regime)
                              + _piece_html("Timeframes", model.mtfa))
        cards = []
        self.evidence = []
        self.feedback = []
        for row in model.issues:
            card = w.HTML(
                f"<div style='border-left:4px solid {row.colour};padding:2px 8px'>"
                f"<div><b>{row.rank}.</b> {_pill(row.severity.upper(), row.colour)} "
                f"<b class='tb-issue-title'>{_e(row.title)}</b> <small style='color:#90a4ae'>"
                f"{_e(row.module)} / {_e(row.code)}</small></div>"
                f"<div style='font-size:13px;margin:2px 0'>{_e(row.explanation)}</div>"
                f"<div style='font-size:13px'>&rarr; <b>Recommended:</b> {_e(row.action)} "
                f"<small style='color:#90a4ae'>({_e(row.action_code)})</small></div></div>")
            evidence = w.Accordion(children=[w.HTML(evidence_table(row.evidence))],
                                   titles=(f"Evidence ({len(row.evidence)} numbers)",),
                                   selected_index=None)
            evidence.add_class("tb-evidence")
            self.evidence.append(evidence)
            buttons = ([] if self.feedback_store is None else
                       [self._feedback_buttons(model.eval_id, row.code).widget])
            issue = w.VBox([card, evidence, *buttons], layout=w.Layout(margin="4px 0"))
            issue.add_class("tb-issue")
            issue.add_class(f"tb-severity-{row.severity}")
            cards.append(issue)
        if not cards:
            cards.append(w.HTML("<i>No issues found.</i>"))
        self.issues.children = tuple(cards)
        rest = [w.HTML(_more_html(row)) for row in model.more_issues]
        self.more.children = (w.VBox(rest),) if rest else ()
        if rest:
            self.more.set_title(0, f"All other issues ({len(rest)})")
        self.more.selected_index = None
        self.more.layout.display = "" if rest else "none"
        self.details.value = _details_html(model)


    def _feedback_buttons(self, eval_id: str, code: str) -> FeedbackButtons:
        """Return the feedback buttons of one shown issue, wired to record its feedback."""
        found = FeedbackButtons(eval_id=eval_id, code=code, buttons={
            kind: w.Button(description=label, layout=w.Layout(width="auto"))
            for kind, label in (("dismissed", "Dismiss"), ("helpful", "Helpful"),
                                ("not_helpful", "Not helpful"))}, status=w.HTML())
        for kind, button in found.buttons.items():
            button.add_class(f"tb-feedback-{kind}")
            button.on_click(lambda _, kind=kind: self._record(found, kind))
        self.feedback.append(found)
        return found

    def _record(self, found: FeedbackButtons, kind: str) -> None:
        from buddy.behavior.feedback import record_feedback
        from buddy.errors import BuddyError

        assert self.feedback_store is not None  # buttons exist only with a store
        try:
            record_feedback(self.feedback_store, eval_id=found.eval_id, code=found.code,
                            kind=kind, source="widget")
        except BuddyError as exc:  # e.g. the evaluation's log is still queued
            found.status.value = f"<span style='color:#b71c1c'>{_e(exc)}</span>"
            return
        found.status.value = (f"<span style='color:#2e7d32'>thanks: "
                              f"{_e(kind.replace('_', ' '))}</span>")


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedbackButtons:
    """The Dismiss / Helpful / Not helpful buttons under one shown issue."""

    eval_id: str
    code: str
    buttons: Mapping[str, w.Button]
    status: w.HTML

    @property
    def widget(self) -> w.Widget:
        """Return the row of buttons and its status line."""
        row = w.HBox([*self.buttons.values(), self.status])
        row.add_class("tb-feedback")
        return row


def _more_html(row: IssueRow) -> str:
    """Return one issue beyond the top ones: rank, severity, title, words and its numbers."""
    return (f"<div class='tb-more-issue' style='border-left:4px solid {row.colour};"
            f"padding:2px 8px;margin:3px 0'>"
            f"<div><b>{row.rank}.</b> {_pill(row.severity.upper(), row.colour)} "
            f"<b class='tb-issue-title'>{_e(row.title)}</b> <small style='color:#90a4ae'>"
            f"{_e(row.module)} / {_e(row.code)}</small></div>"
            f"<div style='font-size:13px;margin:2px 0'>{_e(row.explanation)}</div>"
            f"<div style='font-size:13px'>&rarr; {_e(row.action)}</div>"
            f"{evidence_table(row.evidence)}</div>")


def _details_html(model: ReportModel) -> str:
    rows = "".join(
        f"<tr><td>{_e(m.name)}</td><td>{_e(m.status)}</td>"
        f"<td style='text-align:right'>{'' if m.score is None else f'{m.score:.0f}'}</td>"
        f"<td style='text-align:right'>{m.n_issues}</td>"
        f"<td style='color:#78909c'>{_e(m.note)}</td></tr>" for m in model.modules)
    parts = [
        "<details class='tb-modules'><summary style='font-size:12px'>Checks run "
        f"({len(model.modules)})</summary><table style='font-size:12px'>"
        "<tr style='color:#78909c'><th>check</th><th>status</th><th>score</th><th>issues</th>"
        f"<th></th></tr>{rows}</table></details>",
    ]
    if model.disabled_modules:
        parts.append(f"<div style='font-size:12px'>Switched off by you: "
                     f"{_e(', '.join(model.disabled_modules))}</div>")
    if model.context_missing:
        items = "".join(f"<li><b>{_e(k)}</b>: {_e(v)}</li>"
                        for k, v in model.context_missing.items())
        parts.append("<details class='tb-context-missing'><summary style='font-size:12px'>"
                     f"Context missing ({len(model.context_missing)})</summary>"
                     f"<ul style='font-size:12px'>{items}</ul></details>")
    notes = "".join(f"<div>{_e(n)}</div>" for n in model.disclosure_notes)
    shown = "".join(f"<div><b>{_e(t)}.</b> {_e(x)}</div>" for t, x in model.disclosures)
    parts.append(f"<div style='font-size:11px;color:#607d8b;margin-top:6px'>{shown}{notes}"
                 f"<div>config {_e(model.config)} &middot; eval {_e(model.eval_id)}</div>"
                 f"<div class='tb-disclaimer'><b>{_e(model.disclaimer)}</b></div></div>")
    return "".join(parts)
