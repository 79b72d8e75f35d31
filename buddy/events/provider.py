"""The ContextPack's ``schedule`` piece: upcoming events and sessions known at as_of.

Imported events (earnings, macro, user-added closures) come from the events table, filtered
to ``announced_at <= as_of``; exchange holidays and early closes and the sessions ahead come
from exchange-calendars at read time (``buddy.events.calendar``). The window ahead is long
enough for the longest holding horizon the exit-plan checks allow on each timeframe.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from buddy.context.builder import PieceRequest
from buddy.events.calendar import exchange_schedule
from buddy.events.model import ScheduleContext, UpcomingEvent
from buddy.events.store import known_events
from buddy.store import Store
from buddy.timeframes import Timeframe

#: Calendar time the schedule looks ahead, per timeframe of the request.
LOOKAHEAD: dict[Timeframe, pd.Timedelta] = {
    **{tf: pd.Timedelta(days=150) for tf in Timeframe if tf.is_intraday},
    Timeframe.D1: pd.Timedelta(days=400),
    Timeframe.W1: pd.Timedelta(days=760),
}


def schedule_provider(request: PieceRequest) -> tuple[ScheduleContext | None, str | None]:
    """Return the schedule of ``request.instrument`` as known at ``request.as_of``."""
    inst = request.instrument
    try:
        schedule = read_schedule(request.store, inst.symbol, inst.trading_calendar,
                                 request.as_of, LOOKAHEAD[request.timeframe])
    except ValueError as exc:  # an unknown calendar name
        return None, f"no schedule for {inst.symbol}: {exc}"
    return schedule, None


def read_schedule(store: Store, symbol: str, calendar: str, as_of: datetime,
                  lookahead: pd.Timedelta) -> ScheduleContext:
    """Return the ScheduleContext of ``symbol`` on ``calendar`` from as_of to as_of +
    lookahead, with only what was announced by as_of."""
    window_end = (pd.Timestamp(as_of) + lookahead).to_pydatetime()
    calendar_events, sessions, calendar_ends = exchange_schedule(calendar, as_of, window_end)
    rows, n_earnings = known_events(store, symbol, as_of, window_end, as_of)
    imported = [UpcomingEvent(kind=r["kind"], ts=pd.Timestamp(r["ts"]).to_pydatetime(),
                              title=r["title"], symbol=None if pd.isna(r["symbol"])
                              else r["symbol"], source=r["source"], event_id=r["event_id"],
                              announced_at=pd.Timestamp(r["announced_at"]).to_pydatetime())
                for r in rows.to_dict("records")]
    events = sorted([*calendar_events, *imported], key=lambda e: (e.ts, e.event_id))
    return ScheduleContext(symbol=symbol, calendar=calendar, as_of=as_of,
                           window_end=window_end, events=tuple(events), sessions=sessions,
                           calendar_ends=calendar_ends,
                           earnings_dates_known=n_earnings)
