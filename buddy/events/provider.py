"""The ContextPack's ``schedule`` piece: upcoming events and sessions known at as_of.

Imported events (earnings, macro, user-added closures) come from the events table, filtered
to ``announced_at <= as_of``; exchange holidays and early closes and the sessions ahead come
from exchange-calendars at read time (``buddy.events.calendar``). The window ahead is long
enough for the longest holding horizon the exit-plan checks allow on each timeframe.

``ScheduleProvider`` (the instance ``schedule_provider``) implements
``buddy.context.providers.PieceProvider``. Its batch form gives the pieces of many requests
without a calendar read per row: per calendar, the sessions, holidays and early closes of the
whole span of the rows are read once (with each unscheduled closure as a session and an event,
marked with when it was announced), a row's sessions and calendar events are a
``searchsorted`` slice of them (minus the closures its as_of hides or already knows), and the
imported events are read once per symbol. Rows with the same request share one
ScheduleContext, and rows with the same window on one calendar share one sessions tuple.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise

import numpy as np
import pandas as pd

from buddy.batch.columns import utc_ns
from buddy.batch.pieces import as_of_ns, groups, per_distinct
from buddy.context.providers import BatchPieceRequest, BatchPieces, PieceRequest
from buddy.data.calendars import (
    ExchangeCalendar,
    TradingCalendar,
    get_calendar,
    holidays_and_early_closes,
    to_session_index,
)
from buddy.events.calendar import (
    calendar_event,
    closure_announced_at,
    unscheduled_closures,
)
from buddy.events.model import ScheduleContext, UpcomingEvent
from buddy.store import Store
from buddy.store.events import symbol_events
from buddy.timeframes import Timeframe

#: Calendar time the schedule looks ahead, per timeframe of the request.
LOOKAHEAD: dict[Timeframe, pd.Timedelta] = {
    **{tf: pd.Timedelta(days=150) for tf in Timeframe if tf.is_intraday},
    Timeframe.D1: pd.Timedelta(days=400),
    Timeframe.W1: pd.Timedelta(days=760),
}


@dataclass(frozen=True, slots=True)
class ScheduleProvider:
    """The ``schedule`` piece's provider: events and sessions ahead, as known at as_of."""

    def __call__(self, request: PieceRequest) -> tuple[ScheduleContext | None, str | None]:
        """Return the schedule of ``request.instrument`` as known at ``request.as_of``."""
        inst = request.instrument
        pieces, reasons = schedules(request.store, [inst.symbol], [inst.trading_calendar],
                                    as_of_ns([request.as_of]),
                                    np.array([LOOKAHEAD[request.timeframe].value]))
        return pieces[0], reasons[0]

    def batch(self, request: BatchPieceRequest) -> BatchPieces:
        """Return (pieces, reasons) per row: ``schedule_batch``."""
        return schedule_batch(request)


def read_schedule(store: Store, symbol: str, calendar: str, as_of: datetime,
                  lookahead: pd.Timedelta) -> ScheduleContext:
    """Return the ScheduleContext of ``symbol`` on ``calendar`` from as_of to as_of +
    lookahead, with only what was announced by as_of: a batch of one (``schedules``).

    Raises ValueError for a calendar name that does not exist.
    """
    pieces, reasons = schedules(store, [symbol], [calendar], as_of_ns([as_of]),
                                np.array([pd.Timedelta(lookahead).value]))
    if pieces[0] is None:
        raise ValueError(reasons[0])
    return pieces[0]


def imported_events(rows: pd.DataFrame) -> list[UpcomingEvent]:
    """Return events-table rows (``buddy.store.events`` reads' columns) as UpcomingEvents."""
    return [UpcomingEvent(kind=r["kind"], ts=pd.Timestamp(r["ts"]).to_pydatetime(),
                          title=r["title"], symbol=None if pd.isna(r["symbol"])
                          else r["symbol"], source=r["source"], event_id=r["event_id"],
                          announced_at=pd.Timestamp(r["announced_at"]).to_pydatetime())
            for r in rows.to_dict("records")]


# ---------------------------------------------------------------------------- batch form
_INT64_MIN = np.iinfo(np.int64).min
_INT64_MAX = np.iinfo(np.int64).max
_DAY_NS = 86_400_000_000_000


