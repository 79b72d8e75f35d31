"""The trade-intent rules, stated once over columns: many intents at once, one is a batch of one.

``RULES`` is the rule table. Each rule names its field, its wording (the rule a FieldError
carries, filled per row from the row's values), which rows break it (an array expression over
``IntentColumns`` and, for instrument and data rules, a ``Catalogue``), what it reads and its
stage. A row's errors come from the first stage in which it breaks any rule:

0. the fields alone: non-empty ids, a known side, timeframe and order type, finite positive
   prices and size, a horizon in range, an as_of in UTC, a known status;
1. stop and target on the right side of the entry;
2. a symbol in the tickers table;
3. prices on the instrument's tick grid, the size on its lot grid, bars stored for the
   timeframe and as_of inside them (at most MAX_BARS_PAST_DATA bars, or a week, past the
   last closed bar).

``TradeIntent`` construction runs the rules that read only the intent (``intent_errors``),
``Buddy.validate`` all of them (``catalogue_errors``), the replay engine all of them over its
intents frame (``check_intent_frame``). ``TradeIntent.create`` parses loose input with
``FIELD_PARSERS``; a value that does not parse gets the same wording as the rule it breaks.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache, cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from buddy.batch.columns import factorize_objects
from buddy.domain import MAX_HORIZON_BARS, OrderType, Side, as_utc
from buddy.errors import FieldError, FieldErrors, IntentValidationError
from buddy.evidence import is_on_tick
from buddy.timeframes import Timeframe

if TYPE_CHECKING:
    from buddy.context.pack import Instrument
    from buddy.domain import TradeIntent

#: How far past the last closed bar an as_of may lie before it is "outside the data":
#: this many bars of the timeframe, and never less than a week.
MAX_BARS_PAST_DATA = 10
#: How many row errors a frame check reports before summarising the rest.
MAX_ERRORS_SHOWN = 20

TEXT_FIELDS = ("user_id", "symbol", "side", "timeframe", "order_type", "status")
NUMBER_FIELDS = ("proposed_entry", "proposed_stop", "proposed_target", "proposed_size",
                 "proposed_risk_amount", "holding_horizon")
OPTIONAL_FIELDS = ("proposed_stop", "proposed_target", "proposed_risk_amount",
                   "holding_horizon")
FIELDS = (*TEXT_FIELDS, *NUMBER_FIELDS, "as_of")
_STATUSES = ("draft", "submitted")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


#: The longest symbol accepted (OCC option symbols are 21 characters).
MAX_SYMBOL_LENGTH = 24
#: A symbol is letters and digits with the separators exchanges and vendors use (BRK.B,
#: BTC-USD, EUR/USD, ^GSPC, ES=F, 7203:JP), starting with a letter, a digit or '^': nothing
#: that means something to HTML, SQL, a shell or a file path.
SYMBOL_PATTERN = re.compile(r"[A-Za-z0-9^][A-Za-z0-9._/^=:-]*")
SYMBOL_RULE = (f"must be 1 to {MAX_SYMBOL_LENGTH} characters: letters, digits and . - _ / ^ = :"
               ", starting with a letter, a digit or ^")


# ---------------------------------------------------------------------------- symbols
def symbol_errors(value: Any, *, field: str = "symbol") -> list[FieldError]:
    """Return what is wrong with ``value`` as a symbol (nothing when it is a valid one).

    Surrounding spaces are ignored; the symbol itself must match ``SYMBOL_PATTERN`` and be
    at most ``MAX_SYMBOL_LENGTH`` characters.
    """
    if not isinstance(value, str):
        return [FieldError(field, "must be text", value)]
    text = value.strip()
    if not text:
        return [FieldError(field, "must not be blank", value)]
    if len(text) > MAX_SYMBOL_LENGTH or SYMBOL_PATTERN.fullmatch(text) is None:
        return [FieldError(field, SYMBOL_RULE, value)]
    return []


def checked_symbol(value: Any, *, field: str = "symbol") -> str:
    """Return ``value`` as a stored symbol (stripped, upper case); raise FieldErrors if it is
    not a valid symbol."""
    errors = symbol_errors(value, field=field)
    if errors:
        raise FieldErrors(errors)
    return str(value).strip().upper()


# ---------------------------------------------------------------------------- parsing
def _number(value: Any) -> float:
    if isinstance(value, bool):  # float(True) == 1.0 would make a flag a price
        raise TypeError("a bool is not a number")
    try:
        return float(value)
    except OverflowError:
        raise ValueError("too large") from None


def _whole_number(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError("a bool is not a number")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError("not whole")
    return int(value)


def _choice(kind: type[Side] | type[OrderType]) -> Callable[[Any], Any]:
    return lambda value: kind(str(value).strip().lower())


#: How ``TradeIntent.create`` turns loose input (CLI strings, widget values) into field values.
FIELD_PARSERS: dict[str, Callable[[Any], Any]] = {
    "side": _choice(Side),
    "timeframe": Timeframe.parse,
    "order_type": _choice(OrderType),
    "proposed_entry": _number,
    "proposed_stop": _number,
    "proposed_target": _number,
    "proposed_size": _number,
    "proposed_risk_amount": _number,
    "holding_horizon": _whole_number,
    "as_of": as_utc,
}
_CHOICE_RULES = {
    "side": "must be one of " + ", ".join(s.value for s in Side),
    "timeframe": "must be one of " + ", ".join(t.value for t in Timeframe),
    "order_type": "must be one of " + ", ".join(o.value for o in OrderType),
}
#: The wording of a value ``FIELD_PARSERS`` cannot parse.
PARSE_RULES: dict[str, str] = {
    **_CHOICE_RULES,
    **{name: "must be a number" for name in NUMBER_FIELDS if name != "holding_horizon"},
    "holding_horizon": "must be a whole number of bars",
    "as_of": "must be an ISO timestamp",
}


# ---------------------------------------------------------------------------- columns
@dataclass(frozen=True, slots=True, kw_only=True)
class IntentColumns:
    """Many intents' fields as arrays, row i being intent i: what every rule reads.

    ``raw``: each field as given (object arrays; the value an error reports). ``text``: the
    text fields, an enum field holding its value ('long') or None when it is not one.
    ``number``: prices, size, risk and horizon as float64, NaN when not a number.
    ``given``: per optional field, True where a value was given. ``as_of_us``: microseconds
    since the epoch, UTC (meaningful where ``as_of_utc``).
    """

    raw: Mapping[str, np.ndarray]
    text: Mapping[str, np.ndarray]
    number: Mapping[str, np.ndarray]
    given: Mapping[str, np.ndarray]
    as_of_aware: np.ndarray
    as_of_utc: np.ndarray
    as_of_us: np.ndarray

    def __len__(self) -> int:
        return len(self.as_of_us)

    @classmethod
    def from_intents(cls, intents: Sequence[TradeIntent]) -> IntentColumns:
        """Return the columns of ``intents`` (values of the wrong type break their rule)."""
        raw = {name: _objects([getattr(i, name) for i in intents]) for name in FIELDS}
        enums = {"side": Side, "timeframe": Timeframe, "order_type": OrderType}
        text = {name: _objects([v.value if isinstance(v, enums[name]) else None
                                for v in raw[name]]) if name in enums else raw[name]
                for name in TEXT_FIELDS}
        number = {name: np.array([_typed_number(v, name) for v in raw[name]], dtype=np.float64)
                  for name in NUMBER_FIELDS}
        aware = np.array([isinstance(v, datetime) and v.utcoffset() is not None
                          for v in raw["as_of"]], dtype=bool)
        utc = np.array([bool(a) and v.utcoffset() == timedelta(0)
                        for a, v in zip(aware, raw["as_of"], strict=True)], dtype=bool)
        as_of_us = np.array([(v - _EPOCH) // _US if u else 0
                             for u, v in zip(utc, raw["as_of"], strict=True)], dtype=np.int64)
        return cls(raw=raw, text=text, number=number,
                   given={name: ~_is_none(raw[name]) for name in OPTIONAL_FIELDS},
                   as_of_aware=aware, as_of_utc=utc, as_of_us=as_of_us)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> IntentColumns:
        """Return the columns of an intents frame (trade_intents or replay INTENT_COLUMNS).

        Text is read as str; side, timeframe and order type through ``FIELD_PARSERS``;
        numbers with ``pd.to_numeric`` (anything else is NaN). A missing optional value (None,
        NaN or no column) is not given; a missing status is 'draft'.
        """
        n = len(frame)
        raw = _FrameFields(frame, {
            name: _text_objects(frame[name]) if name in frame.columns
            else _objects(["draft" if name == "status" else None] * n) for name in TEXT_FIELDS})
        text = {}
        for name in TEXT_FIELDS:
            given_values = raw[name]
            if name in _CHOICE_RULES:  # parsed once per distinct value; NaN is no choice
                parse = FIELD_PARSERS[name]
                codes, values = _distinct(given_values)
                given_values = _objects([_parsed_value(parse, v) for v in values])[codes]
            text[name] = given_values
        number = {name: pd.to_numeric(frame[name], errors="coerce").to_numpy(np.float64)
                  if name in frame.columns else np.full(n, np.nan) for name in NUMBER_FIELDS}
        given = {name: ~pd.isna(frame[name]).to_numpy(bool) if name in frame.columns
                 else np.zeros(n, dtype=bool) for name in OPTIONAL_FIELDS}
        as_of = frame["as_of"]
        aware = np.zeros(n, dtype=bool)
        as_of_us = np.zeros(n, dtype=np.int64)
        if isinstance(as_of.dtype, pd.DatetimeTZDtype):
            aware = as_of.notna().to_numpy(bool)
            utc = as_of.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[us]")
            as_of_us = np.where(aware, utc.to_numpy().astype(np.int64), 0)
        return cls(raw=raw, text=text, number=number, given=given, as_of_aware=aware,
                   as_of_utc=aware, as_of_us=as_of_us)


class _FrameFields(Mapping[str, np.ndarray]):
    """An intents frame's fields as object arrays (``IntentColumns.raw``): the text fields
    given, the others converted when first read (they are read only to report an error)."""

    def __init__(self, frame: pd.DataFrame, text: dict[str, np.ndarray]) -> None:
        self._frame = frame
        self._fields = dict(text)

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._fields:
            if name not in FIELDS:
                raise KeyError(name)
            self._fields[name] = (self._frame[name].to_numpy(dtype=object)
                                  if name in self._frame.columns
                                  else _objects([None] * len(self._frame)))
        return self._fields[name]

    def __iter__(self) -> Iterator[str]:
        return iter(FIELDS)

    def __len__(self) -> int:
        return len(FIELDS)


def _text_objects(values: pd.Series) -> np.ndarray:
    """Return ``values.to_numpy(dtype=object)``; a text column's through its distinct values."""
    if not pd.api.types.is_string_dtype(values.dtype) or values.dtype == object:
        return values.to_numpy(dtype=object)
    codes, uniques = pd.factorize(values)  # a missing value is -1: the NaN appended
    return _objects([*uniques, values.dtype.na_value])[codes]


