"""Validate bars against the canonical layout, price sanity and the instrument's calendar.

``validate_bars`` never changes the bars: it returns a ``BarsReport`` listing every broken rule
per row (``violations``) and the sessions that have fewer bars than the calendar expects
(``gaps``). Gaps are facts about the data, not errors: they are reported, never filled, and do
not make a report fail. All checks are vectorised; a million rows validate in about a second.

Rule codes (the contract; the wording of ``detail`` may change):

- MISSING_COLUMN: a required column is absent (no other rule runs).
- NAIVE_TIMESTAMP: ``ts`` or ``ts_close`` has no timezone.
- INVALID_TIMESTAMP: a ``ts`` or ``ts_close`` value is missing or not a timestamp.
- TIMEFRAME_MISMATCH: the ``timeframe`` column differs from the timeframe validated.
- NON_FINITE_PRICE / NON_POSITIVE_PRICE: a price is NaN or infinite / zero or negative
  (``adj_close`` may be NaN: the source has none).
- HIGH_BELOW_LOW, HIGH_BELOW_OPEN_OR_CLOSE, LOW_ABOVE_OPEN_OR_CLOSE: inconsistent OHLC.
- NON_FINITE_VOLUME / NEGATIVE_VOLUME.
- DUPLICATE_TIMESTAMP: a second bar with the same symbol and ``ts`` (the later row is named).
- OUT_OF_ORDER_TIMESTAMP: a bar earlier than the previous row of the same symbol.
- CLOSE_NOT_AFTER_OPEN: ``ts_close`` is not after ``ts``.
- OUTSIDE_TRADING_CALENDAR: the bar does not lie within a session of the calendar (a weekly
  bar must start and end inside sessions).
- SESSION_MISMATCH: the ``session`` column is not the calendar's session of the bar.
- BAR_SPAN_MISMATCH: a daily bar does not run from its session's open to its close, or an
  intraday bar is not one timeframe long (only a bar cut short by the session close may be
  shorter).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from buddy.data.calendars import TradingCalendar, to_session_index
from buddy.errors import BuddyError
from buddy.timeframes import Timeframe

__all__ = [
    "GAPS_COLUMNS",
    "REQUIRED_COLUMNS",
    "RULES",
    "VIOLATIONS_COLUMNS",
    "BarValidationError",
    "BarsReport",
    "validate_bars",
]

RULES: dict[str, str] = {
    "MISSING_COLUMN": "a required column is missing",
    "NAIVE_TIMESTAMP": "timestamps have no timezone",
    "INVALID_TIMESTAMP": "timestamp missing or unreadable",
    "TIMEFRAME_MISMATCH": "timeframe column differs from the timeframe validated",
    "NON_FINITE_PRICE": "price is NaN or infinite",
    "NON_POSITIVE_PRICE": "price is zero or negative",
    "HIGH_BELOW_LOW": "high is below low",
    "HIGH_BELOW_OPEN_OR_CLOSE": "high is below open or close",
    "LOW_ABOVE_OPEN_OR_CLOSE": "low is above open or close",
    "NON_FINITE_VOLUME": "volume is NaN or infinite",
    "NEGATIVE_VOLUME": "volume is negative",
    "DUPLICATE_TIMESTAMP": "same symbol and ts as an earlier row",
    "OUT_OF_ORDER_TIMESTAMP": "ts earlier than the previous row of the symbol",
    "CLOSE_NOT_AFTER_OPEN": "ts_close is not after ts",
    "OUTSIDE_TRADING_CALENDAR": "bar not within a session of the trading calendar",
    "SESSION_MISMATCH": "session column differs from the calendar's session",
    "BAR_SPAN_MISMATCH": "bar does not span its timeframe or session",
}

REQUIRED_COLUMNS: tuple[str, ...] = (
    "symbol", "timeframe", "ts", "ts_close", "session", "open", "high", "low", "close", "volume",
)
VIOLATIONS_COLUMNS: tuple[str, ...] = ("row", "ts", "rule", "column", "value", "detail")
GAPS_COLUMNS: tuple[str, ...] = ("symbol", "timeframe", "session", "expected_bars", "found_bars")

_PRICE_COLUMNS = ("open", "high", "low", "close")
_LISTED_ROWS = 20
_NAT_I8 = np.iinfo(np.int64).min
_ONE_US = pd.Timedelta(microseconds=1)


class BarValidationError(BuddyError, ValueError):
    """Bars broke validation rules; ``report`` lists each row and rule."""

    def __init__(self, report: BarsReport) -> None:
        self.report = report
        super().__init__(str(report))


@dataclass(frozen=True, slots=True, kw_only=True)
class BarsReport:
    """What validation found: per-row rule violations, and sessions missing bars."""

    timeframe: str
    calendar: str
    n_rows: int
    violations: pd.DataFrame
    gaps: pd.DataFrame
    #: What the bars were checked against when not the calendar (e.g. the reasonability rules).
    checked_against: str = ""

    @property
    def ok(self) -> bool:
        """Return True when no rule is broken (gaps do not count)."""
        return self.violations.empty

    @property
    def rule_counts(self) -> dict[str, int]:
        """Return the number of violations per rule code."""
        return {str(k): int(v) for k, v in self.violations["rule"].value_counts().items()}

    def __str__(self) -> str:
        head = (f"{self.n_rows} bars ({self.timeframe}) against {self.checked_against}"
                if self.checked_against else
                f"{self.n_rows} bars ({self.timeframe}, calendar {self.calendar})")
        lines: list[str] = []
        if self.ok:
            lines.append(f"{head}: valid")
        else:
            counts = ", ".join(f"{rule} x{n}" for rule, n in self.rule_counts.items())
            lines.append(f"{head}: {len(self.violations)} violation(s): {counts}")
            for item in self.violations.head(_LISTED_ROWS).itertuples(index=False):
                where = "all rows" if pd.isna(item.row) else f"row {int(item.row)}"
                when = "" if pd.isna(item.ts) else f" ts={item.ts.isoformat()}"
                lines.append(f"  {where}{when}: {item.rule} [{item.column}={item.value}]"
                             f" {item.detail}")
            hidden = len(self.violations) - _LISTED_ROWS
            if hidden > 0:
                lines.append(f"  ... and {hidden} more violation(s)")
        if not self.gaps.empty:
            missing = int((self.gaps["found_bars"] == 0).sum())
            lines.append(f"gaps (reported, not filled): {len(self.gaps)} session(s) short of bars,"
                         f" {missing} with none")
        return "\n".join(lines)

    def raise_if_invalid(self) -> None:
        """Raise BarValidationError naming the rows and rules if any rule is broken."""
        if not self.ok:
            raise BarValidationError(self)


def violations_frame(rows: np.ndarray, ts: pd.DatetimeIndex | None, rule: str, column: str,
                value: pd.Series | str, detail: pd.Series | str) -> pd.DataFrame:
    count = len(rows)
    if ts is None:
        stamps = pd.Series(pd.NaT, index=range(count), dtype="datetime64[us, UTC]")
    else:
        stamps = pd.Series(ts[rows] if count else ts[:0], index=range(count))
    def as_text(item: pd.Series | str) -> pd.Series:
        if isinstance(item, str):
            return pd.Series([item] * count, index=range(count), dtype="str")
        return pd.Series(np.asarray(item.astype("str")), index=range(count), dtype="str")
    return pd.DataFrame({
        "row": pd.array(rows, dtype="Int64"),
        "ts": stamps,
        "rule": rule,
        "column": column,
        "value": as_text(value),
        "detail": as_text(detail),
    })


def _column_violation(rule: str, column: str, value: str, detail: str) -> pd.DataFrame:
    frame = violations_frame(np.array([0]), None, rule, column, value, detail)
    frame["row"] = pd.array([pd.NA], dtype="Int64")
    return frame


def _empty_gaps() -> pd.DataFrame:
    return pd.DataFrame({
        "symbol": pd.Series(dtype="str"),
        "timeframe": pd.Series(dtype="str"),
        "session": pd.Series(dtype="datetime64[s]"),
        "expected_bars": pd.Series(dtype="int64"),
        "found_bars": pd.Series(dtype="int64"),
    })


def _finalise(parts: list[pd.DataFrame]) -> pd.DataFrame:
    parts = [p for p in parts if not p.empty]
    if not parts:
        return violations_frame(np.array([], dtype=np.int64), None, "", "", "", "")
    frame = pd.concat(parts, ignore_index=True)
    order = np.lexsort((frame["rule"].to_numpy(dtype=object).astype(str),
                        frame["row"].fillna(-1).to_numpy(dtype=np.int64)))
    return frame.iloc[order].reset_index(drop=True)


def _timestamps(bars: pd.DataFrame, column: str,
                parts: list[pd.DataFrame]) -> pd.DatetimeIndex | None:
    raw = bars[column]
    try:
        index = pd.DatetimeIndex(raw)
    except (TypeError, ValueError):
        try:
            index = pd.DatetimeIndex(pd.to_datetime(raw, errors="coerce", utc=False))
        except (TypeError, ValueError):
            parts.append(_column_violation("INVALID_TIMESTAMP", column, str(raw.dtype),
                                           f"column {column!r} does not hold timestamps"))
            return None
    if index.tz is None:
        parts.append(_column_violation(
            "NAIVE_TIMESTAMP", column, str(raw.dtype),
            f"column {column!r} has no timezone; timestamps must be timezone-aware UTC"))
        return None
    index = index.tz_convert("UTC").as_unit("us")
    missing = np.flatnonzero(np.asarray(index.isna()))
    if len(missing):
        parts.append(violations_frame(missing, None, "INVALID_TIMESTAMP", column,
                                 raw.iloc[missing].astype("str"), "timestamp missing"))
    return index


def _price_rules(bars: pd.DataFrame, ts: pd.DatetimeIndex | None,
                 parts: list[pd.DataFrame]) -> None:
    prices = {c: pd.to_numeric(bars[c], errors="coerce").to_numpy(dtype=np.float64)
              for c in _PRICE_COLUMNS}
    checked = list(_PRICE_COLUMNS)
    if "adj_close" in bars.columns:
        prices["adj_close"] = pd.to_numeric(bars["adj_close"], errors="coerce").to_numpy(
            dtype=np.float64)
        checked.append("adj_close")
    for column in checked:
        values = prices[column]
        raw = bars[column]
        non_finite = np.isinf(values) if column == "adj_close" else ~np.isfinite(values)
        rows = np.flatnonzero(non_finite)
        if len(rows):
            parts.append(violations_frame(rows, ts, "NON_FINITE_PRICE", column,
                                     raw.iloc[rows], f"{column} must be a finite number"))
        rows = np.flatnonzero(np.isfinite(values) & (values <= 0))
        if len(rows):
            parts.append(violations_frame(rows, ts, "NON_POSITIVE_PRICE", column,
                                     pd.Series(values[rows]), f"{column} must be above 0"))
    o, h, low, c = (prices[k] for k in _PRICE_COLUMNS)
    with np.errstate(invalid="ignore"):
        rows = np.flatnonzero(h < low)
        if len(rows):
            parts.append(violations_frame(
                rows, ts, "HIGH_BELOW_LOW", "high", pd.Series(h[rows]),
                "high " + pd.Series(h[rows]).astype("str") + " < low "
                + pd.Series(low[rows]).astype("str")))
        top = np.fmax(o, c)
        rows = np.flatnonzero(h < top)
        if len(rows):
            parts.append(violations_frame(
                rows, ts, "HIGH_BELOW_OPEN_OR_CLOSE", "high", pd.Series(h[rows]),
                "high " + pd.Series(h[rows]).astype("str") + " < max(open, close) "
                + pd.Series(top[rows]).astype("str")))
        bottom = np.fmin(o, c)
        rows = np.flatnonzero(low > bottom)
        if len(rows):
            parts.append(violations_frame(
                rows, ts, "LOW_ABOVE_OPEN_OR_CLOSE", "low", pd.Series(low[rows]),
                "low " + pd.Series(low[rows]).astype("str") + " > min(open, close) "
                + pd.Series(bottom[rows]).astype("str")))
    volume = pd.to_numeric(bars["volume"], errors="coerce").to_numpy(dtype=np.float64)
    rows = np.flatnonzero(~np.isfinite(volume))
    if len(rows):
        parts.append(violations_frame(rows, ts, "NON_FINITE_VOLUME", "volume",
                                 bars["volume"].iloc[rows], "volume must be a finite number"))
    rows = np.flatnonzero(volume < 0)
    if len(rows):
        parts.append(violations_frame(rows, ts, "NEGATIVE_VOLUME", "volume",
                                 pd.Series(volume[rows]), "volume must be 0 or more"))


def _order_rules(symbol_codes: np.ndarray, ts: pd.DatetimeIndex,
                 parts: list[pd.DataFrame]) -> None:
    stamps = ts.as_unit("ns").asi8
    valid = stamps != _NAT_I8
    order = np.lexsort((stamps, symbol_codes))
    sym_sorted, ts_sorted = symbol_codes[order], stamps[order]
    same = np.zeros(len(order), dtype=bool)
    same[1:] = ((sym_sorted[1:] == sym_sorted[:-1]) & (ts_sorted[1:] == ts_sorted[:-1])
                & valid[order][1:])
    if same.any():
        run_start = np.maximum.accumulate(np.where(same, 0, np.arange(len(order))))
        rows = order[same]
        first = order[run_start[same]]
        parts.append(violations_frame(
            rows, ts, "DUPLICATE_TIMESTAMP", "ts", pd.Series(ts[rows].astype("str")),
            "same symbol and ts as row " + pd.Series(first).astype("str")))
    by_symbol = np.argsort(symbol_codes, kind="stable")
    sym_in_order, ts_in_order = symbol_codes[by_symbol], stamps[by_symbol]
    ok_in_order = valid[by_symbol]
    back = np.zeros(len(by_symbol), dtype=bool)
    back[1:] = ((sym_in_order[1:] == sym_in_order[:-1]) & (ts_in_order[1:] < ts_in_order[:-1])
                & ok_in_order[1:] & ok_in_order[:-1])
    if back.any():
        rows = by_symbol[back]
        previous = by_symbol[np.flatnonzero(back) - 1]
        parts.append(violations_frame(
            rows, ts, "OUT_OF_ORDER_TIMESTAMP", "ts", pd.Series(ts[rows].astype("str")),
            "ts earlier than row " + pd.Series(previous).astype("str") + " ("
            + pd.Series(ts[previous].astype("str")) + ")"))


def _calendar_rules(bars: pd.DataFrame, ts: pd.DatetimeIndex, ts_close: pd.DatetimeIndex,
                    timeframe: Timeframe, calendar: TradingCalendar,
                    parts: list[pd.DataFrame]) -> pd.DatetimeIndex:
    """Check calendar rules; return each row's calendar session (NaT where outside)."""
    open_i8, close_i8 = ts.as_unit("ns").asi8, ts_close.as_unit("ns").asi8
    both = (open_i8 != _NAT_I8) & (close_i8 != _NAT_I8)
    rows = np.flatnonzero(both & (close_i8 <= open_i8))
    if len(rows):
        parts.append(violations_frame(
            rows, ts, "CLOSE_NOT_AFTER_OPEN", "ts_close",
            pd.Series(ts_close[rows].astype("str")), "ts_close must be after ts"))
    first = pd.DatetimeIndex(calendar.session_of(ts))
    last = pd.DatetimeIndex(calendar.session_of(ts_close - _ONE_US))
    first_schedule = calendar.session_open_close(first)
    last_schedule = calendar.session_open_close(last)
    session_open = pd.DatetimeIndex(first_schedule["open"]).as_unit("ns").asi8
    session_close = pd.DatetimeIndex(last_schedule["close"]).as_unit("ns").asi8
    first_ok = ~np.asarray(first.isna())
    last_ok = ~np.asarray(last.isna())
    if timeframe is Timeframe.W1:
        inside = first_ok & last_ok & (close_i8 > open_i8)
        own = last
    else:
        inside = first_ok & last_ok & (first == last) & (close_i8 > open_i8)
        own = first
    rows = np.flatnonzero(both & ~inside)
    if len(rows):
        parts.append(violations_frame(
            rows, ts, "OUTSIDE_TRADING_CALENDAR", "ts",
            pd.Series(ts[rows].astype("str")),
            "bar " + pd.Series(ts[rows].astype("str")) + " to "
            + pd.Series(ts_close[rows].astype("str"))
            + f" is not within a session of {calendar.name}"))
    session_column = to_session_index(pd.to_datetime(bars["session"], errors="coerce"))
    rows = np.flatnonzero(inside & (session_column != own))
    if len(rows):
        parts.append(violations_frame(
            rows, ts, "SESSION_MISMATCH", "session",
            pd.Series(session_column[rows].astype("str")),
            f"{calendar.name} session is " + pd.Series(own[rows].astype("str"))))
    if timeframe is Timeframe.W1:
        return own.where(inside)
    if timeframe is Timeframe.D1:
        span_ok = (open_i8 == session_open) & (close_i8 == session_close)
        expected = "from the session open to its close"
    else:
        nominal = timeframe.nominal.value
        length = close_i8 - open_i8
        span_ok = (length == nominal) | ((length < nominal) & (close_i8 == session_close))
        expected = f"{timeframe.value} long (shorter only when cut by the session close)"
    rows = np.flatnonzero(inside & ~span_ok)
    if len(rows):
        parts.append(violations_frame(
            rows, ts, "BAR_SPAN_MISMATCH", "ts_close",
            pd.Series(ts_close[rows].astype("str")),
            f"bar must run {expected}; session open "
            + pd.Series(pd.DatetimeIndex(first_schedule["open"])[rows].astype("str"))
            + ", close " + pd.Series(pd.DatetimeIndex(last_schedule["close"])[rows]
                                     .astype("str"))))
    return own.where(inside)


