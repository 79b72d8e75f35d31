"""Guardrails: nothing the workbench says may predict prices or outcomes or promise results.

The bar is FINRA Rule 2210's "may not predict or project performance". Three checks, all pure:

- ``predictive_phrases`` finds forecasting or promissory wording in a text;
- ``unsourced_numbers`` finds numbers (digits, dates, times, spelled-out quantities) that no
  fact of the issue accounts for, within the rounding of the precision shown;
- ``unsafe_advice`` finds advice the workbench never gives (drop the stop, another user's data).

``check_text`` runs all three and returns a ``GuardrailVerdict``; generated explanations reach
the trader only when it is ok. ``safe_reply`` answers a trader's request for a prediction,
certainty, dropping the stop or another user's data with a fixed, fact-free reply.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

from buddy.domain import Fact

__all__ = [
    "PREDICTIVE_PATTERN",
    "SAFE_REPLIES",
    "UNSAFE_PATTERN",
    "GuardrailVerdict",
    "check_text",
    "predictive_phrases",
    "request_categories",
    "safe_reply",
    "unsafe_advice",
    "unsourced_numbers",
]

# ----------------------------------------------------------------------- predictive wording
_MOVE = (r"rise|fall|drop|climb|rally|go\s+(?:up|down|higher|lower)|move\s+(?:up|down|higher|"
         r"lower)|hit|reach|bounce|break(?:\s+(?:out|down))?|recover|crash|moon|win|profit|"
         r"pay\s+off|work(?:\s+out)?|succeed|make\s+(?:you\s+)?money|double|triple|soar|tank|"
         r"surge|jump|spike|plunge|sink|rebound|outperform|underperform|head\s+(?:up|down|"
         r"higher|lower)")
# Verbs that project a price path whatever the modal ("could rally", "might soar").
_STRONG_MOVE = (r"rise|rally|climb|soar|surge|jump|spike|moon|tank|crash|plunge|rebound|bounce|"
                r"go\s+(?:up|down|higher|lower)|move\s+(?:higher|lower)|break\s+out|pay\s+off|"
                r"outperform|double|triple")
_PREDICTIVE = [
    rf"(?:\bwill|'ll)\s+(?:\w+ly\s+)?(?:{_MOVE})\b",
    r"\bguarantee(?:d|s)?\b",
    r"\b(?:sure|certain|bound)\s+to\b",
    rf"\b(?:is|are|'s|'re)\s+(?:\w+ly\s+)?(?:expected|likely|poised|set|going|due|about|primed)"
    rf"\s+to\s+(?:{_MOVE}|gain|move|go)\b",
    r"\b(?:risk[- ]free|zero[- ]risk)\b",
    r"\bcan(?:'|no)?t\s+(?:lose|fail|go\s+wrong|miss)\b",
    r"\bno[- ]lose\b",
    r"(?<!your )(?<!my )\b(?:price|stock|market)\s+target\s+of\b",
    r"\bwill\s+(?:\w+ly\s+)?(?:be\s+)?(?:profitable|a\s+winner|higher|lower|up|down)\b",
    r"\b(?:expect|forecast|predict|project)(?:s|ed)?\s+(?:a\s+|the\s+)?(?:gain|return|profit|"
    r"move|rise|fall|rally|price)\b",
    # additions: modals, contractions, expectations, odds, certainty, hype
    rf"\b(?:shall|gonna|(?:is|are|'s|'re)\s+going\s+to)\s+(?:\w+ly\s+)?(?:{_MOVE})\b",
    rf"\b(?:should|could|might|may|would)\s+(?:\w+ly\s+|easily\s+|soon\s+)?(?:{_STRONG_MOVE})\b",
    rf"\b(?:likely|poised|expected|due|primed|ready|set)\s+to\s+(?:{_STRONG_MOVE}|drop|fall|"
    r"gain|hit|reach)\b",
    r"\b(?:expect|anticipate|forecast|predict|project|foresee)(?:s|ed|ing)?\s+(?:\w+\s+){0,3}?"
    r"(?:to\s+)?(?:rise|rises|fall|falls|gains?|rally|climb|drop|upside|downside|returns?|"
    r"profits?|breakout|rebound|bounce|higher|lower|go\s+up|go\s+down)\b",
    r"\byou(?:'ll|\s+will)\s+(?:\w+ly\s+)?(?:make|earn|win|profit|double|get\s+rich|"
    r"be\s+(?:rich|profitable|in\s+profit))\b",
    r"\b(?:is|are|'s|'re)\s+head(?:ed|ing)\s+(?:higher|lower|up|down|to|towards?)\b",
    r"\b(?:go(?:es)?|move[sd]?|trade[sd]?|be)\s+(?:up|down|higher|lower)\s+(?:tomorrow|today|"
    r"next|this\s+week|soon|after\s+earnings)\b",
    r"\b\d+(?:\.\d+)?\s*(?:%|percent)\s+(?:chance|probability|odds|likelihood|certain|sure|"
    r"safe)\b",
    r"\b(?:high|good|strong|great|excellent|decent)\s+(?:chance|probability|odds|likelihood)"
    r"\s+(?:of|that|to)\b",
    r"\b(?:odds|chances)\s+(?:are|favou?r)\b",
    r"\b(?:sure\s+thing|safe\s+bet|no[- ]brainer|easy\s+money|free\s+money|slam[- ]dunk|"
    r"to\s+the\s+moon|upside\s+potential)\b",
    r"\block(?:ed|s)?\s+in\s+(?:a\s+|the\s+|your\s+)?(?:profit|gain|win)s?\b",
    r"\b(?:100|hundred)\s*(?:%|percent)\s+(?:sure|certain|safe|guaranteed)\b",
    r"\bpromis(?:e|es|ed|ing)\b",
    rf"\btends?\s+to\s+(?:{_STRONG_MOVE}|fall|drop|gain|win|work)\b",
    r"\b(?:probably|likely|surely|certainly|definitely)\s+(?:rises|falls|drops|climbs|rallies|"
    r"goes\s+(?:up|down|higher|lower)|hits|reaches|bounces|breaks\s+out|recovers|wins|works|"
    r"pays\s+off|gets?\s+hit|(?:be\s+)?(?:stopped\s+out|profitable|a\s+winner))\b",
    r"\blikely\s+(?:it|this|that|price|the\s+\w+|your\s+\w+)\s+(?:gets?\s+(?:hit|stopped)|rises|"
    r"falls|drops|goes\s+(?:up|down)|hits|reaches|works|wins|pays\s+off)\b",
    r"\bdefinitely\s+(?:will|going|rise|go|win|work|profit)\b",
    r"\bfor\s+sure\b",
    r"\b(?:rally|breakout|rebound|bounce|crash|squeeze|correction)\s+is\s+(?:coming|imminent|"
    r"near|due|likely)\b",
    r"\b(?:bullish|bearish)\s+(?:outlook|forecast|call|prediction|target)\b",
]
PREDICTIVE_PATTERN = re.compile("|".join(f"(?:{p})" for p in _PREDICTIVE), re.IGNORECASE)


def predictive_phrases(text: str) -> list[str]:
    """Return the forecasting or promissory phrases found in ``text`` (empty when clean)."""
    return [m.group(0) for m in PREDICTIVE_PATTERN.finditer(_normalise(text))]


# ----------------------------------------------------------------------- unsafe advice
_DATA_WORDS = (r"trades?|data|positions?|account|portfolio|history|journal|p&l|pnl|results?|"
               r"orders?|stats|evaluations?|reports?|equity|balance|holdings")
_UNSAFE = [
    r"\b(?:drop|dropping|remove|removing|delete|deleting|cancel|cancell?ing|skip|skipping|ditch|"
    r"ditching|ignore|ignoring|pull|pulling|get\s+rid\s+of)\s+(?:the|your|that|this|my)\s+"
    r"(?:protective\s+)?stop(?:[- ]?loss)?\b",
    r"\b(?:don'?t|do\s+not|doesn'?t|does\s+not|no)\s+need\s+(?:for\s+)?(?:a|the|your|any)?\s*"
    r"stop(?:[- ]?loss)?\b",
    r"\b(?:trade|go|run\s+it|hold\s+it|hold)\s+without\s+(?:a|any|the|your)\s+stop\b",
    r"\bstop(?:[- ]?loss)?e?s?\s+(?:is|are)\s+(?:just\s+)?(?:for\s+losers|useless|pointless|"
    r"unnecessary|not\s+needed|optional)\b",
    rf"\b(?:another|other|different)\s+(?:user|trader|account|client|customer)s?(?:'s|')?\s+"
    rf"(?:{_DATA_WORDS})\b",
    rf"\buser\s+[\w.@-]+?(?:'s|')?\s+(?:{_DATA_WORDS})\b",
    r"\b(?:someone|somebody|everyone|everybody)\s+else'?s\b",
]
UNSAFE_PATTERN = re.compile("|".join(f"(?:{p})" for p in _UNSAFE), re.IGNORECASE)
# "bob's trades", not "today's trades", "the stock's history" or a ticker ("AAPL's data").
_OWNER_POSSESSIVE = (
    r"\b(?!(?:today|yesterday|tomorrow|week|month|year|day|session|morning|afternoon|quarter|"
    r"market|buddy|system|trade|strategy|stock|model|report|intent|my|it|account|position|"
    r"portfolio|order|setup|plan|stop|target|entry|check|evaluation)'s)"
    r"(?!(?-i:[A-Z][A-Z0-9.]{0,5})'s)[a-z][\w-]*'s\s+(?:" + _DATA_WORDS + r")\b")
_NAMED_OWNER = re.compile(_OWNER_POSSESSIVE, re.IGNORECASE)


def unsafe_advice(text: str) -> list[str]:
    """Return advice the workbench never gives found in ``text``: dropping a stop, or any
    mention of another user's data (empty when clean)."""
    text = _normalise(text)
    found = [m.group(0) for m in UNSAFE_PATTERN.finditer(text)]
    found += [m.group(0) for m in _NAMED_OWNER.finditer(text)]
    return found