def _objects(values: Sequence[Any] | np.ndarray) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


def _is_none(values: np.ndarray) -> np.ndarray:
    return np.array([v is None for v in values], dtype=bool)


def _typed_number(value: Any, name: str) -> float:
    """Return a field value as float; NaN when it is not of the field's type (the horizon is
    an int, the others an int or a float; never a bool)."""
    kinds = int if name == "holding_horizon" else (int, float)
    if value is None or isinstance(value, bool) or not isinstance(value, kinds):
        return math.nan
    try:
        return float(value)
    except OverflowError:  # an int beyond float range: no price or horizon
        return math.nan


def _parsed_value(parse: Callable[[Any], Any], value: Any) -> str | None:
    try:
        return str(parse(value).value)
    except (ValueError, TypeError, AttributeError):
        return None


# ---------------------------------------------------------------------------- the catalogue
@dataclass(frozen=True, slots=True)
class Catalogue:
    """What intents are checked against: the instruments and each series' closed bars.

    ``coverage[(symbol, timeframe)]`` is (first, last) ``ts_close`` of the stored bars, UTC.
    ``stamp`` is the store's context stamp when it was read (a newer stamp means re-read).
    """

    stamp: int
    instruments: Mapping[str, Instrument]
    coverage: Mapping[tuple[str, str], tuple[datetime, datetime]] = field(default_factory=dict)


