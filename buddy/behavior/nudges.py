"""The nudge library: supportive, specific wording per behaviour detector and severity.

A nudge says what the trader's OWN figures show (the idea's number, their usual number from n
of their own trades or days, the difference with its 95% interval) and offers one step
they can take; it never predicts a price or an outcome and never rests on a rule of thumb
alone. Every number in a nudge is a placeholder filled from the detector's facts, so the
guardrails (``buddy.guardrails.check_text``) can trace each one; ``check_library`` renders
every wording at every severity and returns what the guardrails refuse (a test holds it
empty).

Each entry (``NudgeWording``) holds, once:

- ``code``: the issue code BehaviorNudgesEvaluator emits, and ``detector``: the detector's
  name (``buddy.behavior.params.DETECTORS``);
- ``title`` and ``explanation``: what was found, with ``{placeholders}`` naming ``evidence``
  (the facts, their units and digits: a fact renders with its unit, so the text never
  repeats it);
- ``steps``: the supportive next step per severity (low: a light check-in; medium: a concrete
  step; high: a pause), rendered as the issue's mitigation through the ``step`` fact;
- ``action``: the mitigation's code; ``harm`` and ``measure``: what the nudge warns of and
  the outcome measure that shows it (``buddy.evaluators.measures``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from buddy.domain import Fact, Severity
from buddy.evaluators.base import Evidence

__all__ = ["LIBRARY", "MONEY", "NudgeWording", "RenderedNudge", "by_code", "check_library",
           "render_nudge", "sample_facts", "step_for"]

#: The unit placeholder of amounts in the account's currency.
MONEY = "<money>"
#: The severities a nudge is worded for (a behaviour nudge is never CRITICAL: it is about
#: the trader, not about a broken order).
SEVERITIES: tuple[Severity, ...] = (Severity.LOW, Severity.MEDIUM, Severity.HIGH)

def shared(n_unit: str, unit: str, digits: int = 2) -> tuple[Evidence, ...]:
    """Return the facts every nudge carries besides its own: the sample its baseline came
    from (``n_unit``: trades, days, pairs) and the 95% interval of the difference from the
    trader's usual (in ``unit``)."""
    return (Evidence("n_baseline", n_unit), Evidence("difference_low", unit, digits=digits),
            Evidence("difference_high", unit, digits=digits))


@dataclass(frozen=True, slots=True)
class NudgeWording:
    """One detector's nudge (see the module docstring)."""

    detector: str
    code: str
    title: str
    explanation: str
    steps: Mapping[Severity, str]
    evidence: tuple[Evidence, ...]
    action: str
    harm: str
    measure: str | None


@dataclass(frozen=True, slots=True)
class RenderedNudge:
    """A nudge as the trader reads it."""

    code: str
    severity: Severity
    title: str
    explanation: str
    step: str


