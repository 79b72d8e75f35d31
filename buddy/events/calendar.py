"""Exchange holidays, early closes and sessions ahead, as they were known at as_of.

Regular holidays and early closes follow standing rules published years ahead, so they are
known at any as_of. Unscheduled closures (exchange-calendars' ad hoc holidays: 9/11,
Hurricane Sandy, national days of mourning) are not: each counts as known only from its
announcement, and until then the day stays a regular session in the sessions ahead. Where
the announcement time is not listed below it is taken as the regular open of the closed day
itself, the latest it can have been. Listed times err late: a closure hidden for a few hours
too long costs a note in a report; one shown too early would leak the future into a replay.

Spot FX ('FX24x5') has no holidays here (see ``buddy.data.calendars``).
"""

from __future__ import annotations

from datetime import date, datetime, time
from functools import cache

import pandas as pd

from buddy.data.calendars import ExchangeCalendar, get_calendar, holidays_and_early_closes
from buddy.events.model import UpcomingEvent

#: When unscheduled US exchange closures became public, each at or after the announcement.
US_UNSCHEDULED_CLOSURES_KNOWN: dict[date, str] = {
    date(1994, 4, 27): "1994-04-26T20:00-04:00",  # President Nixon's funeral
    date(2004, 6, 11): "2004-06-08T20:00-04:00",  # President Reagan's day of mourning
    date(2007, 1, 2): "2006-12-29T20:00-05:00",  # President Ford's day of mourning
    date(2012, 10, 29): "2012-10-28T21:00-04:00",  # Hurricane Sandy
    date(2012, 10, 30): "2012-10-29T20:00-04:00",  # Hurricane Sandy, second day
    date(2018, 12, 5): "2018-12-02T20:00-05:00",  # President G. H. W. Bush's day of mourning
    date(2025, 1, 9): "2025-01-02T20:00-05:00",  # President Carter's day of mourning
}
_KNOWN_BY_CALENDAR = {"XNYS": US_UNSCHEDULED_CLOSURES_KNOWN,
                      "XNAS": US_UNSCHEDULED_CLOSURES_KNOWN}


def exchange_schedule(calendar_name: str, as_of: datetime, window_end: datetime
                      ) -> tuple[tuple[UpcomingEvent, ...],
                                 tuple[tuple[datetime, datetime], ...], datetime | None]:
    """Return (holiday and early-close events, sessions ahead, calendar end) known at as_of.

    Events lie in [as_of, window_end]; sessions are (open, close) UTC of the sessions closing
    after as_of and opening by window_end; the calendar end is its last session close when
    that is before window_end, else None.
    """
    as_of_ts, end_ts = pd.Timestamp(as_of), pd.Timestamp(window_end)
    calendar = get_calendar(calendar_name)
    first_day = (as_of_ts - pd.Timedelta(days=1)).tz_convert(calendar.tz).date()
    last_day = end_ts.tz_convert(calendar.tz).date()
    table = calendar.session_open_close(calendar.sessions(first_day, last_day))
    schedule = pd.DataFrame({"open": table["open"].to_numpy(),
                             "close": table["close"].to_numpy()})
    events: list[UpcomingEvent] = []
    calendar_ends = None
    if isinstance(calendar, ExchangeCalendar):
        unscheduled = unscheduled_closures(calendar.name)
        rows = holidays_and_early_closes(calendar.name, first_day, last_day)
        hidden = []
        for day, kind, close_utc in rows.itertuples(index=False):
            day = pd.Timestamp(day).date()
            announced = None
            if kind == "holiday" and day in unscheduled:
                announced = closure_announced_at(calendar.name, day, unscheduled[day])
                if announced > as_of_ts:
                    hidden.append((day, unscheduled[day]))
                    continue
            events.append(calendar_event(calendar.name, calendar.tz, day, kind, close_utc,
                                         announced))
        if hidden:
            schedule = pd.concat([schedule, pd.DataFrame(
                [{"open": o, "close": c} for _, (o, c) in hidden])], ignore_index=True)
            schedule = schedule.sort_values("open", kind="stable", ignore_index=True)
        last_close = pd.Timestamp(calendar.session_open_close([calendar.last_session])
                                  ["close"].iloc[0])
        if last_close < end_ts:
            calendar_ends = last_close.to_pydatetime()
    keep = (schedule["close"] > as_of_ts) & (schedule["open"] <= end_ts)
    sessions = tuple((pd.Timestamp(o).to_pydatetime(), pd.Timestamp(c).to_pydatetime())
                     for o, c in schedule[keep].itertuples(index=False))
    events = [e for e in events if as_of_ts <= pd.Timestamp(e.ts) <= end_ts]
    return tuple(sorted(events, key=lambda e: e.ts)), sessions, calendar_ends


def calendar_event(name: str, tz: str, day: date, kind: str, close_utc: object,
                   announced: pd.Timestamp | None) -> UpcomingEvent:
    """Return the UpcomingEvent of a closure (``kind`` 'holiday') or an early close of
    calendar ``name`` (zone ``tz``) on ``day``; ``announced`` is when it became known (None:
    scheduled in advance)."""
    if kind == "holiday":
        ts = pd.Timestamp(datetime.combine(day, time()), tz=tz).tz_convert("UTC")
        why = "unscheduled closure" if announced is not None else "holiday"
        title = f"{name} closed on {day:%Y-%m-%d} ({why})"
    else:
        ts = pd.Timestamp(close_utc)
        local = ts.tz_convert(tz)
        title = f"{name} closes early on {day:%Y-%m-%d} at {local:%H:%M} {tz}"
    return UpcomingEvent(kind=kind, ts=ts.to_pydatetime(), title=title, symbol=None,
                         source=f"exchange-calendars {name}",
                         event_id=f"{name}:{kind}:{day:%Y-%m-%d}",
                         announced_at=None if announced is None else announced.to_pydatetime())


def closure_announced_at(name: str, day: date,
                         regular: tuple[pd.Timestamp, pd.Timestamp]) -> pd.Timestamp:
    """Return when an unscheduled closure of calendar ``name`` on ``day`` was announced (UTC):
    the recorded moment when known, else the session's regular open."""
    known = _KNOWN_BY_CALENDAR.get(name, {}).get(day)
    return pd.Timestamp(known).tz_convert("UTC") if known else regular[0]


@cache
def unscheduled_closures(name: str) -> dict[date, tuple[pd.Timestamp, pd.Timestamp]]:
    """Return each ad hoc closure of the calendar with the (open, close) UTC it would have had."""
    calendar = get_calendar(name)
    if not isinstance(calendar, ExchangeCalendar):
        return {}
    exchange = calendar.exchange  # the cached calendar's: ad hoc closures ignore its range
    tz = str(exchange.tz)
    out = {}
    for stamp in exchange.adhoc_holidays:
        day = pd.Timestamp(stamp).date()
        opens = _regular_time(exchange.open_times, day)
        closes = _regular_time(exchange.close_times, day)
        out[day] = (pd.Timestamp(datetime.combine(day, opens), tz=tz).tz_convert("UTC"),
                    pd.Timestamp(datetime.combine(day, closes), tz=tz).tz_convert("UTC"))
    return out


def _regular_time(times: tuple[tuple[object, time], ...], day: date) -> time:
    chosen = times[0][1]
    for start, value in times:
        if start is None or pd.Timestamp(start).date() <= day:
            chosen = value
    return chosen
