"""Read a user's bar file (CSV or Parquet) into the canonical bars frame, validated.

Column names are matched case-insensitively, ignoring spaces, underscores and dashes:

- time: one of ``date``, ``datetime``, ``time``, ``timestamp``, ``ts`` (or ``date`` plus
  ``time`` columns, joined). Timestamps are bar OPEN times, read as ISO 8601, or by
  ``time_format`` (strptime); other text is accepted only when its day/month order is
  unambiguous, because '02.01.2017' silently read month-first would be 1 February.
- prices: ``open``, ``high``, ``low``, ``close``, ``volume``; optional ``adj close``.

Timestamps that carry no timezone are read in the declared ``tz``; without one the file is
refused. Daily bars whose timestamps are plain dates (midnight, in their own zone when they
carry one) name the session itself and need no timezone: ``ts`` and ``ts_close`` become that
session's open and close from the calendar, so early closes are right. Daily bars stamped at
another time of day belong to the session trading at that instant (or, if none is, to the
date in the calendar's zone, which validation then flags). Intraday bars get
``ts_close = ts + timeframe``, cut at the session close.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from buddy.data.calendars import (
    TradingCalendar,
    get_calendar,
    to_session_index,
    to_utc_index,
)
from buddy.data.frames import BARS_COLUMNS
from buddy.data.reasonability import ReasonabilityConfig, check_reasonability
from buddy.data.splits import detect_splits
from buddy.data.validation import validate_bars
from buddy.errors import FieldError, FieldErrors
from buddy.timeframes import Timeframe
from buddy.validation import checked_symbol

__all__ = [
    "CSV_SUFFIXES",
    "PARQUET_SUFFIXES",
    "BarFileError",
    "daily_bars",
    "intraday_bars",
    "read_bars_file",
]

CSV_SUFFIXES: tuple[str, ...] = (".csv", ".csv.gz", ".txt")
PARQUET_SUFFIXES: tuple[str, ...] = (".parquet", ".pq")
_TIME_NAMES: tuple[str, ...] = ("timestamp", "datetime", "date", "time", "ts")
_VALUE_NAMES: tuple[str, ...] = ("open", "high", "low", "close", "volume")
_ADJ_CLOSE_NAME = "adjclose"
_SYMBOL_NAMES: tuple[str, ...] = ("symbol", "ticker")
#: How many offending rows an error lists before counting the rest.
_ROWS_SHOWN = 5


class BarFileError(FieldErrors):
    """A bar file or its import options broke a rule; nothing was written."""

    what = "bar import"


def _normalised(name: object) -> str:
    return re.sub(r"[\s_\-]+", "", str(name)).lower()


def _frame(symbol: str, timeframe: Timeframe, ts: pd.DatetimeIndex,
           ts_close: pd.DatetimeIndex, session: pd.DatetimeIndex,
           prices: pd.DataFrame) -> pd.DataFrame:
    count = len(ts)
    adj_close = (prices["adj_close"].to_numpy(dtype=np.float64) if "adj_close" in prices.columns
                 else np.full(count, np.nan))
    frame = pd.DataFrame({
        "symbol": pd.Series([symbol] * count, dtype="str"),
        "timeframe": pd.Series([timeframe.value] * count, dtype="str"),
        "ts": ts.as_unit("us"),
        "ts_close": ts_close.as_unit("us"),
        "session": session.as_unit("s"),
        "open": prices["open"].to_numpy(dtype=np.float64),
        "high": prices["high"].to_numpy(dtype=np.float64),
        "low": prices["low"].to_numpy(dtype=np.float64),
        "close": prices["close"].to_numpy(dtype=np.float64),
        "volume": prices["volume"].to_numpy(dtype=np.float64),
        "adj_close": adj_close,
    })
    return frame[list(BARS_COLUMNS)]


def daily_bars(symbol: str, sessions: Any, prices: pd.DataFrame,
               calendar: TradingCalendar) -> pd.DataFrame:
    """Return canonical daily bars: one per session date, spanning its open to its close (UTC).

    ``prices`` holds open, high, low, close, volume and optionally adj_close, row-aligned with
    ``sessions``. A date that is no session of the calendar keeps that date as its session and
    gets midnight-to-midnight UTC times, so validation names it as OUTSIDE_TRADING_CALENDAR.
    """
    session = to_session_index(sessions)
    schedule = calendar.session_open_close(session)
    midnight = session.tz_localize("UTC").as_unit("us")
    opens = pd.DatetimeIndex(schedule["open"])
    closes = pd.DatetimeIndex(schedule["close"])
    ts = opens.where(~opens.isna(), midnight)
    ts_close = closes.where(~closes.isna(), midnight + pd.Timedelta(days=1))
    return _frame(symbol, Timeframe.D1, ts, ts_close, session, prices)


def intraday_bars(symbol: str, timeframe: Timeframe | str, ts: Any, prices: pd.DataFrame,
                  calendar: TradingCalendar) -> pd.DataFrame:
    """Return canonical intraday bars from UTC bar-open times.

    ``ts_close`` is ``ts`` plus the timeframe, cut at the session's close; the session comes
    from the calendar. A bar outside every session keeps the full length and the date of its
    UTC open as session, so validation names it as OUTSIDE_TRADING_CALENDAR.
    """
    frame = Timeframe.parse(timeframe)
    if not frame.is_intraday:
        raise ValueError(f"timeframe: must be intraday for intraday_bars (got {frame.value!r})")
    opens = to_utc_index(ts)
    session = pd.DatetimeIndex(calendar.session_of(opens))
    session_close = pd.DatetimeIndex(calendar.session_open_close(session)["close"])
    full = opens + frame.nominal
    ts_close = full.where(session_close.isna() | (full <= session_close), session_close)
    session = session.where(~session.isna(), to_session_index(opens))
    return _frame(symbol, frame, opens, pd.DatetimeIndex(ts_close), session, prices)


def _read_table(path: Path) -> pd.DataFrame:
    name = path.name.lower()
    try:
        if name.endswith(PARQUET_SUFFIXES):
            return pd.read_parquet(path)
        if name.endswith(CSV_SUFFIXES):
            return pd.read_csv(path)
    except FileNotFoundError:
        raise ValueError(f"path: file not found ({str(path)!r})") from None
    except Exception as exc:
        raise ValueError(f"path: could not read {str(path)!r} as "
                         f"{'Parquet' if name.endswith(PARQUET_SUFFIXES) else 'CSV'}: "
                         f"{type(exc).__name__}: {exc}") from exc
    raise ValueError(f"path: unknown file extension of {path.name!r}; use one of "
                     f"{', '.join(CSV_SUFFIXES + PARQUET_SUFFIXES)}")


def _columns(table: pd.DataFrame) -> dict[str, str]:
    """Return canonical name -> the file's column name."""
    found: dict[str, str] = {}
    for column in table.columns:
        key = _normalised(column)
        if key in found:
            raise ValueError(f"columns: {found[key]!r} and {column!r} are the same column "
                             "once case, spaces and underscores are ignored")
        found[key] = str(column)
    missing = [v for v in _VALUE_NAMES if v not in found]
    if not any(t in found for t in _TIME_NAMES):
        missing.insert(0, "date/datetime/time/timestamp")
    if missing:
        raise ValueError(f"columns: missing required column(s) {', '.join(missing)} "
                         f"(got {', '.join(map(str, table.columns))})")
    return found