class _Rows:
    """The columns of one check with what its rules derive from the catalogue per row."""

    def __init__(self, columns: IntentColumns, catalogue: Catalogue | None) -> None:
        self.c = columns
        self.catalogue = catalogue
        self._coded: dict[int, tuple[np.ndarray, np.ndarray, list[Any]]] = {}

    def distinct(self, *columns: np.ndarray) -> tuple[np.ndarray, list[Any]]:
        """``_distinct`` of columns of this check, each column's coded once."""
        return _distinct(*columns, coded=self._distinct_one)

    def _distinct_one(self, column: np.ndarray) -> tuple[np.ndarray, list[Any]]:
        found = self._coded.get(id(column))
        if found is None or found[0] is not column:
            found = self._coded[id(column)] = (column, *_distinct_values(column))
        return found[1], found[2]

    def each(self, values: np.ndarray, test: Callable[[Any], bool]) -> np.ndarray:
        """Return ``test(value)`` per row of ``values``, called once per distinct value."""
        codes, distinct = self.distinct(values)
        return np.array([test(v) for v in distinct], dtype=bool)[codes]

    def num(self, name: str) -> np.ndarray:
        return self.c.number[name]

    def given(self, name: str) -> np.ndarray:
        return self.c.given[name]

    @cached_property
    def long(self) -> np.ndarray:
        return self.c.text["side"] == Side.LONG.value

    @cached_property
    def short(self) -> np.ndarray:
        return self.c.text["side"] == Side.SHORT.value

    @cached_property
    def _symbols(self) -> tuple[np.ndarray, list[Any]]:
        """Return (code per row, distinct symbols): lookups run once per distinct symbol."""
        return self.distinct(self.c.text["symbol"])

    def _per_symbol(self, value: Callable[[Instrument], float]) -> np.ndarray:
        instruments = self.catalogue.instruments if self.catalogue else {}
        codes, symbols = self._symbols
        return np.array([value(instruments[s]) if s in instruments else np.nan
                         for s in symbols], dtype=np.float64)[codes]

    @cached_property
    def known(self) -> np.ndarray:
        instruments = self.catalogue.instruments if self.catalogue else {}
        codes, symbols = self._symbols
        return np.array([s in instruments for s in symbols], dtype=bool)[codes]

    @cached_property
    def tick(self) -> np.ndarray:
        return self._per_symbol(lambda i: i.tick_size)

    @cached_property
    def lot(self) -> np.ndarray:
        return self._per_symbol(lambda i: i.lot_size)

    @cached_property
    def span(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return (has bars, first close, last close + slack) per row, in microseconds."""
        coverage = self.catalogue.coverage if self.catalogue else {}
        codes, pairs = self.distinct(self.c.text["symbol"], self.c.text["timeframe"])
        spans = [coverage.get(pair) for pair in pairs]
        has = np.array([s is not None for s in spans], dtype=bool)
        first = np.array([(s[0] - _EPOCH) // _US if s else 0 for s in spans], dtype=np.int64)
        last = np.array([(s[1] - _EPOCH) // _US if s else 0 for s in spans], dtype=np.int64)
        slack = np.array([_slack_us(tf) for _, tf in pairs], dtype=np.int64)
        return has[codes], first[codes], (last + slack)[codes]


def _distinct(*columns: np.ndarray,
              coded: Callable[[np.ndarray], tuple[np.ndarray, list[Any]]] | None = None
              ) -> tuple[np.ndarray, list[Any]]:
    """Return (code per row, the distinct values, or tuples of them for several columns, in
    order of first appearance); None and NaN are values like any other. ``coded``: what
    ``_distinct`` of one column is (a cache of it)."""
    each = [(coded or _distinct_values)(column) for column in columns]
    if len(each) == 1:
        return each[0]
    key = np.zeros(len(columns[0]), dtype=np.int64)
    for codes, values in each:  # the row's tuple of codes as one number
        key = key * max(len(values), 1) + codes
    codes = pd.factorize(key)[0]
    _, firsts = np.unique(codes, return_index=True)  # each key's first row
    return codes.astype(np.int64), [tuple(values[c[f]] for c, values in each)
                                    for f in firsts.tolist()]


def _distinct_values(values: np.ndarray) -> tuple[np.ndarray, list[Any]]:
    """``_distinct`` of one column: through ``pd.factorize`` (by object first: the text
    columns hold a few objects) unless a value is missing (it would make None, NaN and NaT one
    value); then value by value."""
    codes, uniques = factorize_objects(values) if values.dtype == object else pd.factorize(
        values)
    if not len(codes) or codes.min() >= 0:
        return codes.astype(np.int64), list(uniques)
    index: dict[Any, int] = {}
    codes = np.fromiter((index.setdefault(k, len(index)) for k in values), dtype=np.int64,
                        count=len(values))
    return codes, list(index)


def _slack_us(timeframe: str | None) -> int:
    if timeframe is None:
        return 0
    nominal = Timeframe(timeframe).nominal.to_pytimedelta()
    return max(MAX_BARS_PAST_DATA * nominal, timedelta(days=7)) // _US


def _on_grid(price: np.ndarray, step: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        steps = price / step
        on = np.abs(steps - np.round(steps)) < 1e-6
        # past 1e9 steps the float quotient has lost the fraction: judge those exactly
        large = np.flatnonzero(np.isfinite(steps) & (np.abs(steps) >= 1e9)
                               & np.isfinite(step) & (step > 0))
    for i in large:
        on[i] = is_on_tick(float(price[i]), float(step[i]))
    return on


def _non_empty(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


# ---------------------------------------------------------------------------- the rule table
@dataclass(frozen=True, slots=True)
class IntentRule:
    """One rule: ``field`` breaks ``rule`` (wording, formatted with ``words(rows, i)``) on the
    rows where ``broken(rows)`` is True. ``reads``: 'intent', 'instrument' or 'data'."""

    field: str
    rule: str
    broken: Callable[[_Rows], np.ndarray]
    stage: int = 0
    reads: str = "intent"
    words: Callable[[_Rows, int], Mapping[str, Any]] | None = None
    value: Callable[[_Rows, int], Any] | None = None

    def error(self, rows: _Rows, i: int) -> FieldError:
        """Return the FieldError of row ``i``."""
        rule = self.rule.format(**self.words(rows, i)) if self.words else self.rule
        value = self.value(rows, i) if self.value else rows.c.raw[self.field][i]
        return FieldError(self.field, rule, value.item() if hasattr(value, "item") else value)


def _no_choice(name: str) -> Callable[[_Rows], np.ndarray]:
    def broken(r: _Rows) -> np.ndarray:
        return r.each(r.c.text[name], lambda v: v is None)
    return broken


def _finite(name: str) -> Callable[[_Rows], np.ndarray]:
    def broken(r: _Rows) -> np.ndarray:
        bad = ~np.isfinite(r.num(name))
        return bad & r.given(name) if name in OPTIONAL_FIELDS else bad

    return broken


def _positive(name: str) -> Callable[[_Rows], np.ndarray]:
    def broken(r: _Rows) -> np.ndarray:
        value = r.num(name)
        with np.errstate(invalid="ignore"):
            bad = np.isfinite(value) & (value <= 0)
        return bad & r.given(name) if name in OPTIONAL_FIELDS else bad

    return broken


def _bad_horizon(r: _Rows) -> np.ndarray:
    horizon = r.num("holding_horizon")
    with np.errstate(invalid="ignore"):
        ok = (np.floor(horizon) == horizon) & (horizon >= 1) & (horizon <= MAX_HORIZON_BARS)
    return r.given("holding_horizon") & ~ok


def _entry(r: _Rows, i: int) -> dict[str, Any]:
    return {"entry": float(r.num("proposed_entry")[i])}


def _side_of_entry(name: str, side: str, wrong: Callable[[np.ndarray, np.ndarray], np.ndarray]
                   ) -> Callable[[_Rows], np.ndarray]:
    def broken(r: _Rows) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            hit = wrong(r.num(name), r.num("proposed_entry"))
        return r.given(name) & (r.long if side == "long" else r.short) & hit

    return broken


def _off_tick(name: str) -> Callable[[_Rows], np.ndarray]:
    def broken(r: _Rows) -> np.ndarray:
        bad = r.known & ~_on_grid(r.num(name), r.tick)
        return bad & r.given(name) if name in OPTIONAL_FIELDS else bad

    return broken


def _instrument_words(r: _Rows, i: int) -> dict[str, Any]:
    return {"tick": r.tick[i], "lot": r.lot[i], "symbol": r.c.text["symbol"][i]}


def _coverage_words(r: _Rows, i: int) -> dict[str, Any]:
    symbol, timeframe = r.c.text["symbol"][i], r.c.text["timeframe"][i]
    coverage = r.catalogue.coverage if r.catalogue else {}
    span = coverage.get((symbol, timeframe))
    return {"symbol": symbol, "timeframe": timeframe,
            "tfs": ", ".join(tf for s, tf in sorted(coverage) if s == symbol) or "none",
            "first": span[0].isoformat() if span else "", "last": span[1].isoformat() if span
            else ""}


def _as_of_text(r: _Rows, i: int) -> str:
    return (_EPOCH + int(r.c.as_of_us[i]) * _US).isoformat()


def _known_words(r: _Rows, i: int) -> dict[str, Any]:
    instruments = r.catalogue.instruments if r.catalogue else {}
    return {"known": ", ".join(sorted(instruments)) or "none loaded"}


_PRICES = ("proposed_entry", "proposed_stop", "proposed_target")

#: The rule table, in the order a row's errors are reported.
RULES: tuple[IntentRule, ...] = (
    IntentRule("user_id", "must be a non-empty string",
               lambda r: ~r.each(r.c.raw["user_id"], _non_empty)),
    IntentRule("symbol", "must be a non-empty string",
               lambda r: ~r.each(r.c.raw["symbol"], _non_empty)),
    *(IntentRule(name, wording, _no_choice(name)) for name, wording in _CHOICE_RULES.items()),
    *(rule for name in _PRICES for rule in (
        IntentRule(name, "must be a finite number", _finite(name)),
        IntentRule(name, "must be > 0", _positive(name)))),
    IntentRule("proposed_size", "must be a finite number", _finite("proposed_size")),
    IntentRule("proposed_size", "must be > 0", _positive("proposed_size")),
    IntentRule("proposed_risk_amount", "must be a finite number > 0",
               lambda r: _finite("proposed_risk_amount")(r) | _positive(
                   "proposed_risk_amount")(r)),
    IntentRule("holding_horizon", f"must be a whole number of bars between 1 and "
               f"{MAX_HORIZON_BARS}", _bad_horizon),
    IntentRule("as_of", "must be a timezone-aware datetime", lambda r: ~r.c.as_of_aware),
    IntentRule("as_of", "must be in UTC (use as_utc())",
               lambda r: r.c.as_of_aware & ~r.c.as_of_utc),
    IntentRule("status", "must be draft or submitted",
               lambda r: r.each(r.c.raw["status"], lambda v: v not in _STATUSES)),
    # 1: stop and target against the entry
    IntentRule("proposed_stop", "must be below the entry {entry:g} for a long",
               _side_of_entry("proposed_stop", "long", np.greater_equal), 1, words=_entry),
    IntentRule("proposed_stop", "must be above the entry {entry:g} for a short",
               _side_of_entry("proposed_stop", "short", np.less_equal), 1, words=_entry),
    IntentRule("proposed_target", "must be above the entry {entry:g} for a long",
               _side_of_entry("proposed_target", "long", np.less_equal), 1, words=_entry),
    IntentRule("proposed_target", "must be below the entry {entry:g} for a short",
               _side_of_entry("proposed_target", "short", np.greater_equal), 1,
               words=_entry),
    # 2: the instrument
    IntentRule("symbol", "is not in the tickers table (known: {known})", lambda r: ~r.known,
               2, "instrument", words=_known_words),
    # 3: the instrument's grids and the stored bars
    *(IntentRule(name, "must be a multiple of the tick size {tick:g} of {symbol}",
                 _off_tick(name), 3, "instrument", words=_instrument_words)
      for name in _PRICES),
    IntentRule("proposed_size", "must be a multiple of the lot size {lot:g} of {symbol}",
               lambda r: r.known & ~_on_grid(r.num("proposed_size"), r.lot), 3, "instrument",
               words=_instrument_words),
    IntentRule("timeframe", "has no {symbol} bars (available: {tfs})",
               lambda r: ~r.span[0], 3, "data", words=_coverage_words,
               value=lambda r, i: r.c.text["timeframe"][i]),
    IntentRule("as_of", "is before the first closed {symbol} {timeframe} bar ({first})",
               lambda r: r.span[0] & (r.c.as_of_us < r.span[1]), 3, "data",
               words=_coverage_words, value=_as_of_text),
    IntentRule("as_of", "is after the stored data (last {timeframe} bar closed {last})",
               lambda r: r.span[0] & (r.c.as_of_us > r.span[2]),
               3, "data", words=_coverage_words, value=_as_of_text),
)


# ---------------------------------------------------------------------------- checks
def validate_columns(columns: IntentColumns, catalogue: Catalogue | None = None, *,
                     reads: Collection[str] = ("intent", "instrument", "data")
                     ) -> dict[int, list[FieldError]]:
    """Return the errors of every row that breaks a rule, by row position (none: valid).

    Only the rules that read ``reads`` run; a row's errors come from the first stage in
    which it breaks any of them (module docstring).
    """
    rows = _Rows(columns, catalogue)
    pending = np.ones(len(columns), dtype=bool)
    errors: dict[int, list[FieldError]] = {}
    for stage in _stages(frozenset(reads)):
        failed = np.zeros(len(columns), dtype=bool)
        for rule in stage:
            broken = rule.broken(rows) & pending
            if broken.any():
                for i in np.flatnonzero(broken).tolist():
                    errors.setdefault(i, []).append(rule.error(rows, i))
                failed |= broken
        pending &= ~failed
        if not pending.any():
            break
    return dict(sorted(errors.items()))


@cache
def _stages(reads: frozenset[str]) -> tuple[tuple[IntentRule, ...], ...]:
    chosen = [rule for rule in RULES if rule.reads in reads]
    return tuple(tuple(r for r in chosen if r.stage == stage)
                 for stage in sorted({r.stage for r in chosen}))


def intent_errors(intent: TradeIntent) -> list[FieldError]:
    """Return what ``intent`` breaks on its own (the rules reading only the intent)."""
    return validate_columns(IntentColumns.from_intents([intent]), reads=("intent",)).get(0, [])


def catalogue_errors(intent: TradeIntent, catalogue: Catalogue, *,
                     reads: Collection[str] = ("intent", "instrument", "data")
                     ) -> list[FieldError]:
    """Return every rule ``intent`` breaks against ``catalogue`` (a batch of one)."""
    return validate_columns(IntentColumns.from_intents([intent]), catalogue,
                            reads=reads).get(0, [])


def check_intent_frame(intents: pd.DataFrame, catalogue: Catalogue) -> None:
    """Check every row of an intents frame (with intent_id) against ``catalogue``.

    Raises one IntentValidationError naming each bad intent's fields as
    ``intents[<intent_id>].<field>`` (the first MAX_ERRORS_SHOWN, then how many more).
    """
    found = validate_columns(IntentColumns.from_frame(intents), catalogue)
    ids = intents["intent_id"].to_numpy(dtype=object) if found else np.empty(0, dtype=object)
    errors = [FieldError(f"intents[{ids[i]}].{e.field}", e.rule, e.value)
              for i, row in found.items() for e in row]
    if errors:
        shown = errors[:MAX_ERRORS_SHOWN]
        if len(errors) > len(shown):
            shown.append(FieldError("intents", f"and {len(errors) - len(shown)} more problems",
                                    len(errors)))
        raise IntentValidationError(shown)
