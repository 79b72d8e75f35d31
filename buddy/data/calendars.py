"""Trading calendars: which sessions exist, when each opens and closes, and where a bar belongs.

Two kinds of calendar share one interface, ``TradingCalendar``:

- Exchange calendars from exchange-calendars (``'XNYS'``, ``'XNAS'``, ``'XLON'``, ...), built
  from 1990-01-01 (the package's default is only the last 20 years) up to its default end,
  about a year ahead. Early closes come from the exchange schedule; lunch breaks are ignored (a
  bar spanning one still lies within its session).
- ``'FX24x5'``: spot FX. Sessions are Monday to Friday; session ``d`` runs from 17:00
  America/New_York on the calendar day before ``d`` to 17:00 New York on ``d``, so Monday's
  session opens on Sunday evening and the market is shut from Friday 17:00 to Sunday 17:00 New
  York. The roll follows New York daylight saving: 22:00 UTC in winter, 21:00 UTC in summer.
  The EURUSD 1-hour file shipped with gym-anytrading (2017) shows exactly this: the weekly open
  is Sunday 22:00 UTC until 2017-03-05 and from 2017-11-05, 21:00 UTC from 2017-03-12 to
  2017-10-29 (the US change dates, not the European ones), and Friday's last bar ends at the
  same hour. Holidays are not modelled: a thin day such as Christmas is a session with missing
  bars, which validation reports as a gap.

Session dates are naive ``datetime64[s]`` at midnight; opens, closes and bar timestamps are
timezone-aware UTC (``datetime64[us, UTC]``), as in ``buddy.data.frames``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

__all__ = [
    "CALENDAR_START",
    "FX_CALENDAR_NAME",
    "ExchangeCalendar",
    "FxCalendar",
    "TradingCalendar",
    "get_calendar",
    "holidays_and_early_closes",
    "to_session_index",
    "to_utc_index",
]

CALENDAR_START = pd.Timestamp("1990-01-01")
FX_CALENDAR_NAME = "FX24x5"
FX_ROLL_TIMEZONE = "America/New_York"
FX_ROLL_HOUR = 17

_NAT_I8 = np.iinfo(np.int64).min


@runtime_checkable
class TradingCalendar(Protocol):
    """The sessions of a market and the UTC hours each one trades."""

    @property
    def name(self) -> str:
        """Return the calendar's name, e.g. 'XNYS' or 'FX24x5'."""
        ...

    @property
    def tz(self) -> str:
        """Return the IANA zone the calendar's sessions are defined in."""
        ...

    def sessions(self, start: date | str | pd.Timestamp,
                 end: date | str | pd.Timestamp) -> pd.DatetimeIndex:
        """Return the session dates from ``start`` to ``end`` inclusive."""
        ...

    def session_open_close(self, sessions: Iterable[Any]) -> pd.DataFrame:
        """Return a frame indexed by session with UTC ``open`` and ``close`` (NaT if no session)."""
        ...

    def session_of(self, ts: Any) -> pd.Series:
        """Return the session each UTC timestamp trades in (NaT when the market is shut)."""
        ...

    def contains(self, ts_open: Any, ts_close: Any) -> np.ndarray:
        """Return True where the bar [ts_open, ts_close] lies inside one session."""
        ...


def to_utc_index(values: Any) -> pd.DatetimeIndex:
    """Return ``values`` as a UTC DatetimeIndex in microseconds; raise ValueError if naive."""
    index = pd.DatetimeIndex(values)
    if index.tz is None:
        raise ValueError("timestamps must be timezone-aware (got naive timestamps)")
    return index.tz_convert("UTC").as_unit("us")


def to_session_index(values: Any) -> pd.DatetimeIndex:
    """Return ``values`` as naive session dates (``datetime64[s]`` at midnight)."""
    if not hasattr(values, "__len__"):
        values = list(values)
    index = pd.DatetimeIndex(values)
    if index.tz is not None:
        index = index.tz_localize(None)
    return index.normalize().as_unit("s")


def _i8(index: pd.DatetimeIndex) -> np.ndarray:
    return index.as_unit("ns").asi8


def _series(values: Any, index: pd.DatetimeIndex, name: str) -> pd.Series:
    series_index = values.index if isinstance(values, pd.Series) else None
    return pd.Series(index, index=series_index, name=name)