def _expected_bars(schedule: pd.DataFrame, timeframe: Timeframe) -> np.ndarray:
    if not timeframe.is_intraday:
        return np.ones(len(schedule), dtype=np.int64)
    length = (pd.DatetimeIndex(schedule["close"]).as_unit("ns").asi8
              - pd.DatetimeIndex(schedule["open"]).as_unit("ns").asi8)
    nominal = timeframe.nominal.value
    return -(-length // nominal)


def _iso_week(sessions: pd.DatetimeIndex | pd.Series) -> np.ndarray:
    iso = pd.DatetimeIndex(sessions).isocalendar()
    return iso["year"].to_numpy(dtype=np.int64) * 100 + iso["week"].to_numpy(dtype=np.int64)


def _gaps(symbol_codes: np.ndarray, symbol_names: np.ndarray, sessions: pd.DatetimeIndex,
          timeframe: Timeframe, calendar: TradingCalendar) -> pd.DataFrame:
    """Return the calendar periods between each symbol's first and last bar that lack bars."""
    known = ~np.asarray(sessions.isna())
    if not known.any():
        return _empty_gaps()
    found = pd.DataFrame({"symbol": symbol_codes[known], "session": sessions[known]})
    grid_sessions = calendar.sessions(sessions[known].min(), sessions[known].max())
    if timeframe is Timeframe.W1:
        week_end = pd.Series(grid_sessions, index=_iso_week(grid_sessions)).groupby(level=0).max()
        found["session"] = week_end.reindex(_iso_week(found["session"])).to_numpy()
        found = found.dropna(subset=["session"])
        grid_sessions = pd.DatetimeIndex(week_end.to_numpy())
        expected = np.ones(len(grid_sessions), dtype=np.int64)
    else:
        expected = _expected_bars(calendar.session_open_close(grid_sessions), timeframe)
    counts = found.groupby(["symbol", "session"], sort=True).size()
    bounds = found.groupby("symbol", sort=True)["session"].agg(["min", "max"])
    lo = grid_sessions.searchsorted(pd.DatetimeIndex(bounds["min"]), side="left")
    hi = grid_sessions.searchsorted(pd.DatetimeIndex(bounds["max"]), side="right")
    lengths = hi - lo
    symbol_of_cell = np.repeat(bounds.index.to_numpy(), lengths)
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    position = np.repeat(lo, lengths) + offsets
    grid = pd.MultiIndex.from_arrays([symbol_of_cell, grid_sessions[position]],
                                     names=["symbol", "session"])
    found_bars = counts.reindex(grid, fill_value=0).to_numpy(dtype=np.int64)
    short = found_bars < expected[position]
    if not short.any():
        return _empty_gaps()
    return pd.DataFrame({
        "symbol": pd.Series(symbol_names[symbol_of_cell[short]], dtype="str"),
        "timeframe": timeframe.value,
        "session": grid_sessions[position][short],
        "expected_bars": expected[position][short],
        "found_bars": found_bars[short],
    }).astype({"timeframe": "str"})


def validate_bars(bars: pd.DataFrame, calendar: TradingCalendar,
                  timeframe: Timeframe | str) -> BarsReport:
    """Check ``bars`` (canonical layout) against every rule; return the report, never raise.

    Rows are named by 0-based position in ``bars``. Gaps are calendar sessions between a
    symbol's first and last bar with fewer bars than the session holds (for weekly bars:
    ISO weeks of sessions with no bar, named by the week's last session).
    """
    frame = Timeframe.parse(timeframe)
    parts: list[pd.DataFrame] = []
    missing = [c for c in REQUIRED_COLUMNS if c not in bars.columns]
    if missing:
        for column in missing:
            parts.append(_column_violation("MISSING_COLUMN", column, "",
                                           f"required column {column!r} is missing"))
        return BarsReport(timeframe=frame.value, calendar=calendar.name, n_rows=len(bars),
                          violations=_finalise(parts), gaps=_empty_gaps())
    ts = _timestamps(bars, "ts", parts)
    ts_close = _timestamps(bars, "ts_close", parts)
    rows = np.flatnonzero((bars["timeframe"] != frame.value).to_numpy(dtype=bool))
    if len(rows):
        parts.append(violations_frame(rows, ts, "TIMEFRAME_MISMATCH", "timeframe",
                                 bars["timeframe"].iloc[rows], f"expected {frame.value!r}"))
    _price_rules(bars, ts, parts)
    gaps = _empty_gaps()
    if ts is not None:
        symbol_codes, symbol_names = pd.factorize(bars["symbol"])
        _order_rules(symbol_codes, ts, parts)
        if ts_close is not None:
            sessions = _calendar_rules(bars, ts, ts_close, frame, calendar, parts)
            gaps = _gaps(symbol_codes, np.asarray(symbol_names, dtype=object), sessions,
                         frame, calendar)
    return BarsReport(timeframe=frame.value, calendar=calendar.name, n_rows=len(bars),
                      violations=_finalise(parts), gaps=gaps)
