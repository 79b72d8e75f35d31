"""The ContextPack's ``schedule`` piece: what is known at as_of about the days ahead.

``ScheduleContext`` holds the upcoming events known at as_of (imported earnings and macro dates
announced by then, exchange holidays and early closes) and the trading sessions ahead, so an
evaluator can turn a holding horizon in bars into a point in time without a calendar of its
own. Knowing a scheduled future date is legitimate (earnings dates and holidays are announced
in advance); an event announced after as_of is never in the piece.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from buddy.timeframes import Timeframe

#: The kinds of event the events table and the schedule piece know.
EVENT_KINDS: tuple[str, ...] = ("earnings", "macro", "holiday", "early_close", "other")
#: Kinds that come from exchange calendars (and may also be imported).
CALENDAR_KINDS: frozenset[str] = frozenset({"holiday", "early_close"})


@dataclass(frozen=True, slots=True, kw_only=True)
class UpcomingEvent:
    """One scheduled event at or after as_of.

    ``ts`` is when it happens, UTC: the release time of earnings or macro data, the early
    close time of an early close, local midnight of the closed day for a holiday.
    ``announced_at`` is when it became known (None: scheduled by the exchange's standing
    rules, known years ahead).
    """

    kind: str  # one of EVENT_KINDS
    ts: datetime
    title: str
    symbol: str | None = None  # None: market-wide
    source: str = ""
    event_id: str = ""
    announced_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleContext:
    """Upcoming events and sessions of one instrument, as known at ``as_of``.

    ``events`` lie in [as_of, window_end], sorted by time. ``sessions`` are the (open, close)
    UTC times of the sessions closing after as_of, up to window_end, as scheduled at as_of
    (an unscheduled closure not yet announced is still a session). ``calendar_ends`` is the
    last session close the calendar knows when it ends before window_end, else None.
    ``earnings_dates_known`` counts the symbol's imported earnings dates announced by as_of,
    past or future: 0 means the earnings check cannot be made.
    """

    symbol: str
    calendar: str
    as_of: datetime
    window_end: datetime
    events: tuple[UpcomingEvent, ...] = ()
    sessions: tuple[tuple[datetime, datetime], ...] = ()
    calendar_ends: datetime | None = None
    earnings_dates_known: int = 0

    def horizon_end(self, timeframe: Timeframe | str, bars: int) -> tuple[datetime, bool]:
        """Return when ``bars`` bars of ``timeframe`` after as_of have closed, and whether the
        known sessions ran out first (the end is then the last known close).

        Daily bars count sessions (the session in progress at as_of is the first), weekly bars
        count calendar weeks of sessions, intraday bars count trading time inside sessions.
        """
        timeframe = Timeframe.parse(timeframe)
        bars = max(1, int(bars))
        if not self.sessions:
            return self.window_end, True
        closes = [close for _, close in self.sessions]
        if timeframe is Timeframe.D1:
            return (closes[bars - 1], False) if bars <= len(closes) else (closes[-1], True)
        if timeframe is Timeframe.W1:
            weeks: list[datetime] = []
            last_week = None
            for close in closes:
                week = pd.Timestamp(close).tz_convert("UTC").isocalendar()[:2]
                if week != last_week:
                    weeks.append(close)
                    last_week = week
                else:
                    weeks[-1] = close
            # the last week may be cut by the window: only a full count is trusted
            if bars < len(weeks):
                return weeks[bars - 1], False
            return closes[-1], True
        need = bars * timeframe.nominal
        as_of = pd.Timestamp(self.as_of)
        for open_, close in self.sessions:
            start = max(pd.Timestamp(open_), as_of)
            available = pd.Timestamp(close) - start
            if available >= need:
                return (start + need).to_pydatetime(), False
            need -= max(available, pd.Timedelta(0))
        return closes[-1], True

    def events_between(self, start: datetime, end: datetime,
                       kinds: Iterable[str] | None = None) -> tuple[UpcomingEvent, ...]:
        """Return the events with ``start <= ts <= end`` (of ``kinds`` when given)."""
        wanted = set(EVENT_KINDS if kinds is None else kinds)
        return tuple(e for e in self.events if e.kind in wanted and start <= e.ts <= end)

    def sessions_before(self, ts: datetime) -> int:
        """Return how many of the sessions ahead close at or before ``ts``."""
        return sum(1 for _, close in self.sessions if close <= ts)