LIBRARY: dict[str, NudgeWording] = {w.detector: w for w in (
    NudgeWording(
        "revenge", "REVENGE_TRADING", "A larger trade soon after a loss",
        "Your {loss_symbol} trade closed {hours_since_loss} before this idea with a loss of "
        "{loss_amount} ({loss_r}). This idea risks {risk_amount}, {risk_ratio} the median "
        "{usual_risk} of your last {n_baseline} (difference {difference}, 95% interval "
        "{difference_low} to {difference_high}).",
        {Severity.LOW: "If this size was planned before the loss, carry on; if not, your "
                       "usual size is the one your record rests on.",
         Severity.MEDIUM: "Consider your usual size for this entry, or a short break to "
                          "review the losing trade first.",
         Severity.HIGH: "Consider pausing before this entry: review the losing trade, then "
                        "come back to it at your usual size."},
        (Evidence("loss_symbol"), Evidence("loss_amount", MONEY, digits=2),
         Evidence("loss_r", "R", digits=2), Evidence("hours_since_loss", "hours", digits=1),
         Evidence("risk_amount", MONEY, digits=2), Evidence("usual_risk", MONEY, digits=2),
         Evidence("risk_ratio", "ratio", digits=2),
         Evidence("difference", MONEY, digits=2), *shared("trades", MONEY)),
        "REDUCE_SIZE", "a larger loss than usual, taken while recovering from the last one",
        "equity_loss"),
    NudgeWording(
        "overtrading", "OVERTRADING", "A much busier day than usual",
        "This would be entry {entries_today} of your trading day; your median is "
        "{usual_entries} a day over your last {n_baseline} with entries. On your busier days your "
        "mean result was {busy_mean_r} a trade against {other_mean_r} on the others "
        "(difference {difference}, 95% interval {difference_low} to {difference_high}).",
        {Severity.LOW: "A quick check: is this entry in your plan for today?",
         Severity.MEDIUM: "Consider writing down why this entry is in your plan before "
                          "placing it.",
         Severity.HIGH: "Consider stopping for the day: your own record shows days like "
                        "this one went worse for you."},
        (Evidence("entries_today"), Evidence("usual_entries", digits=1),
         Evidence("busy_mean_r", "R", digits=2), Evidence("other_mean_r", "R", digits=2),
         Evidence("difference", "R", digits=2), *shared("days", "R")),
        "SKIP_UNPLANNED_ENTRY", "more trades on days whose trades did worse for this trader",
        "realized_r"),
    NudgeWording(
        "fomo", "CHASING_ENTRY", "An entry farther from the average than you usually enter",
        "The entry sits {extension_atr} from the EMA20, beyond your own "
        "{usual_extension_atr} (the percentile your sensitivity sets, over your last "
        "{n_baseline}; difference {difference}, 95% interval {difference_low} to "
        "{difference_high}).",
        {Severity.LOW: "A quick check: is this the entry your plan describes?",
         Severity.MEDIUM: "Consider a limit order nearer your usual entry location, or "
                          "waiting for the next setup.",
         Severity.HIGH: "Consider letting this move go: it is far outside where you usually "
                        "enter."},
        (Evidence("extension_atr", "ATR", digits=2),
         Evidence("usual_extension_atr", "ATR", digits=2),
         Evidence("difference", "ATR", digits=2), *shared("trades", "ATR")),
        "WAIT_FOR_PULLBACK", "entering after the move, deeper against the trade before exit",
        "adverse_excursion"),
    NudgeWording(
        "fatigue", "LATE_SESSION_FATIGUE", "Late in a long session",
        "This entry comes {session_hours} after your first entry of the session and is entry "
        "{entries_today} of it. Your {n_baseline} this late had a mean result of "
        "{late_mean_r} against {other_mean_r} for your others (difference {difference}, 95% "
        "interval {difference_low} to {difference_high}).",
        {Severity.LOW: "A quick check: how fresh do you feel right now?",
         Severity.MEDIUM: "Consider a short break before this entry.",
         Severity.HIGH: "Consider ending the session here: your own late entries did worse."},
        (Evidence("session_hours", "hours", digits=1), Evidence("entries_today"),
         Evidence("late_mean_r", "R", digits=2), Evidence("other_mean_r", "R", digits=2),
         Evidence("difference", "R", digits=2), *shared("trades", "R")),
        "TAKE_A_BREAK", "entries late in a long session, which did worse for this trader",
        "realized_r"),
    NudgeWording(
        "rule_drift", "RULE_DRIFT", "Your process score has slipped lately",
        "Your post-trade process score averaged {recent_score} over your last "
        "{recent_trades} reviewed against {usual_score} over the {n_baseline} before "
        "(difference {difference}, 95% interval {difference_low} to {difference_high}).",
        {Severity.LOW: "A quick check: does this idea follow your written rules?",
         Severity.MEDIUM: "Consider reading your checklist once before placing this idea.",
         Severity.HIGH: "Consider a review of your last trades against your rules before "
                        "the next entry."},
        (Evidence("recent_score", digits=2), Evidence("recent_trades", "trades"),
         Evidence("usual_score", digits=2), Evidence("difference", digits=2),
         *shared("trades", "")),
        "REVIEW_RULES", "trades placed while the trader's own rules are followed less",
        "realized_r"),
    NudgeWording(
        "stop_drift", "STOP_DRIFT", "Stops not honoured lately",
        "{past_stop_trades} of your last {recent_trades} closed with a planned stop lost "
        "past it, the worst by {worst_past_stop_r} (their mean {difference} beyond the "
        "stop, 95% interval {difference_low} to {difference_high}; {n_baseline} with a "
        "known stop in all).",
        {Severity.LOW: "A quick check: is the stop of this idea one you will leave in place?",
         Severity.MEDIUM: "Consider placing the stop as a resting order when you enter.",
         Severity.HIGH: "Consider a resting stop order for this idea and a smaller size "
                        "until your stops hold again."},
        (Evidence("past_stop_trades"), Evidence("recent_trades", "trades"),
         Evidence("worst_past_stop_r", "R", digits=2), Evidence("difference", "R", digits=2),
         *shared("trades", "R")),
        "KEEP_STOP", "losses past the planned stop", "loss_beyond_stop"),
    NudgeWording(
        "sizing", "SIZING_AFTER_OUTCOMES", "Your size follows your last result",
        "Over your last {n_baseline}, the risk you took went with the previous trade's "
        "result: correlation {correlation} (95% interval {difference_low} to "
        "{difference_high}).",
        {Severity.LOW: "A quick check: is this size the one your plan sets?",
         Severity.MEDIUM: "Consider sizing this idea from your risk budget alone, whatever "
                          "the last trade did.",
         Severity.HIGH: "Consider a fixed size for your next trades until your size no "
                        "longer tracks your last result."},
        (Evidence("correlation", digits=2), *shared("trades", "")),
        "FIX_SIZE_RULE", "sizes driven by the last outcome rather than the plan",
        "equity_loss"),
)}