def schedule_batch(request: BatchPieceRequest) -> BatchPieces:
    """Batch form of ``schedule_provider``: (pieces, reasons) per row (``schedules`` with
    each row's timeframe's lookahead)."""
    if not len(request):
        return np.empty(0, dtype=object), np.empty(0, dtype=object)
    lookahead = per_distinct(request.intents["timeframe"],
                             lambda v: LOOKAHEAD[Timeframe.parse(v)].value, np.int64)
    return schedules(request.store, request.instrument["symbol"].to_numpy(object),
                     request.instrument["trading_calendar"].to_numpy(object),
                     as_of_ns(request.intents["as_of"]), lookahead)


def schedules(store: Store, symbols: Sequence[str] | np.ndarray,
              calendars: Sequence[str] | np.ndarray, t: np.ndarray, lookahead: np.ndarray
              ) -> BatchPieces:
    """Return (pieces, reasons) per row: the ScheduleContext of symbol i on calendar i from
    t[i] to t[i] + lookahead[i] (UTC ns), with only what was announced by t[i]; a reason
    where the calendar does not exist.

    One ScheduleContext per distinct (symbol, calendar, lookahead, as_of); the calendar is
    read once per calendar over the span of the rows (``_CalendarSpan``), the events table
    once per symbol.
    """
    symbols = np.asarray(symbols, dtype=object)
    calendars = np.asarray(calendars, dtype=object)
    t, lookahead = np.asarray(t, dtype=np.int64), np.asarray(lookahead, dtype=np.int64)
    codes, first = groups(np.column_stack([pd.factorize(symbols)[0],
                                           pd.factorize(calendars)[0], lookahead, t]))
    u_t, u_end, u_symbol = t[first], t[first] + lookahead[first], symbols[first]
    # every distinct as_of and window end as a datetime at once (as_of_datetime's values)
    u_as_of, u_window_end = _utc_datetimes(u_t), _utc_datetimes(u_end)
    shared_pieces = np.empty(len(first), dtype=object)
    shared_reasons = np.empty(len(first), dtype=object)
    events = _SymbolEvents.read(store, sorted({str(s) for s in u_symbol}))
    u_calendar = calendars[first]
    for name in pd.unique(u_calendar):
        keys = np.flatnonzero(u_calendar == name)
        try:
            calendar = get_calendar(str(name))
        except ValueError as exc:  # an unknown calendar name
            for k in keys:
                shared_reasons[k] = f"no schedule for {u_symbol[k]}: {exc}"
            continue
        span = _CalendarSpan.read(calendar, u_t[keys], u_end[keys])
        sessions, calendar_events, calendar_ends = span.windows(u_t[keys], u_end[keys])
        calendar_name = str(name)
        for j, u in enumerate(keys.tolist()):
            symbol = str(u_symbol[u])
            imported, n_earnings = events.at(symbol, int(u_t[u]), int(u_end[u]))
            # a slice of the calendar's events is in order already when the span is
            known = calendar_events[j] if span.ordered and not imported else tuple(
                sorted([*calendar_events[j], *imported], key=_event_order))
            shared_pieces[u] = ScheduleContext(
                symbol=symbol, calendar=calendar_name, as_of=u_as_of[u],
                window_end=u_window_end[u], events=known, sessions=sessions[j],
                calendar_ends=calendar_ends[j], earnings_dates_known=n_earnings)
    return shared_pieces[codes], shared_reasons[codes]


def _event_order(event: UpcomingEvent) -> tuple[datetime, str]:
    return event.ts, event.event_id


def _utc_datetimes(ns: np.ndarray) -> list[datetime]:
    """Return UTC ns values as the datetimes ``as_of_datetime`` gives, all at once."""
    return list(pd.DatetimeIndex(ns, tz="UTC").to_pydatetime())


@dataclass(frozen=True, slots=True)
class _SymbolEvents:
    """The events table as ``known_events`` reads it, per symbol, read in one connection."""

    frames: dict[str, tuple[np.ndarray, np.ndarray, list[UpcomingEvent], np.ndarray]]

    @classmethod
    def read(cls, store: Store, symbols: Sequence[str]) -> _SymbolEvents:
        """Read the events of ``symbols`` (each with the market-wide ones)."""
        frames = {}
        # every event of the symbol and every market-wide one, whenever announced: what
        # known_events filters, read once per symbol
        for symbol, rows in symbol_events(store, symbols):
            if not len(rows):
                continue
            earnings = ((rows["symbol"].to_numpy(object) == symbol)
                        & (rows["kind"].to_numpy(object) == "earnings"))
            announced = utc_ns(rows["announced_at"])
            frames[symbol] = (utc_ns(rows["ts"]), announced, imported_events(rows),
                              np.sort(announced[earnings]))
        return cls(frames)

    def at(self, symbol: str, as_of: int, end: int) -> tuple[list[UpcomingEvent], int]:
        """Return the events of ``symbol`` in [as_of, end] announced by as_of (ns), by
        (ts, event_id), and how many of its earnings dates were announced by as_of."""
        found = self.frames.get(symbol)
        if found is None:
            return [], 0
        ts, announced, events, earnings = found
        keep = np.flatnonzero((announced <= as_of) & (ts >= as_of) & (ts <= end))
        return ([events[i] for i in keep],
                int(np.searchsorted(earnings, as_of, side="right")))