# ----------------------------------------------------------------------- numbers
_MONTH = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
          r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)")
_MONTH_NUMBER = {name: n for n, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}
_TOKEN = re.compile(
    r"(?P<iso>\b(?P<iy>\d{4})-(?P<im>\d{2})-(?P<id>\d{2})"
    r"(?:[T ](?P<ih>\d{2}):(?P<imin>\d{2})(?::\d{2}(?:\.\d+)?)?)?(?:Z\b|[+-]\d{2}:?\d{2})?)"
    rf"|(?P<mdy>\b(?P<mdy_m>{_MONTH})\.?\s+(?P<mdy_d>\d{{1,2}})(?:st|nd|rd|th)?,?\s+"
    r"(?P<mdy_y>\d{4})\b)"
    rf"|(?P<dmy>\b(?P<dmy_d>\d{{1,2}})(?:st|nd|rd|th)?\s+(?P<dmy_m>{_MONTH})\.?,?\s+"
    r"(?P<dmy_y>\d{4})\b)"
    rf"|(?P<my>\b(?P<my_m>{_MONTH})\.?,?\s+(?P<my_y>\d{{4}})\b)"
    rf"|(?P<md>\b(?P<md_m>{_MONTH})\.?\s+(?P<md_d>\d{{1,2}})(?:st|nd|rd|th)?\b(?!:))"
    rf"|(?P<dm>\b(?P<dm_d>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<dm_m>{_MONTH})\b)"
    r"|(?P<time>\b(?P<th>\d{1,2}):(?P<tmin>\d{2})(?::\d{2})?\b)"
    r"|(?P<cur>\b(?:USD|EUR|GBP|JPY|CHF|CAD|AUD|HKD|CNY)(?=\d))"
    r"|(?P<ident>\b[A-Za-z_]+\d[A-Za-z0-9_]*)"
    r"|(?P<num>(?P<sign>(?<![\w)\]])[-−])?"
    r"(?:(?P<int>\d{1,3}(?:,\d{3})+|\d+)(?:\.(?P<frac>\d+))?|\.(?P<frac_only>\d+))"
    r"(?:[eE](?P<exp>[-+]?\d{1,3})\b)?)",
    re.IGNORECASE)