def by_code() -> dict[str, NudgeWording]:
    """Return the library keyed by issue code."""
    return {w.code: w for w in LIBRARY.values()}


def step_for(detector: str, severity: Severity | str) -> str:
    """Return ``detector``'s supportive step at ``severity`` (a behaviour nudge is at most
    HIGH: CRITICAL reads as HIGH, INFO as LOW)."""
    level = Severity(severity)
    if level not in SEVERITIES:
        level = Severity.HIGH if level is Severity.CRITICAL else Severity.LOW
    return LIBRARY[detector].steps[level]


def render_nudge(detector: str, severity: Severity | str, facts: Iterable[Fact]
                 ) -> RenderedNudge:
    """Return ``detector``'s nudge at ``severity`` filled from ``facts`` (every placeholder
    must have its fact: a KeyError names the one missing)."""
    from buddy.evidence import format_fact_value

    wording = LIBRARY[detector]
    values = {f.name: format_fact_value(f) for f in facts}
    return RenderedNudge(code=wording.code, severity=Severity(severity),
                         title=wording.title.format_map(values),
                         explanation=wording.explanation.format_map(values),
                         step=step_for(detector, severity))


def sample_facts(detector: str, *, money: str = "USD") -> list[Fact]:
    """Return plausible facts for every evidence name of ``detector`` (for checks of the
    wording: numbers distinct enough that an unsourced one shows)."""
    facts = []
    for k, e in enumerate(LIBRARY[detector].evidence):
        unit = money if e.unit == MONEY else e.unit
        value: float | str = "EURUSD" if e.name.endswith("symbol") else 1.25 + 3.5 * k
        facts.append(Fact(name=e.name, value=value, unit=unit))
    return facts


def check_library() -> list[str]:
    """Return what the guardrails refuse in any nudge at any severity (empty: all pass)."""
    from buddy.guardrails import check_text

    problems = []
    for detector in LIBRARY:
        facts = sample_facts(detector)
        for severity in SEVERITIES:
            nudge = render_nudge(detector, severity, facts)
            wording = LIBRARY[detector]
            for part, template in ((nudge.title, wording.title),
                                   (nudge.explanation, wording.explanation),
                                   (nudge.step, nudge.step)):
                # the template's own fixed wording ('95% interval') counts as sourced, as
                # for every explanation; every other number must come from a fact
                verdict = check_text(part, facts, allowed=(template,))
                problems += [f"{detector} {severity.value}: {reason} in {part!r}"
                             for reason in verdict.reasons]
    return problems
