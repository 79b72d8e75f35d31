"""The nudge library: supportive, specific wording per behaviour detector and severity.

A nudge says what the trader's OWN figures show (the idea's number, their usual number from n
of their own trades or days, the difference with its 95% interval) and offers one step
they can take; it never predicts a price or an outcome and never rests on a rule of thumb
alone. Every number in a nudge is a placeholder filled from the detector's facts, so the
guardrails (``buddy.guardrails.check_text``) can trace each one; ``check_library`` renders
every wording at every severity and returns what the guardrails refuse (a test holds it
empty).

Each entry (``NudgeWording``) holds, once:

- ``code``: the issue code BehaviorNudgesEvaluator emits (the library's key; it starts with
  the detector's name in capitals), and ``detector``: the detector's name
  (``buddy.behavior.params.DETECTORS``); a detector may have more than one wording
  (overtrading: with its results compared, or too few such days to compare);
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

__all__ = [
    "LIBRARY",
    "MONEY",
    "Evidence",
    "NudgeWording",
    "RenderedNudge",
    "check_library",
    "detector_of",
    "render_nudge",
    "sample_facts",
    "step_for",
]

#: The unit placeholder of amounts in the account's currency.
MONEY = "<money>"
#: The severities a nudge is worded for (a behaviour nudge is never CRITICAL: it is about
#: the trader, not about a broken order).
SEVERITIES: tuple[Severity, ...] = (Severity.LOW, Severity.MEDIUM, Severity.HIGH)

@dataclass(frozen=True, slots=True)
class Evidence:
    """One fact a nudge reads: its name, unit (``MONEY``: the account's currency) and the
    digits floats are rounded to (BehaviorNudgesEvaluator declares its codes' evidence from
    these)."""

    name: str
    unit: str = ""
    digits: int | None = None


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


def interval(name: str, unit: str, digits: int = 2) -> tuple[Evidence, ...]:
    """Return the difference ``name`` and its 95% interval's bounds (``name_low``,
    ``name_high``), in ``unit``."""
    return (Evidence(name, unit, digits=digits), Evidence(f"{name}_low", unit, digits=digits),
            Evidence(f"{name}_high", unit, digits=digits))


LIBRARY: dict[str, NudgeWording] = {w.code: w for w in (
    NudgeWording(
        "revenge", "REVENGE_TRADING", "A larger trade soon after a loss",
        "Your {loss_symbol} trade closed {hours_since_loss} before this idea with a loss of "
        "{loss_amount} ({loss_r}). This idea's {size_measure} is {size_amount}, {size_ratio} "
        "the median {usual_size} of your last {sample_size} (difference {difference}, 95% "
        "interval {difference_low} to {difference_high}).",
        {Severity.LOW: "If this size was planned before the loss, carry on; if not, your "
                       "usual size is the one your record rests on.",
         Severity.MEDIUM: "Consider your usual size for this entry, or a short break to "
                          "review the losing trade first.",
         Severity.HIGH: "Consider pausing before this entry: review the losing trade, then "
                        "come back to it at your usual size."},
        (Evidence("loss_symbol"), Evidence("hours_since_loss", "hours", digits=1),
         Evidence("loss_amount", MONEY, digits=2), Evidence("loss_r", "R", digits=2),
         Evidence("size_measure"), Evidence("size_amount", MONEY, digits=2),
         Evidence("size_ratio", "ratio", digits=2), Evidence("usual_size", MONEY, digits=2),
         Evidence("sample_size", "trades"), *interval("difference", MONEY)),
        "PAUSE_AFTER_LOSS", "a larger loss than usual, taken while recovering from the last one",
        "equity_loss"),
    NudgeWording(
        "overtrading", "OVERTRADING", "A much busier day than usual",
        "This would be entry {entries_today} of your trading day; your median is "
        "{usual_entries} a day over your last {sample_size} with entries. On your earlier "
        "days this busy ({such_days}) your trades averaged {such_mean_pnl} against "
        "{other_mean_pnl} on the others (difference {result_difference}, 95% interval "
        "{result_difference_low} to {result_difference_high}).",
        {Severity.LOW: "A quick check: is this entry in your plan for today?",
         Severity.MEDIUM: "Consider writing down why this entry is in your plan before "
                          "placing it.",
         Severity.HIGH: "Consider stopping for the day: your own record shows days like "
                        "this one went worse for you."},
        (Evidence("entries_today"), Evidence("usual_entries", digits=1),
         Evidence("sample_size", "days"), Evidence("such_days", "days"),
         Evidence("such_mean_pnl", MONEY, digits=2),
         Evidence("other_mean_pnl", MONEY, digits=2), *interval("result_difference", MONEY)),
        "STOP_FOR_THE_DAY", "more trades on days whose trades did worse for this trader",
        "realized_r"),
    NudgeWording(
        "overtrading", "OVERTRADING_BUSY_DAY", "A much busier day than usual",
        "This would be entry {entries_today} of your trading day; your median is "
        "{usual_entries} a day over your last {sample_size} with entries (difference "
        "{difference}, 95% interval {difference_low} to {difference_high}). Your history "
        "holds {such_days} earlier days this busy, too few to compare their results.",
        {Severity.LOW: "A quick check: is this entry in your plan for today?",
         Severity.MEDIUM: "Consider writing down why this entry is in your plan before "
                          "placing it.",
         Severity.HIGH: "Consider a pause before this entry: it is far above your usual "
                        "day."},
        (Evidence("entries_today"), Evidence("usual_entries", digits=1),
         Evidence("sample_size", "days"), *interval("difference", ""),
         Evidence("such_days", "days")),
        "STOP_FOR_THE_DAY", "more trades in a day than this trader usually takes, whose "
        "results this trader's history cannot judge yet", "realized_r"),
    NudgeWording(
        "fomo", "FOMO_CHASING_ENTRY", "An entry farther from the average than you usually enter",
        "The entry sits {extension_atr} from the EMA20, more extended than {rank_pct} of "
        "your {sample_size} before it (your farthest before: {max_before}; p = {p_value}). "
        "Your median is {usual_extension_atr}: difference {difference}, 95% interval "
        "{difference_low} to {difference_high}.",
        {Severity.LOW: "A quick check: is this the entry your plan describes?",
         Severity.MEDIUM: "Consider a limit order nearer your usual entry location, or "
                          "waiting for the next setup.",
         Severity.HIGH: "Consider letting this move go: it is far outside where you usually "
                        "enter."},
        (Evidence("extension_atr", "ATR", digits=2), Evidence("rank_pct", "%", digits=1),
         Evidence("sample_size", "trades"), Evidence("max_before", "ATR", digits=2),
         Evidence("p_value", digits=3),
         Evidence("usual_extension_atr", "ATR", digits=2), *interval("difference", "ATR")),
        "WAIT_FOR_PULLBACK", "entering after the move, deeper against the trade before exit",
        "adverse_excursion"),
    NudgeWording(
        "fatigue", "FATIGUE_LATE_IN_DAY", "Late in a long trading day",
        "This entry comes {session_hours} after your first entry of the day and is entry "
        "{entries_today} of it. Your {n_late} entered this late before averaged "
        "{late_mean_pnl} against {other_mean_pnl} for the other {n_other} (difference "
        "{result_difference}, 95% interval {result_difference_low} to "
        "{result_difference_high}).",
        {Severity.LOW: "A quick check: how fresh do you feel right now?",
         Severity.MEDIUM: "Consider a short break before this entry.",
         Severity.HIGH: "Consider ending the day here: your own late entries did worse."},
        (Evidence("session_hours", "hours", digits=1), Evidence("entries_today"),
         Evidence("n_late", "trades"), Evidence("late_mean_pnl", MONEY, digits=2),
         Evidence("other_mean_pnl", MONEY, digits=2), Evidence("n_other", "trades"),
         *interval("result_difference", MONEY)),
        "TAKE_A_BREAK", "entries late in a long day, which did worse for this trader",
        "realized_r"),
    NudgeWording(
        "rule_drift", "RULE_DRIFT", "Your process score has slipped lately",
        "The share of your own checks passed in post-trade reviews averaged {recent_score} "
        "over your {n_recent} closed in the last {recent_days}, against {usual_score} over "
        "the {sample_size} in the {prior_days} before (difference {difference}, 95% interval "
        "{difference_low} to {difference_high}).",
        {Severity.LOW: "A quick check: does this idea follow your written rules?",
         Severity.MEDIUM: "Consider reading your checklist once before placing this idea.",
         Severity.HIGH: "Consider a review of your last trades against your rules before "
                        "the next entry."},
        (Evidence("recent_score", digits=2), Evidence("n_recent", "trades"),
         Evidence("recent_days", "days"), Evidence("usual_score", digits=2),
         Evidence("sample_size", "trades"), Evidence("prior_days", "days"),
         *interval("difference", "")),
        "REVIEW_RULES", "trades placed while the trader's own rules are followed less",
        "realized_r"),
    NudgeWording(
        "stop_drift", "STOP_DRIFT", "Stops not honoured lately",
        "{past_stop_trades} of your last {recent_trades} closed with a planned stop stayed "
        "open past it or lost more than {min_past_stop_r} beyond it ({recent_share}); "
        "before those, {usual_share} of your {sample_size} did (difference {difference}, 95% "
        "interval {difference_low} to {difference_high}).",
        {Severity.LOW: "A quick check: is the stop of this idea one you will leave in place?",
         Severity.MEDIUM: "Consider placing the stop as a resting order when you enter.",
         Severity.HIGH: "Consider a resting stop order for this idea and a smaller size "
                        "until your stops hold again."},
        (Evidence("past_stop_trades"), Evidence("recent_trades", "trades"),
         Evidence("min_past_stop_r", "R", digits=2), Evidence("recent_share", "%", digits=1),
         Evidence("usual_share", "%", digits=1), Evidence("sample_size", "trades"),
         *interval("difference", "%", digits=1)),
        "HONOUR_THE_STOP", "losses past the planned stop", "loss_beyond_stop"),
    NudgeWording(
        "sizing", "SIZING_AFTER_OUTCOMES", "Your size follows your last result",
        "Over your last {sample_size}, the risk you took went with the previous trade's "
        "result ({direction}): correlation {correlation}, 95% interval {correlation_low} to "
        "{correlation_high}.",
        {Severity.LOW: "A quick check: is this size the one your plan sets?",
         Severity.MEDIUM: "Consider sizing this idea from your risk budget alone, whatever "
                          "the last trade did.",
         Severity.HIGH: "Consider a fixed size for your next trades until your size no "
                        "longer tracks your last result."},
        (Evidence("sample_size", "trades"), Evidence("direction"),
         *interval("correlation", "")),
        "SIZE_FROM_THE_PLAN", "sizes driven by the last outcome rather than the plan",
        "equity_loss"),
)}


def detector_of(code: str) -> str | None:
    """Return the detector whose nudge ``code`` is (None: not a nudge code)."""
    wording = LIBRARY.get(code)
    return None if wording is None else wording.detector


def step_for(code: str, severity: Severity | str) -> str:
    """Return nudge ``code``'s supportive step at ``severity`` (a behaviour nudge is at most
    HIGH: CRITICAL reads as HIGH, INFO as LOW)."""
    level = Severity(severity)
    if level not in SEVERITIES:
        level = Severity.HIGH if level is Severity.CRITICAL else Severity.LOW
    return LIBRARY[code].steps[level]


def render_nudge(code: str, severity: Severity | str, facts: Iterable[Fact]
                 ) -> RenderedNudge:
    """Return nudge ``code`` at ``severity`` filled from ``facts`` (every placeholder must
    have its fact: a KeyError names the one missing)."""
    from buddy.evidence import format_fact_value

    wording = LIBRARY[code]
    values = {f.name: format_fact_value(f) for f in facts}
    return RenderedNudge(code=wording.code, severity=Severity(severity),
                         title=wording.title.format_map(values),
                         explanation=wording.explanation.format_map(values),
                         step=step_for(code, severity))


#: Text facts and a value each may take (for the wording checks).
TEXT_FACTS = {"loss_symbol": "EURUSD", "size_measure": "risk", "direction":
              "bigger after losses"}


def sample_facts(code: str, *, money: str = "USD") -> list[Fact]:
    """Return plausible facts for every evidence name of nudge ``code`` (for checks of the
    wording: numbers distinct enough that an unsourced one shows)."""
    facts = []
    for k, e in enumerate(LIBRARY[code].evidence):
        unit = money if e.unit == MONEY else e.unit
        value: float | str = 1.25 + 3.5 * k
        if not e.unit and e.name in TEXT_FACTS:
            value = TEXT_FACTS[e.name]
        facts.append(Fact(name=e.name, value=value, unit=unit))
    return facts


def check_library() -> list[str]:
    """Return what the guardrails refuse in any nudge at any severity (empty: all pass)."""
    from buddy.guardrails import check_text

    problems = []
    for code, wording in LIBRARY.items():
        facts = sample_facts(code)
        for severity in SEVERITIES:
            nudge = render_nudge(code, severity, facts)
            for part, template in ((nudge.title, wording.title),
                                   (nudge.explanation, wording.explanation),
                                   (nudge.step, nudge.step)):
                # the template's own fixed wording ('95% interval') counts as sourced, as
                # for every explanation; every other number must come from a fact
                verdict = check_text(part, facts, allowed=(template,))
                problems += [f"{code} {severity.value}: {reason} in {part!r}"
                             for reason in verdict.reasons]
    return problems