class _CalendarBase:
    """Behaviour shared by both calendar kinds, built on ``session_of`` and the schedule."""

    def session_of(self, ts: Any) -> pd.Series:
        raise NotImplementedError

    def session_open_close(self, sessions: Iterable[Any]) -> pd.DataFrame:
        raise NotImplementedError

    def contains(self, ts_open: Any, ts_close: Any) -> np.ndarray:
        """Return True where the bar [ts_open, ts_close] lies inside one session.

        The bar must start at or after its session's open, end after it starts and end no later
        than that session's close (an early close counts).
        """
        opens = to_utc_index(ts_open)
        closes = to_utc_index(ts_close)
        sessions = pd.DatetimeIndex(self.session_of(opens))
        schedule = self.session_open_close(sessions)
        session_close = _i8(pd.DatetimeIndex(schedule["close"]))
        open_i8, close_i8 = _i8(opens), _i8(closes)
        return (
            ~np.asarray(sessions.isna())
            & (open_i8 != _NAT_I8)
            & (close_i8 != _NAT_I8)
            & (close_i8 > open_i8)
            & (close_i8 <= session_close)
        )


class ExchangeCalendar(_CalendarBase):
    """An exchange's sessions from exchange-calendars, from 1990-01-01 to its default end."""

    def __init__(self, name: str) -> None:
        import exchange_calendars as xcals

        try:
            with warnings.catch_warnings():
                # exchange-calendars 4.13 reads Series.values, which pandas 3.1 deprecates.
                warnings.filterwarnings("ignore", message="Series.values returning an ndarray",
                                        category=pd.errors.Pandas4Warning)
                calendar = xcals.get_calendar(name, start=CALENDAR_START)
        except xcals.errors.InvalidCalendarName:
            raise ValueError(
                f"trading_calendar: unknown calendar {name!r}; use {FX_CALENDAR_NAME!r} or an "
                "exchange-calendars name such as 'XNYS', 'XNAS', 'XLON'"
            ) from None
        schedule = calendar.schedule
        self._name = str(name)
        self._tz = str(calendar.tz)
        self._exchange = calendar
        self._sessions = to_session_index(schedule.index)
        self._opens = to_utc_index(schedule["open"])
        self._closes = to_utc_index(schedule["close"])
        self._opens_i8 = _i8(self._opens)
        self._closes_i8 = _i8(self._closes)
        self._early_closes = to_session_index(calendar.early_closes)
        self._weekmask = str(calendar.weekmask)

    def __repr__(self) -> str:
        return f"ExchangeCalendar({self._name!r})"

    @property
    def exchange(self) -> Any:
        """The exchange-calendars calendar behind this one (its ad hoc holidays, regular open
        and close times: building another costs a second pass over the holiday rules)."""
        return self._exchange

    @property
    def name(self) -> str:
        """Return the calendar's name, e.g. 'XNYS'."""
        return self._name

    @property
    def tz(self) -> str:
        """Return the exchange's IANA zone, e.g. 'America/New_York'."""
        return self._tz

    @property
    def first_session(self) -> pd.Timestamp:
        """Return the first session the calendar knows."""
        return self._sessions[0]

    @property
    def last_session(self) -> pd.Timestamp:
        """Return the last session the calendar knows (about a year ahead of its build)."""
        return self._sessions[-1]

    def sessions(self, start: date | str | pd.Timestamp,
                 end: date | str | pd.Timestamp) -> pd.DatetimeIndex:
        """Return the sessions from ``start`` to ``end`` inclusive, within the calendar's range."""
        lo = self._sessions.searchsorted(pd.Timestamp(start).normalize(), side="left")
        hi = self._sessions.searchsorted(pd.Timestamp(end).normalize(), side="right")
        return self._sessions[lo:hi].rename("session")

    def session_open_close(self, sessions: Iterable[Any]) -> pd.DataFrame:
        """Return UTC ``open`` and ``close`` per session (NaT for dates that are no session)."""
        index = to_session_index(sessions)
        pos = self._sessions.get_indexer(index)
        known = pos >= 0
        take = np.where(known, pos, 0)
        opens = self._opens[take].where(known)
        closes = self._closes[take].where(known)
        return pd.DataFrame({"open": opens, "close": closes}, index=index.rename("session"))

    def session_of(self, ts: Any) -> pd.Series:
        """Return the session each UTC timestamp trades in (NaT outside trading hours).

        A timestamp equal to a session's close is outside it: a bar that opens at the close
        would trade in no session.
        """
        stamps = to_utc_index(ts)
        values = _i8(stamps)
        pos = np.searchsorted(self._opens_i8, values, side="right") - 1
        take = np.clip(pos, 0, len(self._sessions) - 1)
        inside = (pos >= 0) & (values != _NAT_I8) & (values < self._closes_i8[take])
        result = self._sessions[take].where(inside)
        return _series(ts, result, "session")

    def holidays_and_early_closes(self, start: date | str | pd.Timestamp,
                                  end: date | str | pd.Timestamp) -> pd.DataFrame:
        """Return weekday closures and early closes between ``start`` and ``end``."""
        lo = max(pd.Timestamp(start).normalize(), self._sessions[0])
        hi = min(pd.Timestamp(end).normalize(), self._sessions[-1])
        weekmask = " ".join(day for day, on in zip(
            ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"), self._weekmask, strict=True)
            if on == "1")
        weekdays = to_session_index(pd.bdate_range(lo, hi, freq="C", weekmask=weekmask))
        holidays = weekdays.difference(self._sessions)
        early = self._early_closes[(self._early_closes >= lo) & (self._early_closes <= hi)]
        early_close = self.session_open_close(early)["close"]
        frame = pd.concat([
            pd.DataFrame({"date": holidays, "kind": "holiday",
                          "close_utc": pd.Series(pd.NaT, index=range(len(holidays)),
                                                 dtype="datetime64[us, UTC]")}),
            pd.DataFrame({"date": early, "kind": "early_close",
                          "close_utc": early_close.to_numpy()}),
        ], ignore_index=True)
        frame["kind"] = frame["kind"].astype("str")
        return frame.sort_values("date", kind="stable").reset_index(drop=True)


class FxCalendar(_CalendarBase):
    """Spot FX: five 24-hour sessions a week, rolling at 17:00 New York time."""

    def __repr__(self) -> str:
        return "FxCalendar('FX24x5')"

    @property
    def name(self) -> str:
        """Return 'FX24x5'."""
        return FX_CALENDAR_NAME

    @property
    def tz(self) -> str:
        """Return 'America/New_York', the zone of the 17:00 roll."""
        return FX_ROLL_TIMEZONE

    def sessions(self, start: date | str | pd.Timestamp,
                 end: date | str | pd.Timestamp) -> pd.DatetimeIndex:
        """Return the weekdays from ``start`` to ``end`` inclusive."""
        days = pd.bdate_range(pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize())
        return to_session_index(days).rename("session")

    def session_open_close(self, sessions: Iterable[Any]) -> pd.DataFrame:
        """Return each session's UTC open (17:00 New York the day before) and close (17:00)."""
        index = to_session_index(sessions)
        weekday = np.asarray(index.day_of_week)
        valid = ~np.asarray(index.isna()) & (weekday < 5)
        roll = pd.Timedelta(hours=FX_ROLL_HOUR)
        closes = (index + roll).tz_localize(FX_ROLL_TIMEZONE).tz_convert("UTC").as_unit("us")
        opens = (index - pd.Timedelta(days=1) + roll).tz_localize(FX_ROLL_TIMEZONE)
        opens = opens.tz_convert("UTC").as_unit("us")
        return pd.DataFrame({"open": opens.where(valid), "close": closes.where(valid)},
                            index=index.rename("session"))

    def session_of(self, ts: Any) -> pd.Series:
        """Return the FX session of each UTC timestamp (NaT from Friday to Sunday 17:00 NY)."""
        stamps = to_utc_index(ts)
        local = stamps.tz_convert(FX_ROLL_TIMEZONE).tz_localize(None)
        session = (local - pd.Timedelta(hours=FX_ROLL_HOUR)).floor("D") + pd.Timedelta(days=1)
        session = session.as_unit("s")
        result = session.where(np.asarray(session.day_of_week) < 5)
        return _series(ts, result, "session")


@cache
def _exchange_calendar(name: str) -> ExchangeCalendar:
    # built once per user and day, not once per process (buddy.data.calendar_cache)
    from buddy.data.calendar_cache import cached_calendar

    return cached_calendar(name, lambda: ExchangeCalendar(name), kind=ExchangeCalendar,
                           source=Path(__file__))


@cache
def _fx_calendar() -> FxCalendar:
    return FxCalendar()


def get_calendar(name: str) -> TradingCalendar:
    """Return the calendar called ``name`` ('FX24x5' or an exchange-calendars name), cached."""
    key = str(name).strip()
    if key.upper() == FX_CALENDAR_NAME.upper():
        return _fx_calendar()
    return _exchange_calendar(key)


def holidays_and_early_closes(name: str, start: date | str | pd.Timestamp,
                              end: date | str | pd.Timestamp) -> pd.DataFrame:
    """Return the calendar's weekday closures and early closes from ``start`` to ``end``.

    Columns: ``date`` (session date), ``kind`` ('holiday' or 'early_close') and ``close_utc``
    (the early close in UTC; NaT for a holiday). 'FX24x5' models no holidays, so its frame is
    empty.
    """
    calendar = get_calendar(name)
    if isinstance(calendar, ExchangeCalendar):
        return calendar.holidays_and_early_closes(start, end)
    return pd.DataFrame({
        "date": pd.Series(dtype="datetime64[s]"),
        "kind": pd.Series(dtype="str"),
        "close_utc": pd.Series(dtype="datetime64[us, UTC]"),
    })