@dataclass(frozen=True, slots=True, kw_only=True)
class _CalendarSpan:
    """One calendar over the span of many rows, as ``exchange_schedule`` reads it per row.

    Sessions (by date, with each unscheduled closure of the span as a session too) and
    calendar events (holidays and early closes, by date) are parallel arrays; a closure is
    in a row's sessions while not yet announced (``shown_until``: its announcement, ns) and
    its holiday event is hidden until then (``hidden_until``).
    """

    tz: str
    day: np.ndarray  # session date, s
    open: np.ndarray  # ns
    close: np.ndarray  # ns
    shown_until: np.ndarray  # ns; INT64_MAX for a regular session
    pairs: list[tuple[datetime, datetime]]
    event_day: np.ndarray  # s
    event_ts: np.ndarray  # ns
    hidden_until: np.ndarray  # ns; INT64_MIN for an event known all along
    events: list[UpcomingEvent]
    last_close: pd.Timestamp | None  # an exchange calendar's last session close
    ordered: bool  # events by (ts, event_id): every window's slice is sorted already

    @classmethod
    def read(cls, calendar: TradingCalendar, as_of: np.ndarray, end: np.ndarray
             ) -> _CalendarSpan:
        """Read ``calendar`` over the days the windows [as_of, end] (ns) look at."""
        first_day, last_day = _window_days(calendar.tz, as_of, end)
        start = pd.Timestamp(int(first_day.min()), unit="s")
        stop = pd.Timestamp(int(last_day.max()), unit="s")
        sessions = calendar.sessions(start, stop)
        table = calendar.session_open_close(sessions)
        day = to_session_index(sessions).asi8
        opens, closes = utc_ns(table["open"]), utc_ns(table["close"])
        shown = np.full(len(day), _INT64_MAX, dtype=np.int64)
        events: list[UpcomingEvent] = []
        event_day: list[int] = []
        hidden: list[int] = []
        last_close = None
        if isinstance(calendar, ExchangeCalendar):
            unscheduled = unscheduled_closures(calendar.name)
            extra: list[tuple[int, int, int, int]] = []
            rows = holidays_and_early_closes(calendar.name, start, stop)
            for stamp, kind, close_utc in rows.itertuples(index=False):
                date = pd.Timestamp(stamp).date()
                announced = None
                if kind == "holiday" and date in unscheduled:
                    announced = closure_announced_at(calendar.name, date, unscheduled[date])
                    regular = unscheduled[date]
                    extra.append((_seconds(stamp), regular[0].value, regular[1].value,
                                  announced.value))
                events.append(calendar_event(calendar.name, calendar.tz, date, kind, close_utc,
                                             announced))
                event_day.append(_seconds(stamp))
                hidden.append(_INT64_MIN if announced is None else announced.value)
            if extra:
                add = np.array(extra, dtype=np.int64)
                day = np.concatenate([day, add[:, 0]])
                opens = np.concatenate([opens, add[:, 1]])
                closes = np.concatenate([closes, add[:, 2]])
                shown = np.concatenate([shown, add[:, 3]])
                order = np.argsort(opens, kind="stable")
                day, opens, closes, shown = day[order], opens[order], closes[order], shown[order]
            last_close = pd.Timestamp(calendar.session_open_close([calendar.last_session])
                                      ["close"].iloc[0])
        event_ts = np.array([pd.Timestamp(e.ts).value for e in events], dtype=np.int64)
        for values in (day, opens, closes, np.array(event_day, dtype=np.int64), event_ts):
            if np.any(np.diff(values) < 0):  # slices need both orders to agree
                raise ValueError("calendar dates and times out of order")
        pairs = list(zip(pd.DatetimeIndex(opens, tz="UTC").to_pydatetime(),
                         pd.DatetimeIndex(closes, tz="UTC").to_pydatetime(), strict=True))
        keys = [_event_order(e) for e in events]
        return cls(tz=calendar.tz, day=day, open=opens, close=closes, shown_until=shown,
                   pairs=pairs, event_day=np.array(event_day, dtype=np.int64),
                   event_ts=event_ts, hidden_until=np.array(hidden, dtype=np.int64),
                   events=events, last_close=last_close,
                   ordered=all(a <= b for a, b in pairwise(keys)))

    def windows(self, as_of: np.ndarray, end: np.ndarray
                ) -> tuple[list[tuple[tuple[datetime, datetime], ...]],
                           list[tuple[UpcomingEvent, ...]], list[datetime | None]]:
        """Return per window [as_of, end] (ns) its sessions, calendar events (by ts) and
        calendar end, as ``exchange_schedule`` gives them; equal windows share one tuple
        of sessions and one of events."""
        first_day, last_day = _window_days(self.tz, as_of, end)
        lo = np.maximum(np.searchsorted(self.day, first_day, side="left"),
                        np.searchsorted(self.close, as_of, side="right"))
        hi = np.minimum(np.searchsorted(self.day, last_day, side="right"),
                        np.searchsorted(self.open, end, side="right"))
        hi = np.maximum(hi, lo)
        # a closure inside the window drops out of its sessions once announced
        sift = np.zeros(len(as_of), dtype=bool)
        for p in np.flatnonzero(self.shown_until != _INT64_MAX):
            sift |= (lo <= p) & (p < hi) & (as_of >= self.shown_until[p])
        e_lo = np.maximum(np.searchsorted(self.event_day, first_day, side="left"),
                          np.searchsorted(self.event_ts, as_of, side="left"))
        e_hi = np.minimum(np.searchsorted(self.event_day, last_day, side="right"),
                          np.searchsorted(self.event_ts, end, side="right"))
        e_hi = np.maximum(e_hi, e_lo)
        # and its holiday event is hidden until announced
        e_sift = np.zeros(len(as_of), dtype=bool)
        for q in np.flatnonzero(self.hidden_until != _INT64_MIN):
            e_sift |= (e_lo <= q) & (q < e_hi) & (as_of < self.hidden_until[q])
        made: dict[tuple[int, int, int | None], tuple[tuple[datetime, datetime], ...]] = {}
        made_events: dict[tuple[int, int, int | None], tuple[UpcomingEvent, ...]] = {}
        sessions, events = [], []
        for k, (a, b, sifted, e_a, e_b, e_sifted, t) in enumerate(zip(
                lo.tolist(), hi.tolist(), sift.tolist(), e_lo.tolist(), e_hi.tolist(),
                e_sift.tolist(), as_of.tolist(), strict=True)):
            key = (a, b, t if sifted else None)
            if key not in made:
                made[key] = tuple(self.pairs[a:b]) if not sifted else tuple(
                    self.pairs[p] for p in range(a, b) if self.shown_until[p] > as_of[k])
            sessions.append(made[key])
            key = (e_a, e_b, t if e_sifted else None)
            if key not in made_events:
                made_events[key] = tuple(self.events[e_a:e_b]) if not e_sifted else tuple(
                    self.events[q] for q in range(e_a, e_b) if self.hidden_until[q] <= as_of[k])
            events.append(made_events[key])
        ends: list[datetime | None] = [None] * len(as_of)
        if self.last_close is not None:
            last = self.last_close.value
            ends = [self.last_close.to_pydatetime() if last < e else None for e in end]
        return sessions, events, ends


def _seconds(day: object) -> int:
    """Return a session date as seconds since the epoch (``to_session_index``'s unit)."""
    return int(pd.Timestamp(day).value // 1_000_000_000)  # Timestamp.value is always ns


def _window_days(tz: str, as_of: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, ...]:
    """Return the first and last calendar day (s) ``exchange_schedule`` reads for windows
    [as_of, end] (ns): the local dates of as_of minus one day and of the window end."""
    def local_day(ns: np.ndarray) -> np.ndarray:
        stamps = pd.DatetimeIndex(ns, tz="UTC").tz_convert(tz).tz_localize(None)
        return stamps.normalize().as_unit("s").asi8

    return local_day(as_of - _DAY_NS), local_day(end)


schedule_provider = ScheduleProvider()