def _time_values(table: pd.DataFrame, columns: dict[str, str]) -> tuple[pd.Series, str]:
    if "date" in columns and "time" in columns:
        label = f"{columns['date']}+{columns['time']}"
        joined = (table[columns["date"]].astype("str") + " "
                  + table[columns["time"]].astype("str"))
        return joined, label
    present = [t for t in _TIME_NAMES if t in columns]
    if len(present) > 1:
        names = ", ".join(repr(columns[t]) for t in present)
        raise ValueError(f"columns: more than one time column ({names}); keep one")
    return table[columns[present[0]]], columns[present[0]]


def _unreadable(values: pd.Series, **how: Any) -> str:
    """Return where the first value that does not parse is ("row 14 (got '...')"), or ''."""
    try:
        parsed = pd.to_datetime(values, errors="coerce", **how)
    except (TypeError, ValueError):
        return ""
    rows = np.flatnonzero(np.asarray(pd.isna(parsed)) & np.asarray(values.notna()))
    if not len(rows):
        return ""
    more = f" and {len(rows) - 1} more row(s)" if len(rows) > 1 else ""
    return f"row {int(rows[0])} (got {values.iloc[rows[0]]!r}){more}"


def _parse_times(values: pd.Series, label: str, time_format: str | None) -> pd.DatetimeIndex:
    if isinstance(values.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(values):
        return pd.DatetimeIndex(values)
    if time_format is not None:
        try:
            return pd.DatetimeIndex(pd.to_datetime(values, format=time_format))
        except (TypeError, ValueError) as exc:
            where = _unreadable(values, format=time_format)
            raise ValueError(f"column {label!r}: {where or 'a value'} does not match "
                             f"time_format {time_format!r}"
                             + ("" if where else f" ({exc})")) from exc
    try:
        return pd.DatetimeIndex(pd.to_datetime(values, format="ISO8601"))
    except (TypeError, ValueError) as exc:
        if "timezone" in str(exc).lower():
            raise ValueError(f"column {label!r}: values carry different timezones "
                             f"(got {values.iloc[0]!r}, ...); use one offset or UTC") from exc
    try:
        month_first = pd.DatetimeIndex(pd.to_datetime(values, format="mixed"))
        day_first = pd.DatetimeIndex(pd.to_datetime(values, format="mixed", dayfirst=True))
    except (TypeError, ValueError) as exc:
        where = _unreadable(values, format="mixed") or f"row 0 (got {values.iloc[0]!r})"
        raise ValueError(f"column {label!r}: not a timestamp in {where}; pass "
                         "time_format=, e.g. '%Y-%m-%d %H:%M:%S'") from exc
    differ = np.flatnonzero(np.asarray(month_first != day_first))
    if len(differ):
        example = values.iloc[differ[0]]
        raise ValueError(
            f"column {label!r}: day/month order is ambiguous (got {example!r}, which reads as "
            f"{month_first[differ[0]].date()} or {day_first[differ[0]].date()}); pass "
            "time_format=, e.g. '%d.%m.%Y %H:%M:%S.%f' or '%m/%d/%Y'")
    return month_first


def _localised(stamps: pd.DatetimeIndex, tz: str | None, label: str,
               values: pd.Series) -> pd.DatetimeIndex:
    if stamps.tz is not None:
        return stamps
    if tz is None:
        raise ValueError(
            f"column {label!r}: timestamps have no timezone (got {values.iloc[0]!r}); "
            "pass tz=, e.g. tz='UTC' or tz='America/New_York'")
    try:
        return stamps.tz_localize(tz, ambiguous="raise", nonexistent="raise")
    except Exception as exc:
        raise ValueError(f"tz: cannot read column {label!r} in {tz!r}: {exc}") from exc


def _symbol_column_errors(table: pd.DataFrame, columns: dict[str, str],
                         symbol: str) -> list[FieldError]:
    errors: list[FieldError] = []
    for name in _SYMBOL_NAMES:
        if name not in columns:
            continue
        given = table[columns[name]]
        text = given.astype("str").str.strip().str.upper()
        rows = np.flatnonzero(np.asarray((text != symbol) | given.isna()))
        for row in rows[:_ROWS_SHOWN]:
            errors.append(FieldError(
                f"column {columns[name]!r} row {int(row)}",
                f"differs from the symbol imported ({symbol!r})", given.iloc[row]))
        if len(rows) > _ROWS_SHOWN:
            errors.append(FieldError(f"column {columns[name]!r}",
                                     f"differs from {symbol!r} in {len(rows) - _ROWS_SHOWN} "
                                     "more row(s)", given.iloc[rows[_ROWS_SHOWN]]))
    return errors


def read_bars_file(path: str | Path, *, symbol: str, timeframe: Timeframe | str,
                   tz: str | None, calendar: TradingCalendar | str,
                   time_format: str | None = None,
                   corporate_actions: pd.DataFrame | None = None,
                   allow: Collection[date | datetime | str | pd.Timestamp] = (),
                   reasonability: ReasonabilityConfig | None = None,
                   history: Callable[[pd.Timestamp], pd.DataFrame] | None = None
                   ) -> pd.DataFrame:
    """Return the bars in a CSV or Parquet file as a validated canonical frame.

    ``symbol`` must be a valid symbol (``buddy.validation.SYMBOL_PATTERN``; stored upper
    case); a ``symbol`` or ``ticker`` column in the file must hold that symbol on every row.
    ``tz`` is the IANA zone of timestamps that carry none (ignored for values with an offset).
    ``time_format`` is a strptime format for the time column; without it ISO 8601 is read, and
    any other text only if the day/month order is unambiguous.
    The bars then pass the reasonability rules (``buddy.data.reasonability``) on the split
    basis of ``corporate_actions`` plus the splits found in the file's adjusted close;
    ``allow`` names the sessions of real gaps exempt from the relative rules. ``history``,
    given the file's first bar open (UTC), returns the series' stored bars closed by then:
    the last of them are the reference of the file's first bars (never judged themselves).
    Raises BarFileError or ValueError naming the field or column, the rule and the value for
    an invalid symbol, an unreadable or empty file, an unknown extension, missing columns or
    naive timestamps without ``tz``; raises BarValidationError naming the rows and rules when
    the bars break validation or reasonability. Rows are numbered from 0, the first data row
    under the header.
    """
    symbol = checked_symbol(symbol)
    frame = Timeframe.parse(timeframe)
    if frame is Timeframe.W1:
        raise ValueError("timeframe: '1w' bars cannot be imported; import '1d' bars and "
                         "resample them (got '1w')")
    trading_calendar = get_calendar(calendar) if isinstance(calendar, str) else calendar
    table = _read_table(Path(path))
    columns = _columns(table)
    if table.empty:
        raise BarFileError([FieldError("path", "holds no bars (only a header)",
                                       str(path))])
    symbol_errors = _symbol_column_errors(table, columns, symbol)
    if symbol_errors:
        raise BarFileError(symbol_errors)
    values, label = _time_values(table, columns)
    stamps = _parse_times(values, label, time_format)
    if stamps.isna().any():
        row = int(np.flatnonzero(np.asarray(stamps.isna()))[0])
        raise ValueError(f"column {label!r}: missing timestamp in row {row} "
                         f"(got {values.iloc[row]!r})")
    prices = pd.DataFrame({v: pd.to_numeric(table[columns[v]], errors="coerce")
                           for v in _VALUE_NAMES})
    if _ADJ_CLOSE_NAME in columns:
        prices["adj_close"] = pd.to_numeric(table[columns[_ADJ_CLOSE_NAME]], errors="coerce")
    wall_clock = stamps.tz_localize(None) if stamps.tz is not None else stamps
    if frame is Timeframe.D1 and bool((wall_clock == wall_clock.normalize()).all()):
        bars = daily_bars(symbol, wall_clock, prices, trading_calendar)
    else:
        stamps = _localised(stamps, tz, label, values)
        if frame is Timeframe.D1:
            session = pd.DatetimeIndex(trading_calendar.session_of(stamps))
            local = stamps.tz_convert(trading_calendar.tz)
            session = session.where(~session.isna(), to_session_index(local))
            bars = daily_bars(symbol, session, prices, trading_calendar)
        else:
            bars = intraday_bars(symbol, frame, stamps, prices, trading_calendar)
    validate_bars(bars, trading_calendar, frame).raise_if_invalid()
    actions = detect_splits(symbol, bars, source=f"detected in {Path(path).name}")
    if corporate_actions is not None and not corporate_actions.empty:
        known = corporate_actions[corporate_actions["symbol"] == symbol]
        # a split the store already lists is not applied twice
        found = actions[~actions["ex_date"].isin(known["ex_date"])]
        actions = pd.concat([known, found], ignore_index=True) if len(found) else known
    before = None
    if history is not None and len(bars):
        window = (reasonability or ReasonabilityConfig()).window
        before = history(pd.Timestamp(bars["ts"].min())).tail(window)
    check_reasonability(bars, corporate_actions=actions, allow=allow, config=reasonability,
                        history=before).raise_if_invalid()
    return bars
