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
imported events are read once per symbol. The calendar span is held per calendar and
process, widened when a batch looks further. Rows with the same request share one piece, kept
as columns (a ``PieceColumn`` over ``ScheduleColumns``: each window's bounds into its
calendar's span and its symbol's events, which missing_scanner reads); its ScheduleContext is
built only when asked, and pieces with the same window on one calendar share one sessions
tuple.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd

from buddy.batch.columns import integer_groups, utc_ns
from buddy.batch.pieces import as_of_ns, groups, per_distinct
from buddy.context.piece_columns import PieceColumn
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

    The pieces are a PieceColumn over the distinct (symbol, calendar, lookahead, as_of), its
    columns a ``ScheduleColumns`` (each distinct piece's window as bounds into its
    calendar's span and its symbol's events) and its objects built only when asked. The
    calendar is read once per calendar over the span of the rows (``_CalendarSpan``), the
    events table once per symbol.
    """
    symbols = np.asarray(symbols, dtype=object)
    calendars = np.asarray(calendars, dtype=object)
    t, lookahead = np.asarray(t, dtype=np.int64), np.asarray(lookahead, dtype=np.int64)
    codes, first = groups(np.column_stack([pd.factorize(symbols)[0],
                                           pd.factorize(calendars)[0], lookahead, t]))
    m = len(first)
    u_t, u_end, u_symbol = t[first], t[first] + lookahead[first], symbols[first]
    u_calendar = calendars[first]
    shared_reasons = np.empty(m, dtype=object)
    span_of = np.full(m, -1, dtype=np.int64)
    bounds = np.zeros((6, m), dtype=np.int64)  # lo, hi, sift, e_lo, e_hi, e_sift
    spans: list[_CalendarSpan] = []
    events = _SymbolEvents.read(store, sorted({str(s) for s in pd.unique(u_symbol)}))
    for name in pd.unique(u_calendar):
        keys = np.flatnonzero(u_calendar == name)
        try:
            calendar = get_calendar(str(name))
        except ValueError as exc:  # an unknown calendar name
            for k in keys:
                shared_reasons[k] = f"no schedule for {u_symbol[k]}: {exc}"
            continue
        # a window's bounds depend on its times only: once per distinct (as_of, end)
        first, window = integer_groups(np.column_stack([u_t[keys], u_end[keys]]))
        w_t, w_end = u_t[keys[first]], u_end[keys[first]]
        days = _window_days(calendar.tz, w_t, w_end)
        span = _CalendarSpan.covering(calendar, days)
        span_of[keys] = len(spans)
        spans.append(span)
        bounds[:, keys] = span.bounds(w_t, w_end, days)[:, window]
    columns = ScheduleColumns(symbol=u_symbol, calendar=u_calendar, t=u_t, end=u_end,
                              span_of=span_of, spans=spans, bounds=bounds, events=events,
                              n_earnings=events.earnings_known(u_symbol, u_t))
    piece = np.where(span_of >= 0, np.arange(m), -1)
    return PieceColumn(piece[codes], m, columns.make, columns), shared_reasons[codes]


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class ScheduleColumns:
    """The distinct schedule pieces of a batch as columns: piece u is symbol[u]'s schedule
    on calendar[u] from t[u] to end[u] (UTC ns); its sessions are ``bounds[0:3, u]`` (lo,
    hi, sifted) of its calendar's span ``spans[span_of[u]]`` (-1: no calendar, no piece),
    its calendar events ``bounds[3:6, u]``, its imported events those of ``events``."""

    symbol: np.ndarray  # object
    calendar: np.ndarray  # object
    t: np.ndarray
    end: np.ndarray
    span_of: np.ndarray
    spans: list[_CalendarSpan]
    bounds: np.ndarray  # (6, pieces) int64
    events: _SymbolEvents
    n_earnings: np.ndarray  # int64: the symbol's earnings dates announced by t
    made: dict[tuple[Any, ...], Any] = field(default_factory=dict)  # shared tuples

    def make(self, u: int) -> ScheduleContext:
        """Return distinct piece ``u`` as the ScheduleContext the scalar provider gives."""
        span = self.spans[int(self.span_of[u])]
        lo, hi, sift, e_lo, e_hi, e_sift = self.bounds[:, u].tolist()
        t, end, symbol = int(self.t[u]), int(self.end[u]), str(self.symbol[u])
        # pieces with the same window share one tuple of sessions and one of events
        key = ("events", int(self.span_of[u]), e_lo, e_hi, t if e_sift else None)
        calendar_events = self.made.get(key)
        if calendar_events is None:
            calendar_events = self.made[key] = span.events_of(e_lo, e_hi, bool(e_sift), t)
        key = ("sessions", int(self.span_of[u]), lo, hi, t if sift else None)
        sessions = self.made.get(key)
        if sessions is None:
            sessions = self.made[key] = span.sessions_of(lo, hi, bool(sift), t)
        imported = self.events.at(symbol, t, end)
        # a slice of the calendar's events is in order already when the span is
        known = calendar_events if span.ordered and not imported else tuple(
            sorted([*calendar_events, *imported], key=_event_order))
        as_of, window_end = _utc_datetimes(np.array([t, end], dtype=np.int64))
        return ScheduleContext(
            symbol=symbol, calendar=str(self.calendar[u]), as_of=as_of,
            window_end=window_end, events=known,
            sessions=sessions,
            calendar_ends=span.end_of(end),
            earnings_dates_known=int(self.n_earnings[u]))

    # ------------------------------------------------------------------ sessions
    def session_sets(self) -> tuple[np.ndarray, np.ndarray, Any]:
        """Return (per piece, the number of its session set; each set's length; ``flat``):
        ``flat(upto)`` gives the (open, close) UTC ns, microseconds as the pieces' datetimes
        hold them, of the first ``upto[s]`` sessions of each set s, set after set."""
        lo, hi, sift = self.bounds[0], self.bounds[1], self.bounds[2].astype(bool)
        key = np.column_stack([self.span_of, lo, hi, np.where(sift, self.t, -1)])
        code, first = groups(key)
        f_span, f_lo, f_hi, f_t = self.span_of[first], lo[first], hi[first], self.t[first]
        f_sift = sift[first]
        # a sifted set (a closure announced inside its window) lists its sessions one by one
        picked: dict[int, np.ndarray] = {}
        for s in np.flatnonzero(f_sift & (f_span >= 0)).tolist():
            span = self.spans[int(f_span[s])]
            p = np.arange(f_lo[s], f_hi[s])
            picked[s] = p[span.shown_until[p] > f_t[s]]
        length = np.where(f_span >= 0, f_hi - f_lo, 0)
        for s, p in picked.items():
            length[s] = len(p)
        offset = np.cumsum([0, *(len(span.open) for span in self.spans)])
        opens = np.concatenate([_to_micros(span.open) for span in self.spans]) if (
            self.spans) else np.zeros(0, np.int64)
        closes = np.concatenate([_to_micros(span.close) for span in self.spans]) if (
            self.spans) else np.zeros(0, np.int64)
        start = np.where(f_span >= 0, offset[np.maximum(f_span, 0)] + f_lo, 0)

        def flat(upto: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            count = np.asarray(upto, dtype=np.int64)
            at = _ranges(start, count)
            for s, p in picked.items():
                if count[s]:
                    a = int(count[:s].sum())
                    at[a:a + count[s]] = offset[f_span[s]] + p[:count[s]]
            return opens[at], closes[at]

        return code.astype(np.int64), length.astype(np.int64), flat

    # ------------------------------------------------------------------ events
    def flat_events(self, until: np.ndarray) -> dict[str, np.ndarray]:
        """Return each piece's events up to ``until[u]`` (UTC ns; the rest of its window is
        left out) flat, by (ts, event_id) within a piece as the ScheduleContext holds them:
        ``lo``/``hi`` per piece, ``ts`` (UTC ns, to the microsecond), ``kind``, ``title``
        and ``symbol`` (None: market-wide) per event."""
        e_lo, e_hi, e_sift = self.bounds[3], self.bounds[4].copy(), self.bounds[5].astype(bool)
        end = np.minimum(self.end, until)
        for k, span in enumerate(self.spans):
            at = np.flatnonzero(self.span_of == k)
            e_hi[at] = np.maximum(np.minimum(
                e_hi[at], np.searchsorted(span.event_ts, end[at], side="right")), e_lo[at])
        table = _EventTable.of(self.spans, self.events)
        live = self.span_of >= 0
        count = np.where(live, e_hi - e_lo, 0)
        piece = np.repeat(np.arange(len(self.t)), count)
        at = _ranges(np.where(live, table.span_offset[np.maximum(self.span_of, 0)] + e_lo, 0),
                     count)
        keep = np.ones(len(at), dtype=bool)
        hidden = e_sift[piece]
        if hidden.any():  # a closure's holiday is hidden until announced
            keep[hidden] = table.hidden_until[at[hidden]] <= self.t[piece[hidden]]
        parts_piece, parts_at = [piece[keep]], [at[keep]]
        by_symbol = _positions(self.symbol)
        for symbol, (a, b) in table.symbol_rows.items():
            pieces = by_symbol.get(symbol)
            if pieces is None or b == a:
                continue
            ts = table.ts[a:b]
            first = np.searchsorted(ts, self.t[pieces], side="left")
            stop = np.searchsorted(ts, end[pieces], side="right")
            n = np.maximum(stop - first, 0)
            owner = np.repeat(pieces, n)
            rows = _ranges(a + first, n)
            known = table.announced[rows] <= self.t[owner]
            parts_piece.append(owner[known])
            parts_at.append(rows[known])
        piece, at = np.concatenate(parts_piece), np.concatenate(parts_at)
        order = np.lexsort((at, table.id_rank[at], table.ts[at], piece))
        piece, at = piece[order], at[order]
        hi = np.searchsorted(piece, np.arange(len(self.t)), side="right")
        lo = np.searchsorted(piece, np.arange(len(self.t)), side="left")
        return {"lo": lo, "hi": hi, "ts": table.ts[at], "kind": table.kind[at],
                "title": table.title[at], "symbol": table.symbol[at]}


def _positions(values: np.ndarray) -> dict[Any, np.ndarray]:
    """Return the positions of each distinct value (in order)."""
    codes, uniques = pd.factorize(np.asarray(values, dtype=object))
    order = np.argsort(codes, kind="stable")
    cuts = np.searchsorted(codes[order], np.arange(len(uniques) + 1))
    return {value: order[cuts[k]:cuts[k + 1]] for k, value in enumerate(uniques.tolist())}


def _to_micros(ns: np.ndarray) -> np.ndarray:
    """Return UTC ns floored to the microsecond (a datetime's precision)."""
    return ns // 1000 * 1000


def _ranges(start: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Return the concatenated ranges [start[i], start[i] + count[i])."""
    count = np.asarray(count, dtype=np.int64)
    total = int(count.sum())
    if not total:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(count)
    return np.repeat(np.asarray(start, dtype=np.int64) - (ends - count), count) + np.arange(
        total)


@dataclass(frozen=True, slots=True)
class _EventTable:
    """Every calendar span's events, then every symbol's imported events, as columns."""

    span_offset: np.ndarray
    symbol_rows: dict[str, tuple[int, int]]
    ts: np.ndarray
    announced: np.ndarray
    hidden_until: np.ndarray
    kind: np.ndarray
    title: np.ndarray
    symbol: np.ndarray
    id_rank: np.ndarray  # the event_id's place among them all (str order)

    @classmethod
    def of(cls, spans: Sequence[_CalendarSpan], events: _SymbolEvents) -> _EventTable:
        """Gather the columns."""
        ts, announced, hidden, kind, title, symbol, ids = [], [], [], [], [], [], []
        span_offset, n = [], 0
        for span in spans:
            span_offset.append(n)
            n += len(span.events)
            ts.append(_to_micros(span.event_ts))
            hidden.append(span.hidden_until)
            announced.append(np.full(len(span.events), _INT64_MIN, dtype=np.int64))
            kind.append(_objects([e.kind for e in span.events]))
            title.append(_objects([e.title for e in span.events]))
            symbol.append(_objects([e.symbol for e in span.events]))
            ids.append(_objects([e.event_id for e in span.events]))
        symbol_rows = {}
        for name, frame in events.frames.items():
            symbol_rows[name] = (n, n + len(frame.ts))
            n += len(frame.ts)
            ts.append(_to_micros(frame.ts))
            announced.append(frame.announced)
            hidden.append(np.full(len(frame.ts), _INT64_MIN, dtype=np.int64))
            kind.append(frame.kind)
            title.append(frame.title)
            symbol.append(frame.symbol)
            ids.append(frame.event_id)
        every_id = np.concatenate(ids) if ids else np.zeros(0, dtype=object)
        rank = np.unique(every_id, return_inverse=True)[1].reshape(-1) if len(every_id) else (
            np.zeros(0, np.int64))
        return cls(span_offset=np.array(span_offset, dtype=np.int64), symbol_rows=symbol_rows,
                   ts=_cat(ts), announced=_cat(announced), hidden_until=_cat(hidden),
                   kind=_cat(kind, object), title=_cat(title, object),
                   symbol=_cat(symbol, object), id_rank=rank.astype(np.int64))


def _cat(parts: list[np.ndarray], dtype: Any = np.int64) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


def _objects(values: list[Any]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _event_order(event: UpcomingEvent) -> tuple[datetime, str]:
    return event.ts, event.event_id


def _utc_datetimes(ns: np.ndarray) -> list[datetime]:
    """Return UTC ns values as the datetimes ``as_of_datetime`` gives, all at once."""
    return list(pd.DatetimeIndex(ns, tz="UTC").to_pydatetime())


@dataclass(frozen=True, slots=True, eq=False)
class _EventRows:
    """One symbol's events (and the market-wide ones) as columns, by (ts, event_id); each
    UpcomingEvent built when first asked."""

    rows: pd.DataFrame
    ts: np.ndarray  # UTC ns
    announced: np.ndarray  # UTC ns
    kind: np.ndarray  # object
    title: np.ndarray  # object
    symbol: np.ndarray  # object, None: market-wide
    event_id: np.ndarray  # object
    earnings: np.ndarray  # the symbol's earnings announcement times, sorted
    made: dict[int, UpcomingEvent]

    def event(self, i: int) -> UpcomingEvent:
        """Return row ``i`` as an UpcomingEvent (``imported_events``'s)."""
        made = self.made.get(i)
        if made is None:
            made = self.made[i] = imported_events(self.rows.iloc[i:i + 1])[0]
        return made


@dataclass(frozen=True, slots=True)
class _SymbolEvents:
    """The events table as ``known_events`` reads it, per symbol, read in one connection."""

    frames: dict[str, _EventRows]

    @classmethod
    def read(cls, store: Store, symbols: Sequence[str]) -> _SymbolEvents:
        """Read the events of ``symbols`` (each with the market-wide ones)."""
        frames = {}
        # every event of the symbol and every market-wide one, whenever announced: what
        # known_events filters, read once per symbol
        for symbol, rows in symbol_events(store, symbols):
            if not len(rows):
                continue
            kind = rows["kind"].to_numpy(object)
            own = rows["symbol"].to_numpy(object)
            earnings = (own == symbol) & (kind == "earnings")
            announced = utc_ns(rows["announced_at"])
            frames[symbol] = _EventRows(
                rows=rows, ts=utc_ns(rows["ts"]), announced=announced, kind=kind,
                title=rows["title"].to_numpy(object),
                symbol=_objects([None if pd.isna(v) else v for v in own.tolist()]),
                event_id=rows["event_id"].to_numpy(object),
                earnings=np.sort(announced[earnings]), made={})
        return cls(frames)

    def at(self, symbol: str, as_of: int, end: int) -> list[UpcomingEvent]:
        """Return the events of ``symbol`` in [as_of, end] announced by as_of (ns), by
        (ts, event_id)."""
        found = self.frames.get(symbol)
        if found is None:
            return []
        keep = np.flatnonzero((found.announced <= as_of) & (found.ts >= as_of)
                              & (found.ts <= end))
        return [found.event(int(i)) for i in keep]

    def earnings_known(self, symbols: np.ndarray, as_of: np.ndarray) -> np.ndarray:
        """Return per (symbol, as_of) how many of the symbol's earnings dates were announced
        by as_of (ns)."""
        out = np.zeros(len(symbols), dtype=np.int64)
        for symbol, at in _positions(symbols).items():
            found = self.frames.get(symbol)
            if found is not None:
                out[at] = np.searchsorted(found.earnings, as_of[at], side="right")
        return out


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
    made: dict[str, Any]  # what is built on first use (the sessions as datetimes)
    event_day: np.ndarray  # s
    event_ts: np.ndarray  # ns
    hidden_until: np.ndarray  # ns; INT64_MIN for an event known all along
    events: list[UpcomingEvent]
    last_close: pd.Timestamp | None  # an exchange calendar's last session close
    ordered: bool  # events by (ts, event_id): every window's slice is sorted already

    @classmethod
    def covering(cls, calendar: TradingCalendar, days: tuple[np.ndarray, np.ndarray]
                 ) -> _CalendarSpan:
        """Return ``calendar`` over (at least) the days the windows look at (``days``: their
        ``_window_days``): the span held for the calendar when it covers them, else a span
        over both, held from then on (every window is a searchsorted slice, the same in any
        covering span; the calendar is read once per process rather than once per batch)."""
        first_day, last_day = days
        first, last = int(first_day.min()), int(last_day.max())
        key = (type(calendar).__name__, calendar.name)
        held = _HELD_SPANS.get(key)
        if held is not None and held[0] <= first and last <= held[1]:
            return held[2]
        if held is not None:
            first, last = min(first, held[0]), max(last, held[1])
        span = cls.read(calendar, first, last)
        _HELD_SPANS[key] = (first, last, span)
        return span

    @classmethod
    def read(cls, calendar: TradingCalendar, first_day: int, last_day: int
             ) -> _CalendarSpan:
        """Read ``calendar`` from ``first_day`` to ``last_day`` (s, local dates)."""
        start = pd.Timestamp(first_day, unit="s")
        stop = pd.Timestamp(last_day, unit="s")
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
        keys = [_event_order(e) for e in events]
        return cls(tz=calendar.tz, day=day, open=opens, close=closes, shown_until=shown,
                   made={}, event_day=np.array(event_day, dtype=np.int64),
                   event_ts=event_ts, hidden_until=np.array(hidden, dtype=np.int64),
                   events=events, last_close=last_close,
                   ordered=all(a <= b for a, b in pairwise(keys)))

    def bounds(self, as_of: np.ndarray, end: np.ndarray,
               days: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """Return per window [as_of, end] (ns) the rows (lo, hi, sifted, e_lo, e_hi,
        e_sifted): its sessions are ``pairs[lo:hi]`` (when sifted, less the closures its
        as_of knows of), its calendar events ``events[e_lo:e_hi]`` (when sifted, less the
        closures not yet announced), as ``exchange_schedule`` gives them (``days``: the
        windows' ``_window_days``, when the caller has them)."""
        first_day, last_day = _window_days(self.tz, as_of, end) if days is None else days
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
        return np.array([lo, hi, sift, e_lo, e_hi, e_sift], dtype=np.int64).reshape(
            6, len(as_of))

    @property
    def pairs(self) -> list[tuple[datetime, datetime]]:
        """Return every session as (open, close) UTC datetimes (built on first use)."""
        pairs = self.made.get("pairs")
        if pairs is None:
            pairs = self.made["pairs"] = list(zip(
                pd.DatetimeIndex(self.open, tz="UTC").to_pydatetime(),
                pd.DatetimeIndex(self.close, tz="UTC").to_pydatetime(), strict=True))
        return pairs

    def sessions_of(self, lo: int, hi: int, sifted: bool, as_of: int
                    ) -> tuple[tuple[datetime, datetime], ...]:
        """Return one window's sessions (``bounds``)."""
        if not sifted:
            return tuple(self.pairs[lo:hi])
        return tuple(self.pairs[p] for p in range(lo, hi) if self.shown_until[p] > as_of)

    def events_of(self, lo: int, hi: int, sifted: bool, as_of: int
                  ) -> tuple[UpcomingEvent, ...]:
        """Return one window's calendar events (``bounds``)."""
        if not sifted:
            return tuple(self.events[lo:hi])
        return tuple(self.events[q] for q in range(lo, hi) if self.hidden_until[q] <= as_of)

    def end_of(self, end: int) -> datetime | None:
        """Return the calendar's last close when it comes before ``end`` (ns), else None."""
        if self.last_close is not None and self.last_close.value < end:
            return self.last_close.to_pydatetime()
        return None


#: Per calendar the widest span read so far: (first day, last day, span).
_HELD_SPANS: dict[tuple[str, str], tuple[int, int, _CalendarSpan]] = {}


def _seconds(day: object) -> int:
    """Return a session date as seconds since the epoch (``to_session_index``'s unit)."""
    return int(pd.Timestamp(day).value // 1_000_000_000)  # Timestamp.value is always ns


def _window_days(tz: str, as_of: np.ndarray, end: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Return the first and last calendar day (s) ``exchange_schedule`` reads for windows
    [as_of, end] (ns): the local dates of as_of minus one day and of the window end."""
    def local_day(ns: np.ndarray) -> np.ndarray:
        code, distinct = pd.factorize(ns)  # windows share a few times: each converted once
        stamps = pd.DatetimeIndex(np.asarray(distinct, dtype=np.int64), tz="UTC").tz_convert(
            tz).tz_localize(None)
        return stamps.normalize().as_unit("s").asi8[code]

    return local_day(as_of - _DAY_NS), local_day(end)


schedule_provider = ScheduleProvider()