_PERCENT_AFTER = re.compile(r"\s?(?:%|percent\b|per\s?cent\b|pct\b)", re.IGNORECASE)
_THOUSANDS_AFTER = re.compile(r"(?:[kK]\b|\s+thousand\b)")
_SCALE_AFTER = {1e6: re.compile(r"\s+million\b"), 1e9: re.compile(r"\s+billion\b|bn\b")}
_LIST_MARKER_AFTER = re.compile(r"[.)]\s")
_RATIO_BEFORE = re.compile(r"\d\s*(?:to|:|-to-)\s*$", re.IGNORECASE)

_SMALL = {w: n for n, w in enumerate((
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen"))}
_TENS = {w: 10 * n for n, w in enumerate(
    ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"), 2)}
_SCALES = {"hundred": 100, "thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000}
_NUMBER_WORD = "|".join(sorted([*_SMALL, *_TENS, *_SCALES], key=len, reverse=True))
_SPELLED = re.compile(
    rf"\b(?:{_NUMBER_WORD})(?:(?:\s+and\s+|\s+|-)(?:{_NUMBER_WORD}))*\b"
    r"(?P<unit>\s+(?:percent|per\s+cent|%|dollars?|bucks|usd|euros?|points?|pips?|ticks?|"
    r"r\b|atrs?\b|times|x\b|shares|units|bars|days|sessions|weeks|months|years|minutes|hours|"
    r"basis\s+points|bps|to\s+one))?",
    re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class _Sources:
    numbers: tuple[float, ...]
    dates: frozenset[date]
    datetimes: frozenset[tuple[date, int, int]]
    times: frozenset[tuple[int, int]]
    months: frozenset[tuple[int, int]]
    years: frozenset[int]
    month_days: frozenset[tuple[int, int]]
    words: str  # lower-cased names, labels and template wording, for identifiers


def unsourced_numbers(text: str, facts: Iterable[Fact], *, allowed: Iterable[str] = ()
                      ) -> list[str]:
    """Return each number in ``text`` that no fact accounts for (empty when all are sourced).

    A number is sourced when a fact's value or threshold (or a number, date or time inside a
    label fact) equals it within the rounding of the precision shown ('0.4' covers 0.43,
    '1,250' covers 1250.2), in magnitude (a written minus sign must match a negative value),
    as a percentage of a ratio ('12.5%' covers 0.125), or scaled ('1.25k'). Dates and times
    must match a fact's ISO timestamp; identifiers with digits ('atr_14') must appear in a
    fact name or label. ``allowed`` holds fixed wording (a template) whose numbers also count
    as sourced; its ``{placeholders}`` are ignored. List markers ('1. ') are not numbers;
    spelled-out quantities ('twelve percent', 'two thousand') are.
    """
    sources = _sources(tuple(facts), tuple(allowed))
    text = _normalise(text)
    found: list[str] = []
    for m in _TOKEN.finditer(text):
        if not _token_sourced(m, text, sources):
            found.append(m.group(0).strip())
    for m in _SPELLED.finditer(text):
        value = _spelled_value(m.group(0)[: m.start("unit") - m.start()] if m.group("unit")
                               else m.group(0))
        if value is None:
            continue
        claim = m.group("unit") is not None or value >= 13 or any(
            s in m.group(0).lower() for s in _SCALES)
        if claim and not any(abs(abs(s) - value) <= 0.5 for s in sources.numbers):
            found.append(m.group(0).strip())
    return found


def _token_sourced(m: re.Match[str], text: str, sources: _Sources) -> bool:
    if m.group("iso"):
        day = _date(m.group("iy"), m.group("im"), m.group("id"))
        if day is None:
            return False
        if m.group("ih") is None:
            return day in sources.dates
        return (day, int(m.group("ih")), int(m.group("imin"))) in sources.datetimes
    for kind in ("mdy", "dmy"):
        if m.group(kind):
            day = _date(m.group(f"{kind}_y"), _MONTH_NUMBER[m.group(f"{kind}_m")[:3].lower()],
                        m.group(f"{kind}_d"))
            return day is not None and day in sources.dates
    for kind in ("md", "dm"):
        if m.group(kind):
            month = _MONTH_NUMBER[m.group(f"{kind}_m")[:3].lower()]
            return (month, int(m.group(f"{kind}_d"))) in sources.month_days
    if m.group("cur"):
        return True
    if m.group("my"):
        return (int(m.group("my_y")), _MONTH_NUMBER[m.group("my_m")[:3].lower()]
                ) in sources.months
    if m.group("time"):
        return (int(m.group("th")), int(m.group("tmin"))) in sources.times
    if m.group("ident"):
        return m.group("ident").lower() in sources.words
    if _is_list_marker(m, text) or _is_ratio_one(m, text):
        return True
    value, tol = _number(m)
    if m.group("frac") is None and m.group("sign") is None and value in sources.years:
        return True
    after = text[m.end():]
    candidates = [(value, tol)]
    if _PERCENT_AFTER.match(after):
        candidates.append((value / 100, tol / 100))
    if _THOUSANDS_AFTER.match(after):
        candidates = [(value * 1e3, tol * 1e3)]
    for scale, pattern in _SCALE_AFTER.items():
        if pattern.match(after):
            candidates = [(value * scale, tol * scale)]
    negative = m.group("sign") is not None
    # a bare "0" for a non-zero value says "nothing"; "0.00" shows its precision
    bare_zero = value == 0 and m.group("frac") is None and m.group("frac_only") is None
    return any(abs(abs(s) - v) <= t and (math.copysign(1, s) < 0 or not negative)
               and not (bare_zero and abs(s) >= 1e-6)
               for v, t in candidates for s in sources.numbers)


def _is_list_marker(m: re.Match[str], text: str) -> bool:
    line_start = text.rfind("\n", 0, m.start()) + 1
    return (m.group("frac") is None and m.group("frac_only") is None
            and m.group("sign") is None and not text[line_start:m.start()].strip()
            and len(m.group("int")) <= 2 and int(m.group("int")) <= 20
            and _LIST_MARKER_AFTER.match(text, m.end()) is not None)


def _is_ratio_one(m: re.Match[str], text: str) -> bool:
    # the "1" of "1.2 to 1" or "1.2:1" is notation, not data
    return (m.group(0) == "1" and _RATIO_BEFORE.search(text, 0, m.start()) is not None)


def _number(m: re.Match[str]) -> tuple[float, float]:
    whole = (m.group("int") or "0").replace(",", "")
    frac = m.group("frac") or m.group("frac_only") or ""
    scale = 10.0 ** max(-300, min(300, int(m.group("exp") or 0)))
    value = float(f"{whole}.{frac}" if frac else whole) * scale
    tolerance = 0.5 * 10.0 ** -len(frac) * scale
    return value, tolerance * (1 + 1e-9) + 1e-12 * min(scale, 1.0)


def _date(year: str | int, month: str | int, day: str | int) -> date | None:
    try:
        return date(int(year), int(month), int(day))
    except ValueError:
        return None


def _spelled_value(words: str) -> int | None:
    total = current = 0
    seen = False
    for word in re.split(r"[\s-]+", words.lower()):
        if word == "and" or not word:
            continue
        if word in _SMALL:
            current += _SMALL[word]
        elif word in _TENS:
            current += _TENS[word]
        elif word == "hundred":
            current = max(current, 1) * 100
        elif word in _SCALES:
            total += max(current, 1) * _SCALES[word]
            current = 0
        else:
            return None
        seen = True
    return total + current if seen else None


def _sources(facts: tuple[Fact, ...], allowed: tuple[str, ...]) -> _Sources:
    numbers: list[float] = []
    dates: set[date] = set()
    datetimes: set[tuple[date, int, int]] = set()
    times: set[tuple[int, int]] = set()
    words: list[str] = []
    texts: list[str] = [re.sub(r"\{[^{}]*\}", " ", t) for t in allowed]
    for fact in facts:
        words.append(fact.name)
        numbers += [float(n) for n in re.findall(r"\d+", fact.name)]
        for value in (fact.value, fact.threshold):
            if isinstance(value, bool) or value is None:
                continue
            if isinstance(value, int | float):
                if math.isfinite(value):
                    numbers.append(float(value))
            elif isinstance(value, date):  # datetimes too
                texts.append(value.isoformat())
            else:
                texts.append(str(value))
    for source in texts:
        source = _normalise(source)
        words.append(source)
        for m in _TOKEN.finditer(source):
            if m.group("iso"):
                day = _date(m.group("iy"), m.group("im"), m.group("id"))
                if day is not None:
                    dates.add(day)
                    if m.group("ih") is not None:
                        hh, mm = int(m.group("ih")), int(m.group("imin"))
                        datetimes.add((day, hh, mm))
                        times.add((hh, mm))
            elif m.group("time"):
                times.add((int(m.group("th")), int(m.group("tmin"))))
            elif m.group("num"):
                value, _ = _number(m)
                numbers.append(-value if m.group("sign") else value)
                if _PERCENT_AFTER.match(source, m.end()):
                    numbers.append(value / 100)
            elif m.group("ident"):
                numbers += [float(n) for n in re.findall(r"\d+", m.group("ident"))]
    return _Sources(numbers=tuple(numbers), dates=frozenset(dates),
                    datetimes=frozenset(datetimes), times=frozenset(times),
                    months=frozenset((d.year, d.month) for d in dates),
                    years=frozenset(d.year for d in dates),
                    month_days=frozenset((d.month, d.day) for d in dates),
                    words="\n".join(words).lower())


# ----------------------------------------------------------------------- the verdict
@dataclass(frozen=True, slots=True, kw_only=True)
class GuardrailVerdict:
    """Whether a text may reach the trader, and what stopped it when it may not."""

    ok: bool
    predictive: tuple[str, ...] = ()
    unsourced: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    unsafe: tuple[str, ...] = field(default=())


def check_text(text: str, facts: Iterable[Fact], *, allowed: Iterable[str] = ()
               ) -> GuardrailVerdict:
    """Check ``text`` against the facts it may rest on (and fixed wording in ``allowed``).

    Not ok when it holds predictive or promissory wording, a number no fact accounts for, or
    advice the workbench never gives (dropping a stop, another user's data).
    """
    predictive = tuple(predictive_phrases(text))
    unsourced = tuple(unsourced_numbers(text, facts, allowed=allowed))
    unsafe = tuple(unsafe_advice(text))
    reasons = tuple(
        [f"predictive wording: {p!r}" for p in predictive]
        + [f"number not in the facts: {n!r}" for n in unsourced]
        + [f"advice never given: {u!r}" for u in unsafe])
    return GuardrailVerdict(ok=not reasons, predictive=predictive, unsourced=unsourced,
                            reasons=reasons, unsafe=unsafe)


# ----------------------------------------------------------------------- requests
#: Fixed, fact-free replies to requests the workbench never fulfils, in the order shown.
SAFE_REPLIES: dict[str, str] = {
    "prediction": (
        "I can't forecast prices or tell you how a trade turns out, and I don't say whether "
        "to take it. What I can show is what the checks found in your plan, with the numbers "
        "behind each finding, so you can decide."),
    "certainty": (
        "No trade outcome is certain, and I won't describe one as assured or safe. The report "
        "audits your plan against your own rules and history; it says nothing about results."),
    "drop_stop": (
        "I won't help take away a protective stop: it is what caps the loss on this trade. If "
        "the stop looks too tight, the report shows how it compares with normal price noise, "
        "and a smaller position is one way to keep the risk within your budget."),
    "other_user": (
        "I can only show your own trades and evaluations. Data belonging to anyone else is "
        "private and is never part of your report."),
}

_REQUEST_PATTERNS: dict[str, re.Pattern[str]] = {
    "prediction": re.compile(
        r"\b(?:will|would|could|can|might|may|does|do|is|are|should|gonna)\b[^.?!]{0,40}?"
        r"\b(?:go(?:ing|es)?\s+(?:up|down|higher|lower)|rise|fall|drop|climb|rally|hit|reach|"
        r"break\s*out|bounce|recover|crash|moon|pump|dump|tank|soar|gain|rebound|surge|spike|"
        r"win|profit|pay\s+off|work\s+out|make\s+(?:me\s+)?money|double|triple)\b"
        r"|\b(?:predict\w*|forecast\w*|projection|outlook|price\s+target|target\s+price|"
        r"tomorrow|next\s+(?:week|month|day|year|session|quarter)|by\s+(?:friday|monday|"
        r"tuesday|wednesday|thursday|the\s+close|eod|end\s+of)|upside|downside|bullish|"
        r"bearish|crystal\s+ball|buy\s+signal|sell\s+signal|direction)\b"
        r"|\bshould\s+i\s+(?:buy|sell|short|enter|take|go\s+long|go\s+short|hold|get\s+in|"
        r"get\s+out|add|double\s+down)\b"
        r"|\bwhere\s+(?:will|is|does|do)\b[^.?!]{0,30}\b(?:go|head(?:ing|ed)?|be|trade|end|"
        r"close|land)\b"
        r"|\bwhat\s+will\b[^.?!]{0,30}\b(?:do|be|close|trade)\b"
        r"|\bhow\s+(?:high|low|far|much)\b[^.?!]{0,30}\b(?:go|get|make|earn|win|gain|run|rise|"
        r"fall)\b"
        r"|\b(?:up|down|higher|lower)\s+(?:or|vs\.?)\s+(?:up|down|higher|lower)\b"
        r"|\b(?:a\s+)?(?:winner|winning\s+trade|good\s+trade|profitable)\s*\?",
        re.IGNORECASE),
    "certainty": re.compile(
        r"\b(?:guarantee\w*|promis\w*|certain\w*|definite\w*|assur\w*|risk[- ]?free|"
        r"no[- ]risk|zero[- ]risk|sure\s+(?:thing|win|bet|to|it|that|fire)|safe\s+bet|"
        r"no[- ]brainer|can'?t\s+(?:lose|fail|go\s+wrong|miss)|100\s*%|hundred\s+percent|"
        r"confirm\s+(?:it|that|this)|swear|bet\s+your\s+life|no\s+doubt|locked?\s+in)\b"
        r"|\b(?:you|u|i'?m|im|totally|absolutely|completely|so|100%|pretty)\s+sure\b"
        r"|\btell\s+me\s+(?:it'?s|it\s+is|this\s+is|that\s+it'?s)\s+(?:safe|fine|ok(?:ay)?|"
        r"good|a\s+winner|right|going\s+to)\b",
        re.IGNORECASE),
    "drop_stop": re.compile(
        r"\b(?:drop|remove|delete|cancel|skip|ditch|ignore|kill|pull|lose|scrap|lift|"
        r"get\s+rid\s+of|take\s+(?:off|out|away)|turn\s+off|disable)\s+(?:the\s+|my\s+|your\s+"
        r"|this\s+|that\s+|a\s+|its\s+)?(?:protective\s+|hard\s+)?stop(?:[- ]?loss)?\b"
        r"|\bwithout\s+(?:a|any|the|my|its)\s+(?:hard\s+)?stop"
        r"|\b(?:with|use|using|run|go|trade|trading)\s+no\s+stop(?:[- ]?loss)?\b"
        r"|\b(?:don'?t|do\s+not|doesn'?t)\s+(?:need|want|use)\s+(?:a|the|my|any)\s+stop"
        r"|\bstops?(?:[- ]?loss(?:es)?)?\s+(?:is|are)\s+(?:for\s+(?:losers|cowards|"
        r"beginners)|useless|pointless|unnecessary|not\s+needed|optional)"
        r"|\bmental\s+stop\b",
        re.IGNORECASE),
    "other_user": re.compile(
        r"\buser(?:[_ ]?id)?\s*[=:#]?\s*['\"]?[\w.@-]+['\"]?(?:'s)?\s+(?:" + _DATA_WORDS + r")\b"
        r"|\b(?:show|give|list|see|view|pull|dump|get|open|fetch|read)\b[^.?!]{0,30}\buser"
        r"(?:[_ ]?id)?\s*[=:#]?\s*['\"]?[\w.@-]+"
        r"|\b(?:another|other|different|all|every)\s+(?:users?|traders?|accounts?|clients?|"
        r"customers?|members?|people)(?:'s|')?\b"
        r"|\b(?:someone|somebody|everyone|everybody|anyone|anybody)\s+else'?s?\b"
        r"|\b(?:his|her|their)\s+(?:trades?|positions?|account|portfolio|journal|p&l|pnl|"
        r"orders?|equity|balance|history)\b"
        r"|\blog\s*(?:me\s+)?in\s+as\b|\bimpersonat\w*|\bswitch\s+(?:to\s+)?(?:user|account)\b"
        r"|" + _OWNER_POSSESSIVE,
        re.IGNORECASE),
}


def request_categories(request_text: str) -> tuple[str, ...]:
    """Return which never-fulfilled kinds of request ``request_text`` makes, in SAFE_REPLIES
    order: 'prediction', 'certainty', 'drop_stop', 'other_user' (empty for a fair question)."""
    text = _normalise(request_text)
    text = re.sub(r"(?<=[a-z])[0134]|[0134](?=[a-z]{2})",
                  lambda m: "oiea"["0134".index(m.group(0))], text, flags=re.IGNORECASE)
    return tuple(c for c, pattern in _REQUEST_PATTERNS.items() if pattern.search(text))


def safe_reply(request_text: str) -> str | None:
    """Return the fixed reply to a request for a prediction, certainty, dropping the stop or
    another user's data (None for a fair question, which the report answers as it stands).

    The reply holds no number and no fact: it is the same whatever the trade.
    """
    categories = request_categories(request_text)
    if not categories:
        return None
    return " ".join(SAFE_REPLIES[c] for c in categories)


def _normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    return text.replace("\u2019", "'").replace("\u2018", "'").replace("\u2212", "-")
