"""Plain text to draft slots: deterministic and offline, nothing guessed.

``parse_utterance`` reads one turn ("long AAPL on a pullback to 555, stop under 540, target
600, risk half a percent") into ``SlotUpdate``s, each with the words it came from;
``apply_updates`` folds them into a new ``TradeIdeaDraft`` (a later turn overwrites a slot:
``overwrites`` says which); ``next_question`` asks for the first contradictory or missing slot
using only the trader's own numbers.

The readers: numbers in digits or words ("half a percent", "a quarter percent", "one and a
half", "1.5k"), dates through dateparser with every part required and no silent "today" (a
relative date needs an explicit base), symbols by ticker or, with rapidfuzz, by a company
name close to the catalogue's ("apple" -> AAPL, "Microsft" -> MSFT). A value the words do
not pin down ("risk 500": percent or currency?) becomes a rejected update whose rule says why;
``apply_updates`` turns it into a conflict that ``problems()`` and ``next_question`` show.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from buddy.assistant.draft import SLOTS, TradeIdeaDraft, format_number
from buddy.errors import FieldError

__all__ = [
    "UPDATABLE",
    "Overwrite",
    "SlotUpdate",
    "apply_updates",
    "next_question",
    "overwrites",
    "parse_number",
    "parse_utterance",
    "warm_up",
]

# Every draft field a turn may set; "declined" takes a slot name as its value ("no target").
UPDATABLE = ("symbol", "side", "thesis", "entry", "stop", "target", "size", "risk_pct",
             "risk_amount", "horizon", "timeframe", "order_type", "as_of", "target_r",
             "declined")
# Slots a trader may say they have none of; a stop is never declinable (risk comes first).
DECLINABLE = ("target", "horizon", "thesis")
SIZE_FIELDS = ("size", "risk_pct", "risk_amount")
# A company-name word must be this close (rapidfuzz ratio, 0-100) to count as the symbol.
SYMBOL_MIN_SCORE = 85.0
# Trading days in a week, for "for 2 weeks" on daily bars (exchange weeks, holidays ignored).
DAYS_PER_WEEK = 5


@dataclass(frozen=True, slots=True)
class SlotUpdate:
    """One value read from a turn: the draft field, its typed value and the words it came
    from. ``rejected`` is the rule when the words name a slot but not a usable value (the
    value is then the words themselves)."""

    slot: str
    value: Any
    source_text: str
    rejected: str | None = None


@dataclass(frozen=True, slots=True)
class Overwrite:
    """A slot a turn changed from one value to another."""

    slot: str
    old: Any
    new: Any
    source_text: str

    def sentence(self) -> str:
        """Return the sentence that tells the trader ('the stop changed from 540 to 545')."""
        return f"{_slot_words(self.slot)} changed from {_show(self.old)} to {_show(self.new)}"


# ------------------------------------------------------------------------------- numbers
_UNITS = {w: i for i, w in enumerate((
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen"))}
_TENS = {w: 10 * (i + 2) for i, w in enumerate((
    "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"))}
_FRACTIONS = {"half": 0.5, "halves": 0.5, "quarter": 0.25, "quarters": 0.25,
              "third": 1 / 3, "thirds": 1 / 3}
_SCALES = {"hundred": 100, "thousand": 1000}
_NUMBER_WORDS = sorted([*_UNITS, *_TENS, *_FRACTIONS, *_SCALES], key=len, reverse=True)
_NW = "|".join(_NUMBER_WORDS)
# Bounded repeats: a spoken number has a few words, and unbounded ones backtrack for seconds
# over a long run of number words ("half a half a ...").
_WORD_NUMBER = (rf"(?:(?:an?|one)[\s-]+)?(?:{_NW})\b(?:[\s-]+(?:(?:an?|and|of)[\s-]+){{0,2}}"
                rf"(?:{_NW})\b){{0,8}}"
                rf"(?:[\s-]+(?:of[\s-]+)?an?\b(?=\s+(?:percent|per\s?cent|pct)\b))?")
_DIGITS = r"\$?\s?(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)(?:\s?k\b)?"
NUM = rf"(?P<n>{_DIGITS}|\b{_WORD_NUMBER})"


def parse_number(words: str) -> float | None:
    """Return the number ``words`` say ('555', '1,250.5', '$500', '1.5k', 'half a',
    'a quarter', 'one and a half', 'twenty five', 'two thousand'), None when not a number."""
    s = words.strip().lower().replace("$", "").replace(",", "").strip()
    if not s:
        return None
    m = re.fullmatch(r"(\d+(?:\.\d+)?|\.\d+)\s?(k?)", s)
    if m:
        return float(m.group(1)) * (1000.0 if m.group(2) else 1.0)
    tokens = [t for t in re.split(r"[\s-]+", s) if t]
    total, current, seen, after_and = 0.0, 0.0, False, False
    for i, tok in enumerate(tokens):
        if tok in ("a", "an", "of"):
            continue
        if tok == "and":
            after_and = True
            continue
        if tok in _UNITS or tok in _TENS:
            current += _UNITS.get(tok, 0) + _TENS.get(tok, 0)
        elif tok in _SCALES:
            if _SCALES[tok] == 100:
                current = (current or 1.0) * 100
            else:
                total += (current or 1.0) * 1000
                current = 0.0
        elif tok in _FRACTIONS:
            prev = tokens[i - 1] if i else ""
            if current and not after_and and (prev in _UNITS or prev in _TENS):
                current *= _FRACTIONS[tok]  # "three quarters"
            else:
                current += _FRACTIONS[tok]  # "half", "a quarter", "one and a half"
        else:
            return None
        seen = True
        after_and = False
    return total + current if seen else None


# --------------------------------------------------------------------------------- regexes
_CONN = (r"(?:\s*(?:[:=@]|,\s*to\b|\b(?:is|at|under|below|above|over|around|near|about|of|to|just|"
         r"right|would|will|be|goes|go|placed|set|sits|somewhere|roughly|the|a|level|were|was|"
         r"should|could|might|can|maybe|probably|now|then|instead|put|place|it|move|moved|"
         r"lower|higher|tighter|wider|bit|little|further|closer|down|up|back)\b)){0,8}\s*")
# "stop below yesterday's low at 548": the level is where the price goes
_LEVEL_REF = (r"(?:(?:(?:yesterday'?s|the|prior|previous|day'?s|swing|recent|last|week'?s|"
              r"range)\s+)*(?:low|high|close|support|resistance|level|pivot)\s+(?:at|of|near|"
              r"around|is)\s+)?")
_PCT = r"\s*(?:%|\bpercent\b|\bper\s?cent\b|\bpct\b)"
_CUR = r"\s*(?:\bdollars?\b|\busd\b|\bbucks\b|\beur\b|\beuros?\b)"
_CLAUSE_END = r"(?=$|[,;!?]|\.(?!\d))"

# a date runs to the clause's end; "Jun 1, 2012" keeps its comma before the year
_DATE = re.compile(r"\bas\s+of\s+(?P<d>.{1,60}?)(?=$|[;!?]|,(?!\s*\d{4}\b)|\.(?!\d)|\s+(?:and|"
                   r"with|stop|target|risk|entry|long|short|buy|sell|for|on)\b)")
_LATEST = re.compile(r"(?:now|today|latest|the\s+latest|the\s+last\s+close|last\s+close)\s*$")
_BUY_SELL_STOP = re.compile(rf"\b(?P<side>buy|sell)[\s-]stop(?:\s+order)?{_CONN}{NUM}")
_BREAK = re.compile(rf"\bbreak(?:s|ing)?(?:out|down)?\s+(?P<dir>above|over|through|below|"
                    rf"under)(?:\s+the)?\s+{NUM}")
_NO = re.compile(r"\bno\s+(?:fixed\s+|set\s+|real\s+)?(?P<slot>target|profit\s+target|"
                 r"stop(?:[\s-]?loss)?|horizon|time\s+stop|thesis)\b")
_NOT_PRICE = (rf"(?P<pct_after>{_PCT}|\s*(?:x\s*)?atrs?\b|\s*(?:points?|pts|ticks?|cents?|"
              r"pips?)\b|\s?r\b)?")
_STOP = re.compile(rf"\b(?:stops?(?:[\s-]?loss)?|sl|stopped\s+out){_CONN}{_LEVEL_REF}{NUM}"
                   rf"{_NOT_PRICE}")
_TARGET = re.compile(rf"\b(?:(?:price|profit)\s+)?(?:target(?:s|ing|ed)?|tp|pt|"
                     rf"take[\s-]?profits?|objective|aim(?:ing)?\s+(?:for|at)|cover(?:ing)?\s+at|exit"
                     rf"(?:ing)?\s+(?:at|around|near)){_CONN}{_LEVEL_REF}{NUM}(?P<r>\s?r\b)?"
                     rf"{_NOT_PRICE}")
_RISK = re.compile(rf"\brisk(?:ing|s)?\b{_CONN}{NUM}(?:(?P<pct>{_PCT})|(?P<cur>{_CUR}))?"
                   r"(?:\s+of\s+(?:my\s+|the\s+)?(?:equity|account|capital))?")
_RISK_AFTER = re.compile(rf"{NUM}(?:(?P<pct>{_PCT})|(?P<cur>{_CUR}))?\s+(?:of\s+|in\s+)?"
                         r"(?:risk|(?:my\s+|the\s+)?(?:equity|account|capital))\b")
_SIZE_UNITS = re.compile(rf"{NUM}\s*(?:shares?|units?|contracts?|lots?|stocks?)\b")
_SIZE = re.compile(rf"\b(?:size|qty|quantity|position(?:\s+size)?)\b{_CONN}{NUM}(?!{_PCT})")
_HORIZON = re.compile(
    rf"\b(?:for|over|hold(?:ing)?(?:\s+(?:it|for|them))*|within|horizon(?:\s+(?:of|is))?|"
    rf"time[\s-]stop(?:\s+(?:of|after|at|in))?|up\s+to)\s+(?:the\s+next\s+|about\s+|around\s+|"
    rf"up\s+to\s+|roughly\s+|some\s+)*{NUM}\s*(?P<u>bars?|candles?|trading\s+days?|days?|"
    rf"sessions?|weeks?|hours?|months?)\b")
_HORIZON_BARS = re.compile(rf"\bhorizon(?:\s+(?:of|is))?\s+{NUM}(?!\s*(?:bars?|candles?|days?|"
                           r"sessions?|weeks?|hours?|months?|trading)\b)")
_HORIZON_ADJ = re.compile(rf"{NUM}[\s-](?P<u>bar|candle|day|session|week|hour|month)s?\s+"
                          r"(?:hold|horizon|trade|swing|time\s+stop)\b")
_TIMEFRAME = re.compile(r"\b(?:on\s+the\s+)?(?P<tf>daily|hourly|weekly|4[\s-]?hours?|"
                        r"1[\s-]?hour|(?:1|5|15|30)[\s-]?min(?:ute)?s?|1m|5m|15m|30m|1h|4h|"
                        r"1d|1w)(?:\s+(?:chart|timeframe|bars?|candles?))?\b")
_TF_WORDS = {"daily": "1d", "hourly": "1h", "weekly": "1w", "1d": "1d", "1w": "1w", "1h": "1h",
             "4h": "4h", "1m": "1m", "5m": "5m", "15m": "15m", "30m": "30m"}
_PULLBACK = re.compile(rf"\b(?:pull[\s-]?backs?|dips?|retrace(?:ment)?s?|retests?|bounces?)"
                       rf"\s+(?:to|into|toward|towards|near|at|of|around|off|from)\s+"
                       rf"(?:the\s+)?(?:(?:area|level|zone)\s+(?:of\s+|at\s+)?)?{NUM}")
_ENTRY = re.compile(rf"\b(?P<w>entry|enter(?:ing)?|get\s+in|in|buy(?:ing)?|sell(?:ing)?|"
                    rf"short(?:ing)?|long|limit(?:\s+order)?|bid|offer){_CONN}{NUM}(?!{_PCT})")
_AT = re.compile(rf"(?:^|\s)(?:at|@)\s*{NUM}(?!{_PCT}|{_CUR})")
# A symbol's words are blanked with this mark: "long AAPL 555" (a price after the ticker)
# and "buy 100 AAPL" (a quantity before it) read the way order tickets are written.
_MARK = "#"
_AFTER_SYMBOL = re.compile(rf"#+\s*(?:(?:at|around|near|about)\s+|@\s*)?{NUM}(?!{_PCT})"
                           r"(?!\s*(?:shares?|units?|contracts?|lots?)\b)(?P<limit>\s+limit\b)?")
# A position's size as a share of equity is notional, not risk: never read as risk_pct.
_SIZE_PCT = re.compile(rf"\b(?:(?:position\s+)?size|position|allocation|allocate)\b{_CONN}{NUM}"
                       rf"{_PCT}(?:\s+of\s+(?:my\s+|the\s+)?(?:equity|account|capital))?")
_QTY_BEFORE_SYMBOL = re.compile(rf"\b(?:buy(?:ing)?|sell(?:ing)?|long|short(?:ing)?)\s+{NUM}"
                                r"\s+(?:shares?\s+(?:of\s+)?)?(?=#)")
_REVERSED = re.compile(rf"(?P<n>{_DIGITS})(?!{_PCT})\s+(?:is\s+|as\s+|for\s+)?"
                       r"(?:the\s+|my\s+|a\s+)?(?P<slot>stop|target|entry)\b")
# A level the trader mentions ("support at 550") is context, not an order price.
_LEVEL = re.compile(rf"\b(?:support|resistance|level|vwap|pivot|(?:moving\s+)?average|[se]?ma"
                    rf"|(?:prior|previous|yesterday's|day's)\s+(?:high|low|close)|gap)s?\s+"
                    rf"(?:at|near|around|of|is|sits\s+at)\s+{NUM}")
# An indicator's period ("the 50-day moving average", "RSI 14") is not a price.
_INDICATOR = re.compile(r"\b\d+[\s-]?(?:day|period|week|bar|hour)?s?[\s-]?(?:moving\s+average|"
                        r"[sewd]?ma|ma)\b|\b(?:rsi|atr|adx|cci|stoch)\s*\(?\d+\)?")
_RANGE = re.compile(rf"\b(?P<slot>entry|enter|buy|in|stop|target)\s+(?:between|from)\s+{NUM}"
                    rf"\s*(?:and|to|-)\s*(?P<n2>{_DIGITS})")
_MARKET = re.compile(r"\b(?:at\s+(?:the\s+)?market|market\s+order|mkt)\b")
_LONG = re.compile(r"\b(?:long|bullish)\b(?![\s-]term)")
_SHORT = re.compile(r"\b(?:short(?:ing)?|bearish)\b(?![\s-]term)")
_NEGATED = re.compile(r"\b(?:not|no|never|don'?t|n't)\s+(?:a\s+|an\s+|go\s+|going\s+)?$")
_BUY = re.compile(r"\bbuy(?:ing)?\b")
_SELL = re.compile(r"\bsell(?:ing)?\b")
_THESIS_MARK = re.compile(r"\b(?:because|since|thesis(?:\s+is)?\s*:?|reason(?:\s+is)?\s*:?|"
                          r"the\s+idea\s+is|my\s+view\s+is|setup(?:\s+is)?\s*:)\s+"
                          rf"(?P<t>.+?){_CLAUSE_END}")
_SETUP = (r"pull[\s-]?back|dip|retrace(?:ment)?|retest|bounce|break(?:out|down)?|support|"
          r"resistance|trend|range|reversal|momentum|moving\s+average|vwap|consolidation|base|"
          r"flag|wedge|divergence|oversold|overbought|earnings|gap|squeeze|channel|double\s+"
          r"(?:top|bottom)|higher\s+lows?|lower\s+highs?")
_THESIS_SETUP = re.compile(rf"\b(?:on|off|after|into|near|from|with)\s+(?:an?\s+|the\s+|its\s+)?"
                           rf"(?:\w+\s+){{0,3}}?(?:{_SETUP})s?\b.*?{_CLAUSE_END}")
_TOKEN = re.compile(r"[a-z][a-z0-9&./\-]*")
# Words a fuzzy company-name match must never take: the parser's own vocabulary.
_VOCAB = frozenset(re.findall(r"\w+", """
    long short stop target risk entry enter pullback support resistance shares share units
    percent quarter half third market limit order buy sell bullish bearish horizon hours
    weeks days bars sessions daily hourly weekly thesis because since setup review trade
    evaluate journal profit loss with from into above below under over around about near
    breakout break retest bounce trend range momentum earnings"""))
_COMMON = frozenset(re.findall(r"\w+", """
    all and any are big but can car cat day did dog eat far few for fun get got had has her
    him his hot how its job key let low man may new not now off old one our out own put run
    say see she sit six ten the too top two use via was way who why win yes yet you
    also back best both call came come data does done down each easy even ever face fact fast
    feel find fine five four free from full gain gave give goes gold good grow half hand hard
    have here high hold home hope idea into just keep kind know last late lead left less life
    like line live look lose loss lost main make many mind more most move much must name near
    need next nice once only open over page part past pick plan play plus post real rest rise
    safe same save seen sell send ship show side sign size some soon spot star stay such sure
    take talk team tell than that them then they this time tone true turn very view want well
    went were what when will wise with work year your zero"""))
_SUFFIXES = re.compile(r"\b(?:inc|incorporated|corp|corporation|co|company|plc|ltd|limited|"
                       r"class\s+[a-z]|holdings?|group|sa|ag|nv|the|index|composite)\b\.?")


def parse_utterance(text: str, draft: TradeIdeaDraft, symbols: Mapping[str, str], *,
                    relative_base: datetime | None = None) -> tuple[SlotUpdate, ...]:
    """Return the slot updates one turn's ``text`` states, in the order found.

    ``draft`` is the conversation so far (its side and timeframe decide "sell" and "for 10
    days"); ``symbols`` maps ticker -> company name (the catalogue). ``relative_base`` is
    the moment "yesterday" counts from; without it a relative date is rejected rather than
    read against today's clock. Nothing is defaulted: words without a number set nothing.
    """
    work = _Work(text)
    out: list[SlotUpdate] = []
    out += _dates(work, relative_base)
    out += _symbols(work, symbols)
    out += _declines(work)
    side_updates = _sides(work, draft)
    out += _entries_by_stop(work)
    out += _ranges(work)
    out += _prices(work, _STOP, "stop")
    out += _targets(work)
    out += _reversed(work)
    _levels(work)
    out += _notional(work)
    out += _risks(work)
    out += _sizes(work)
    out += _horizons(work, draft)
    out += _timeframes(work)
    out += _entries(work, draft, side_updates)
    out += side_updates
    out += _thesis(text)
    return tuple(out)


def warm_up(symbols: Mapping[str, str] | None = None) -> None:
    """Load the date and fuzzy-match readers (and index ``symbols``) now, so a server's
    first "as of" turn does not pay their start-up (about a second for dateparser)."""
    _read_date("June 1 2012", None)
    parse_utterance("long apple", TradeIdeaDraft(), symbols or {})


def apply_updates(draft: TradeIdeaDraft, updates: Iterable[SlotUpdate]) -> TradeIdeaDraft:
    """Return ``draft`` with one turn's ``updates`` folded in.

    A later turn overwrites a slot (see ``overwrites``). Two different values for one slot
    in one turn, or a rejected update, leave the slot as it was and become a conflict; a
    slot's earlier conflict clears when this turn sets it. Size, risk percent and risk
    amount are one slot said three ways: setting one clears the others. A target said in R
    follows the entry and stop.
    """
    updates = tuple(updates)
    for u in updates:
        if u.slot not in UPDATABLE:
            raise ValueError(f"slot: must be one of {', '.join(UPDATABLE)} (got {u.slot!r})")
        if u.slot == "declined" and u.rejected is None and u.value not in DECLINABLE:
            raise ValueError(f"declined: must be one of {', '.join(DECLINABLE)} "
                             f"(got {u.value!r})")
    chosen, conflicts = _settle(updates)
    values: dict[str, Any] = {}
    said = {_slot_of(f) for f in chosen}
    declined = [s for s in draft.declined if s not in said]
    for slot, value in chosen.items():
        if slot == "declined":
            continue
        values[slot] = value
        if slot in SIZE_FIELDS:
            values.update({f: None for f in SIZE_FIELDS if f != slot and f not in chosen})
        if slot == "target" and "target_r" not in chosen:
            values["target_r"] = None
    for slot in chosen.get("declined", ()):
        if slot in said:
            continue  # "no target... target 600": the value said wins
        declined.append(slot)
        if slot == "target":
            values.update(target=None, target_r=None)
        else:
            values[slot] = None
    settled = said | set(chosen.get("declined", ()))
    kept = [c for c in draft.conflicts if c.field not in settled and _slot_of(c.field)
            not in settled]
    new = replace(draft, **values, declined=tuple(dict.fromkeys(declined)),
                  conflicts=tuple(kept + conflicts))
    return _follow_r(new)


def overwrites(draft: TradeIdeaDraft, updates: Iterable[SlotUpdate]) -> tuple[Overwrite, ...]:
    """Return the slots ``updates`` would change from a value the draft already held."""
    updates = tuple(updates)
    after = apply_updates(draft, updates)
    sources = {u.slot: u.source_text for u in updates if u.rejected is None}
    out: list[Overwrite] = []
    for slot in ("symbol", "side", "thesis", "entry", "stop", "target", "horizon", "timeframe",
                 "order_type", "as_of"):
        old, new = getattr(draft, slot), getattr(after, slot)
        if old is not None and new is not None and old != new and slot in sources:
            out.append(Overwrite(slot, old, new, sources[slot]))
    old_size, new_size = _size_words(draft), _size_words(after)
    if old_size and new_size and old_size != new_size:
        src = next((sources[f] for f in SIZE_FIELDS if f in sources), "")
        out.append(Overwrite("size", old_size, new_size, src))
    return tuple(out)


def next_question(draft: TradeIdeaDraft) -> str | None:
    """Return the follow-up for the first contradiction, else the first missing slot, else
    None (ready to evaluate). Only the draft's own numbers appear in a question."""
    problems = draft.problems()
    if problems:
        return _problem_question(problems[0], draft)
    missing = draft.missing()
    if missing:
        return _MISSING_QUESTIONS[missing[0]]
    return None


# ---------------------------------------------------------------------------- the readers
class _Work:
    """The turn in lower case with every read span blanked, so no words are read twice."""

    def __init__(self, text: str) -> None:
        self.original = text
        # lower() may change a character's length (dotted I): keep those as they are
        self.text = "".join(c.lower() if len(c.lower()) == 1 else c for c in text)

    def finditer(self, pattern: re.Pattern[str]) -> list[re.Match[str]]:
        return list(pattern.finditer(self.text))

    def take(self, m: re.Match[str], fill: str = "\x00") -> str:
        """Blank the match (with ``fill``) and return its original words. The fill is no
        space, so a later pattern never reaches across words already read."""
        return self.take_span(m.span(), fill)

    def take_span(self, span: tuple[int, int], fill: str = "\x00") -> str:
        start, end = span
        self.text = self.text[:start] + fill * (end - start) + self.text[end:]
        return self.original[start:end].strip(" ,;")


def _dates(work: _Work, base: datetime | None) -> list[SlotUpdate]:
    out = []
    for m in work.finditer(_DATE):
        words = m.group("d").strip()
        src = work.take(m)
        if _LATEST.fullmatch(words):
            out.append(SlotUpdate("as_of", None, src))
            continue
        value, rule = _read_date(words, base)
        if rule is not None:
            out.append(SlotUpdate("as_of", src, src, rejected=rule))
        else:
            out.append(SlotUpdate("as_of", value, src))
    return out


def _read_date(words: str, base: datetime | None) -> tuple[str | None, str | None]:
    """Return (ISO date or date-time, None) or (None, the rule the words broke)."""
    iso = _ISO_DATE.fullmatch(words.strip())
    if iso:
        try:
            when = datetime.fromisoformat(iso.group(0).replace(" ", "T"))
        except ValueError:
            return None, "must be a real calendar date"
        return (when.isoformat(timespec="minutes") if iso.group("time")
                else when.date().isoformat()), None
    # Two bases far apart: a date that moves with the base is relative ("yesterday").
    first, period = _date_parser(_FAR_BASES[0]).parse(words)
    second, _ = _date_parser(_FAR_BASES[1]).parse(words)
    if first is None:
        return None, "must name a day, a month and a year"
    if first != second:
        if base is None:
            return None, ("is relative, and the conversation has no date to count from: "
                          "name the day, month and year")
        first, period = _date_parser(base).parse(words)
        if first is None:
            return None, "must name a day, a month and a year"
    if first.tzinfo is not None:
        return first.isoformat(), None
    if period == "time":
        return first.isoformat(timespec="minutes"), None
    return first.date().isoformat(), None


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(?P<time>[ T]\d{2}:\d{2}(?::\d{2})?)?")
_FAR_BASES = (datetime(2001, 1, 1), datetime(2011, 7, 15))


class _DateParser:
    """dateparser with every part of a date required, counting from one fixed base."""

    def __init__(self, base: datetime) -> None:
        from dateparser.date import DateDataParser  # type: ignore[import-untyped]

        settings = {"REQUIRE_PARTS": ["day", "month", "year"], "RELATIVE_BASE": base,
                    "RETURN_TIME_AS_PERIOD": True, "DATE_ORDER": "MDY",
                    "PREFER_DATES_FROM": "past"}
        self._parser = DateDataParser(languages=["en"], settings=settings)

    def parse(self, words: str) -> tuple[datetime | None, str | None]:
        data = self._parser.get_date_data(words)
        return data.date_obj, data.period


@functools.lru_cache(maxsize=16)
def _date_parser(base: datetime) -> _DateParser:
    return _DateParser(base)


def _ticker_key(ticker: str) -> str:
    return re.sub(r"[./\-\s]", "", ticker.upper())


def _clean_name(name: str) -> str:
    s = _SUFFIXES.sub(" ", re.sub(r"\([^)]*\)", " ", name.lower()))
    return re.sub(r"[\s,]+", " ", s).strip(" .,")


@dataclass(frozen=True, slots=True)
class _SymbolIndex:
    """The catalogue prepared for lookups: ticker keys, whole cleaned names (up to
    ``_NAME_WORDS`` words) and the first word of each name for fuzzy matching."""

    tickers: dict[str, str]
    names: dict[str, str]
    firsts: dict[str, str]
    longest: int


_NAME_WORDS = 6


@functools.lru_cache(maxsize=8)
def _symbol_index(items: frozenset[tuple[str, str | None]]) -> _SymbolIndex:
    """Return the index of one catalogue (built once per distinct catalogue: a turn over a
    few thousand symbols then costs dictionary lookups, not a regex per name)."""
    tickers = {_ticker_key(t): t for t, _ in sorted(items)}
    names: dict[str, str] = {}
    firsts: dict[str, str] = {}
    for ticker, name in sorted(items):
        cleaned = _clean_name(name) if name else ""
        words = cleaned.split()
        if len(cleaned) >= 4 and len(words) <= _NAME_WORDS:
            names.setdefault(" ".join(words), ticker)
        if words and len(words[0]) >= 4 and words[0] not in _VOCAB:
            firsts.setdefault(words[0], ticker)
    longest = max((len(n.split()) for n in names), default=0)
    return _SymbolIndex(tickers, names, firsts, longest)


def _symbols(work: _Work, symbols: Mapping[str, str]) -> list[SlotUpdate]:
    from rapidfuzz import fuzz, process

    index = _symbol_index(frozenset(symbols.items()))
    out: list[SlotUpdate] = []
    # Whole company names first ("international business machines", "s&p 500"): their
    # words may hold numbers that are not prices. The longest name at a word wins.
    words = [(m.start(), m.start() + len(m.group(0).rstrip(",.;:!?")),
              m.group(0).rstrip(",.;:!?")) for m in re.finditer(r"\S+", work.text)]
    i = 0
    while i < len(words):
        for n in range(min(index.longest, len(words) - i), 0, -1):
            phrase = " ".join(w for _, _, w in words[i:i + n])
            if phrase in index.names:
                span = (words[i][0], words[i + n - 1][1])
                out.append(SlotUpdate("symbol", index.names[phrase],
                                      work.take_span(span, _MARK)))
                i += n - 1
                break
        i += 1
    firsts = list(index.firsts)
    for m in work.finditer(_TOKEN):
        tok = m.group(0).strip("./-")
        key = _ticker_key(tok)
        original = work.original[m.start():m.end()]
        # a ticker in lower case counts unless it is an everyday word ("all", "now", "on")
        if key in index.tickers and (original.isupper() or (
                len(key) >= 3 and tok not in _VOCAB and tok not in _COMMON)):
            out.append(SlotUpdate("symbol", index.tickers[key], work.take(m, _MARK)))
            continue
        if len(tok) < 4 or tok in _VOCAB or not firsts:
            continue
        best = process.extractOne(tok, firsts, scorer=fuzz.ratio,
                                  score_cutoff=SYMBOL_MIN_SCORE)
        if best is not None:
            out.append(SlotUpdate("symbol", index.firsts[best[0]], work.take(m, _MARK)))
    return out


def _declines(work: _Work) -> list[SlotUpdate]:
    out = []
    for m in work.finditer(_NO):
        slot = m.group("slot")
        src = work.take(m)
        if slot.startswith("stop"):
            out.append(SlotUpdate("stop", src, src, rejected=(
                "is needed: name the price that shows the idea is wrong")))
        else:
            name = ("target" if "target" in slot else "horizon" if slot in ("horizon",
                    "time stop") else "thesis")
            out.append(SlotUpdate("declined", name, src))
    return out


def _sides(work: _Work, draft: TradeIdeaDraft) -> list[SlotUpdate]:
    """Read side words without blanking them ("short at 560" is also an entry)."""
    out = []
    for pattern, side in ((_LONG, "long"), (_SHORT, "short")):
        for m in work.finditer(pattern):
            if _NEGATED.search(work.text[:m.start()]):
                continue  # "long, not short"
            out.append(SlotUpdate("side", side, work.original[m.start():m.end()]))
    if draft.side is None and not out:
        # "buy"/"sell" name a side only when none is known: on a long, "sell at 600" is an exit
        for pattern, side in ((_BUY, "long"), (_SELL, "short")):
            for m in work.finditer(pattern):
                out.append(SlotUpdate("side", side, work.original[m.start():m.end()]))
    return out


def _number_update(slot: str, m: re.Match[str], src: str) -> list[SlotUpdate]:
    value = parse_number(m.group("n"))
    if value is None:
        return []
    return [SlotUpdate(slot, value, src)]


def _simple(work: _Work, pattern: re.Pattern[str], slot: str) -> list[SlotUpdate]:
    out = []
    for m in work.finditer(pattern):
        out += _number_update(slot, m, work.take(m))
    return out


def _entries_by_stop(work: _Work) -> list[SlotUpdate]:
    out = []
    for m in work.finditer(_BUY_SELL_STOP):
        src = work.take(m)
        side = "long" if m.group("side") == "buy" else "short"
        found = _number_update("entry", m, src)
        if found:
            out += [*found, SlotUpdate("order_type", "stop", src), SlotUpdate("side", side, src)]
    for m in work.finditer(_BREAK):
        src = work.take(m)
        found = _number_update("entry", m, src)
        if found:
            out += [*found, SlotUpdate("order_type", "stop", src)]
    return out


def _prices(work: _Work, pattern: re.Pattern[str], slot: str) -> list[SlotUpdate]:
    """Read a price; a percent where the price goes ("stop 2% below") is refused, not
    converted."""
    out = []
    for m in work.finditer(pattern):
        src = work.take(m)
        if m.group("pct_after"):
            out.append(SlotUpdate(slot, src, src, rejected=(
                "must be a price: a percent or a distance (ATR, points, R) is not read as one "
                "(say the price)")))
        else:
            out += _number_update(slot, m, src)
    return out


def _ranges(work: _Work) -> list[SlotUpdate]:
    """Blank indicator periods; refuse a range where one price goes ("entry between 555 and
    560")."""
    out = []
    for m in work.finditer(_INDICATOR):
        work.take(m)
    for m in work.finditer(_RANGE):
        src = work.take(m)
        word = m.group("slot")
        slot = word if word in ("stop", "target") else "entry"
        out.append(SlotUpdate(slot, src, src, rejected="must be one price, not a range"))
    return out


def _levels(work: _Work) -> None:
    """Blank the levels the trader only mentions, once stop and target have read theirs."""
    for m in work.finditer(_LEVEL):
        work.take(m)


def _reversed(work: _Work) -> list[SlotUpdate]:
    out = []
    for m in work.finditer(_REVERSED):
        out += _number_update(m.group("slot"), m, work.take(m))
    return out


def _targets(work: _Work) -> list[SlotUpdate]:
    out = []
    for m in work.finditer(_TARGET):
        src = work.take(m)
        if m.group("pct_after"):
            out.append(SlotUpdate("target", src, src, rejected=(
                "must be a price or a multiple of the risk ('2R'): a percent is not read "
                "as one (say the price)")))
            continue
        out += _number_update("target_r" if m.group("r") else "target", m, src)
    return out


def _notional(work: _Work) -> list[SlotUpdate]:
    out = []
    for m in work.finditer(_SIZE_PCT):
        src = work.take(m)
        out.append(SlotUpdate("size", src, src, rejected=(
            "as a percent of equity is the position's value, not its risk: say the risk "
            "(a percent of equity) or the number of shares")))
    return out


def _risks(work: _Work) -> list[SlotUpdate]:
    out = []
    for m in work.finditer(_RISK_AFTER):
        value = parse_number(m.group("n"))
        if value is None:
            continue
        if m.group("pct"):
            out.append(SlotUpdate("risk_pct", value, work.take(m)))
        elif m.group("cur") or "$" in m.group("n"):
            out.append(SlotUpdate("risk_amount", value, work.take(m)))
    for m in work.finditer(_RISK):
        src = work.take(m)
        value = parse_number(m.group("n"))
        if value is None:
            continue
        if m.group("pct"):
            out.append(SlotUpdate("risk_pct", value, src))
        elif m.group("cur") or "$" in m.group("n"):
            out.append(SlotUpdate("risk_amount", value, src))
        else:
            out.append(SlotUpdate("size", src, src, rejected=(
                "needs a unit: a percent of equity or an amount in the account's currency")))
    return out


def _sizes(work: _Work) -> list[SlotUpdate]:
    return (_simple(work, _SIZE_UNITS, "size") + _simple(work, _SIZE, "size")
            + _simple(work, _QTY_BEFORE_SYMBOL, "size"))


def _horizons(work: _Work, draft: TradeIdeaDraft) -> list[SlotUpdate]:
    out = []
    for m in work.finditer(_HORIZON_BARS):
        src = work.take(m)
        value = parse_number(m.group("n"))
        if value is not None:
            out += _horizon_bars(value, "bar", draft.timeframe, src)
    for pattern in (_HORIZON, _HORIZON_ADJ):
        for m in work.finditer(pattern):
            src = work.take(m)
            value = parse_number(m.group("n"))
            if value is None:
                continue
            out += _horizon_bars(value, m.group("u"), draft.timeframe, src)
    return out


def _horizon_bars(n: float, unit: str, timeframe: str | None, src: str) -> list[SlotUpdate]:
    """Return the horizon in bars of the timeframe, or a rejection when the unit does not
    convert without knowing the session's hours."""
    unit = unit.split()[-1].rstrip("s")
    tf = timeframe
    bars: float | None = None
    set_tf: str | None = None
    if unit in ("bar", "candle"):
        bars = n
    elif unit in ("day", "session") and tf in (None, "1d"):
        bars, set_tf = n, "1d" if tf is None else None
    elif unit == "week" and tf in (None, "1d"):
        bars, set_tf = n * DAYS_PER_WEEK, "1d" if tf is None else None
    elif unit == "week" and tf == "1w":
        bars = n
    elif unit == "hour" and tf in ("1h", "4h"):
        bars = n / (1 if tf == "1h" else 4)
    if bars is None or not float(bars).is_integer() or bars < 1:
        where = f"on {tf} bars" if tf else "without a timeframe"
        return [SlotUpdate("horizon", src, src, rejected=(
            f"must be a whole number of bars: say it in bars ({unit}s do not convert {where})"))]
    out = [SlotUpdate("horizon", int(bars), src)]
    if set_tf:
        out.append(SlotUpdate("timeframe", set_tf, src))
    return out


def _timeframes(work: _Work) -> list[SlotUpdate]:
    out = []
    for m in work.finditer(_TIMEFRAME):
        src = work.take(m)
        raw = re.sub(r"[\s-]", "", m.group("tf"))
        tf = _TF_WORDS.get(raw)
        if tf is None:
            digits = re.match(r"\d+", raw)
            n = digits.group(0) if digits else ""
            tf = f"{n}h" if "hour" in raw else f"{n}m"
        out.append(SlotUpdate("timeframe", tf, src))
    return out


def _entries(work: _Work, draft: TradeIdeaDraft, sides: Sequence[SlotUpdate]
             ) -> list[SlotUpdate]:
    out = []
    for m in work.finditer(_PULLBACK):
        src = work.take(m)
        found = _number_update("entry", m, src)
        if found:
            out += [*found, SlotUpdate("order_type", "limit", src)]
    for m in work.finditer(_AFTER_SYMBOL):
        src = work.take(m)
        found = _number_update("entry", m, src)
        out += found
        if found and m.group("limit"):
            out.append(SlotUpdate("order_type", "limit", src))
    for m in work.finditer(_MARKET):
        out.append(SlotUpdate("order_type", "market", work.take(m)))
    side = sides[0].value if sides else draft.side
    for m in work.finditer(_ENTRY):
        src = work.take(m)
        word = m.group("w")
        # the opposite order closes the trade: on a long, "sell at 600" is the exit
        closing = ((side == "long" and word.startswith("sell"))
                   or (side == "short" and word.startswith("buy")))
        found = _number_update("target" if closing else "entry", m, src)
        out += found
        if found and word.startswith("limit"):
            out.append(SlotUpdate("order_type", "limit", src))
    out += _simple(work, _AT, "entry")
    return out


def _thesis(text: str) -> list[SlotUpdate]:
    """Return the trader's reason in their own words: after 'because'/'thesis:' etc., else
    the clause that names a setup ('on a pullback to support')."""
    m = _THESIS_MARK.search(text.lower())
    if m:
        words = text[m.start("t"):m.end("t")].strip()
        return [SlotUpdate("thesis", words, text[m.start():m.end()].strip())] if words else []
    m = _THESIS_SETUP.search(text.lower())
    if m:
        words = text[m.start():m.end()].strip(" ,;")
        return [SlotUpdate("thesis", words, words)]
    return []


# ------------------------------------------------------------------------- applying a turn
def _slot_of(name: str) -> str:
    """Return the SLOTS name a draft field belongs to (risk_pct -> size)."""
    if name in SIZE_FIELDS:
        return "size"
    if name == "target_r":
        return "target"
    return name


def _settle(updates: Sequence[SlotUpdate]) -> tuple[dict[str, Any], list[FieldError]]:
    """Return the value each field takes this turn and the conflicts the turn leaves."""
    by_field: dict[str, list[SlotUpdate]] = {}
    conflicts: list[FieldError] = []
    for u in updates:
        if u.rejected is not None:
            conflicts.append(FieldError(u.slot, u.rejected, u.source_text))
        else:
            by_field.setdefault(u.slot, []).append(u)
    rejected = {c.field for c in conflicts}
    chosen: dict[str, Any] = {}
    # "no target, no thesis": declining is a set, never two values of one slot
    if "declined" in by_field:
        chosen["declined"] = tuple(dict.fromkeys(u.value for u in by_field.pop("declined")))
    for slot, found in by_field.items():
        distinct = list(dict.fromkeys(_key(u.value) for u in found))
        if len(distinct) > 1:
            values = [u.value for u in found]
            shown = " and ".join(dict.fromkeys(_show(v) for v in values))
            conflicts.append(FieldError(slot, f"two different values in one turn ({shown})",
                                        values))
        elif slot not in rejected:
            chosen[slot] = found[0].value
    # Two ways of stating size in one turn ("100 shares, risk 1%") are two different sizes.
    said = [f for f in SIZE_FIELDS if f in chosen]
    if len(said) > 1:
        shown = " and ".join(_size_words_of(f, chosen[f]) for f in said)
        conflicts.append(FieldError("size", f"two different sizes in one turn ({shown})",
                                    [chosen[f] for f in said]))
        for f in said:
            del chosen[f]
    return chosen, conflicts


def _key(v: Any) -> Any:
    return round(v, 10) if isinstance(v, float) else v


def _follow_r(d: TradeIdeaDraft) -> TradeIdeaDraft:
    """Return ``d`` with the target set from ``target_r`` when entry, stop and side allow."""
    if d.target_r is None:
        return d
    if d.entry is None or d.stop is None or d.side not in ("long", "short"):
        return replace(d, target=None)
    risk = d.entry - d.stop if d.side == "long" else d.stop - d.entry
    if risk <= 0:
        return replace(d, target=None)
    sign = 1 if d.side == "long" else -1
    return replace(d, target=round(d.entry + sign * d.target_r * risk, 10))


def _size_words_of(field: str, value: Any) -> str:
    if field == "risk_pct":
        return f"risk {_show(value)}% of equity"
    if field == "risk_amount":
        return f"risk {_show(value)} in account currency"
    return f"{_show(value)} units"


def _size_words(d: TradeIdeaDraft) -> str:
    for f in SIZE_FIELDS:
        if getattr(d, f) is not None:
            return _size_words_of(f, getattr(d, f))
    return ""


def _show(v: Any) -> str:
    if isinstance(v, float):
        return format_number(v)
    return str(v)


def _slot_words(slot: str) -> str:
    return {"as_of": "the date", "order_type": "the order type", "target_r": "the target",
            "risk_pct": "the risk", "risk_amount": "the risk amount"}.get(slot, f"the {slot}")


# ------------------------------------------------------------------------------ questions
_MISSING_QUESTIONS = {
    "symbol": "Which instrument is the idea on (a ticker or the company's name)?",
    "side": "Long or short?",
    "entry": "Where would you enter: a price, or at market?",
    "stop": "Where is your stop: the price that shows the idea is wrong?",
    "target": "Where is your target (or say 'no target')?",
    "size": ("How much would you risk: a percent of equity, an amount in your account's "
             "currency, or a number of shares?"),
    "thesis": "What is the reason for the trade, in a sentence?",
    "horizon": "How long would you hold it (days or bars)?",
}
if set(_MISSING_QUESTIONS) != set(SLOTS):  # a new slot without its question
    raise RuntimeError("buddy.assistant.parse: every slot needs a question")



def _problem_question(p: FieldError, d: TradeIdeaDraft) -> str:
    """Return the question that settles one contradiction, in the trader's own numbers."""
    words = _slot_words(p.field).removeprefix("the ")
    if p.rule.startswith("two different"):
        shown = p.rule[p.rule.index("(") + 1: p.rule.rindex(")")]
        return f"You gave two different values for the {words} ({shown}): which one is it?"
    if p.field == "stop" and d.side is not None and isinstance(p.value, float):
        where = "below" if d.side == "long" else "above"
        return (f"For a {d.side} the stop goes {where} the entry ({_show(d.entry)}), but "
                f"you said {_show(p.value)}: where should the stop be?")
    if p.field == "target" and d.side is not None and isinstance(p.value, float):
        where = "above" if d.side == "long" else "below"
        ref = "entry" if d.entry is not None else "stop"
        ref_value = d.entry if d.entry is not None else d.stop
        return (f"For a {d.side} the target goes {where} the {ref} ({_show(ref_value)}), but "
                f"you said {_show(p.value)}: where should the target be?")
    if isinstance(p.value, str):
        return f"I could not use \"{p.value}\": the {words} {p.rule}. What should it be?"
    return f"The {words} {p.rule} (you said {_show(p.value)}). What should it be?"
