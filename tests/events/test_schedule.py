"""The schedule piece: exchange closures and sessions as known at as_of, imported events
filtered on announced_at, holding horizons turned into time, and point-in-time reads."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from buddy.events.calendar import exchange_schedule
from buddy.events.model import ScheduleContext
from buddy.events.provider import imported_events, read_schedule
from buddy.events.store import known_events
from buddy.store import Store
from tests import factories
from tests.events.helpers import store_with_events

DAY = pd.Timedelta(days=1)


def _t(text: str) -> datetime:
    return pd.Timestamp(text).to_pydatetime()


def _schedule(as_of: str, days: int = 30, calendar: str = "XNYS"):
    return factories.schedule(as_of=_t(as_of), lookahead_days=days, calendar=calendar)


# ------------------------------------------------------------------ exchange closures
def test_july_fourth_2012_early_close_and_holiday_within_the_horizon() -> None:
    sched = _schedule("2012-07-02T20:00Z")  # Monday's close
    end, clipped = sched.horizon_end("1d", 3)
    assert (end, clipped) == (_t("2012-07-06T20:00Z"), False)  # Jul 3, 5, 6: the 4th is shut
    inside = sched.events_between(sched.as_of, end)
    assert [(e.kind, e.ts) for e in inside] == [
        ("early_close", _t("2012-07-03T17:00Z")),  # 13:00 New York
        ("holiday", _t("2012-07-04T04:00Z")),  # local midnight of the closed day
    ]
    assert inside[1].title == "XNYS closed on 2012-07-04 (holiday)"
    assert inside[0].announced_at is None  # standing rules: known years ahead
    assert sched.sessions[0] == (_t("2012-07-03T13:30Z"), _t("2012-07-03T17:00Z"))
    assert sched.sessions_before(inside[1].ts) == 1


def test_an_unscheduled_closure_is_unknown_until_announced() -> None:
    before = _schedule("2012-10-26T20:00Z")  # Friday before Hurricane Sandy
    assert not before.events_between(before.as_of, before.window_end, ("holiday",))[:1] or (
        before.events_between(before.as_of, before.window_end, ("holiday",))[0].ts
        > _t("2012-11-01T00:00Z"))
    assert before.sessions[0] == (_t("2012-10-29T13:30Z"), _t("2012-10-29T20:00Z"))
    assert before.horizon_end("1d", 2) == (_t("2012-10-30T20:00Z"), False)
    sunday = _schedule("2012-10-29T02:00Z")  # after Sunday evening's announcement
    closures = sunday.events_between(sunday.as_of, _t("2012-10-31T00:00Z"), ("holiday",))
    assert [e.ts for e in closures] == [_t("2012-10-29T04:00Z")]
    assert closures[0].title.endswith("(unscheduled closure)")
    assert closures[0].announced_at == _t("2012-10-29T01:00Z")
    assert sunday.sessions[0][0] == _t("2012-10-30T13:30Z")  # the 30th is not yet announced
    tuesday = _schedule("2012-10-30T01:00Z")
    assert tuesday.sessions[0][0] == _t("2012-10-31T13:30Z")


def test_september_eleventh_is_not_known_before_the_open() -> None:
    early = _schedule("2001-09-11T12:00Z")
    assert early.sessions[0] == (_t("2001-09-11T13:30Z"), _t("2001-09-11T20:00Z"))
    assert [e for e in early.events if e.kind == "holiday"
            and e.ts < _t("2001-09-20T00:00Z")] == []
    late = _schedule("2001-09-11T14:00Z")
    assert late.sessions[0][0] == _t("2001-09-12T13:30Z")  # next day still unannounced


def test_fx_has_sessions_but_no_exchange_holidays() -> None:
    sched = _schedule("2017-12-22T20:00Z", calendar="FX24x5")
    assert sched.events == ()
    assert sched.sessions[0] == (_t("2017-12-21T22:00Z"), _t("2017-12-22T22:00Z"))
    assert sched.sessions[1] == (_t("2017-12-24T22:00Z"), _t("2017-12-25T22:00Z"))


def test_calendar_end_is_reported() -> None:
    _, sessions, ends = exchange_schedule("XNYS", _t("2027-11-01T00:00Z"),
                                          _t("2028-06-01T00:00Z"))
    assert ends is not None and sessions[-1][1] == ends
    assert exchange_schedule("XNYS", _t("2012-01-03T00:00Z"), _t("2012-02-01T00:00Z"))[2] is None


# ------------------------------------------------------------------ horizons
@pytest.mark.parametrize(("as_of", "tf", "bars", "calendar", "end"), [
    ("2012-07-03T15:00Z", "1d", 1, "XNYS", "2012-07-03T17:00Z"),  # the session in progress
    ("2012-06-06T21:00Z", "1w", 1, "XNYS", "2012-06-08T20:00Z"),  # this (forming) week
    ("2012-06-06T21:00Z", "1w", 2, "XNYS", "2012-06-15T20:00Z"),
    ("2012-07-02T19:00Z", "1h", 3, "XNYS", "2012-07-03T15:30Z"),  # 1h today, 2h tomorrow
    ("2012-07-02T19:00Z", "4h", 1, "XNYS", "2012-07-03T16:30Z"),
    ("2017-06-16T19:00Z", "4h", 2, "FX24x5", "2017-06-19T03:00Z"),  # across the weekend
])
def test_horizon_end(as_of: str, tf: str, bars: int, calendar: str, end: str) -> None:
    assert _schedule(as_of, calendar=calendar).horizon_end(tf, bars) == (_t(end), False)


def test_a_horizon_beyond_the_known_sessions_is_clipped() -> None:
    sched = _schedule("2012-07-02T20:00Z", days=10)
    end, clipped = sched.horizon_end("1d", 50)
    assert clipped and end == sched.sessions[-1][1]
    assert sched.horizon_end("1w", 5)[1]
    assert sched.horizon_end("1h", 500)[1]


# ------------------------------------------------------------------ imported events
EVENTS_CSV = """kind,ts,title,symbol,announced_at
earnings,2012-07-18T20:05Z,IBM Q2 2012 earnings,IBM,2012-06-15T12:00Z
earnings,2012-07-24T20:30Z,AAPL Q3 FY12 earnings,AAPL,2012-06-26T12:00Z
macro,2012-07-06T12:30Z,US nonfarm payrolls (June),,2012-01-15T00:00Z
macro,2012-08-01T18:15Z,FOMC statement,,2012-07-02T12:00Z
earnings,2012-04-18T20:05Z,IBM Q1 2012 earnings,IBM,2012-03-15T12:00Z
other,2012-07-10T13:00Z,IBM investor day,IBM,2012-07-09T12:00Z
"""


@pytest.fixture(scope="module")
def events_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return store_with_events(tmp_path_factory.mktemp("schedule"), EVENTS_CSV)


def test_only_announced_upcoming_events_of_the_symbol_or_market(events_store: Store) -> None:
    sched = read_schedule(events_store, "IBM", "XNYS", _t("2012-07-02T20:00Z"), 60 * DAY)
    imported = [e.title for e in sched.events if e.source.startswith("import:")]
    # AAPL's date is another symbol's; the investor day is not announced yet; Q1 is past
    assert imported == ["US nonfarm payrolls (June)", "IBM Q2 2012 earnings",
                        "FOMC statement"]
    assert sched.earnings_dates_known == 2  # Q1 (past) and Q2
    assert read_schedule(events_store, "IBM", "XNYS", _t("2012-03-01T00:00Z"), 60 * DAY
                         ).earnings_dates_known == 0
    later = read_schedule(events_store, "IBM", "XNYS", _t("2012-07-09T12:00Z"), 60 * DAY)
    assert "IBM investor day" in [e.title for e in later.events]
    assert "US nonfarm payrolls (June)" not in [e.title for e in later.events]
    fomc = next(e for e in sched.events if e.title == "FOMC statement")
    assert fomc.symbol is None and fomc.announced_at == _t("2012-07-02T12:00Z")


def test_schedule_at_t_equals_schedule_from_events_known_at_t(events_store: Store,
                                                              tmp_path: Path) -> None:
    known = tmp_path / "known.duckdb"
    shutil.copy(events_store.path, known)
    cut = Store(known)
    # latest first, so each step removes the events announced after the next t
    for as_of in ["2012-07-19T00:00Z", "2012-07-09T13:00Z", "2012-07-06T12:30Z",
                  "2012-07-02T11:00Z", "2012-06-27T00:00Z", "2012-06-15T12:00Z",
                  "2012-06-15T11:59Z", "2012-04-18T20:05Z", "2012-03-15T12:00Z",
                  "2012-01-01T00:00Z"]:
        t = _t(as_of)
        with cut.transaction() as con:
            con.execute("DELETE FROM events WHERE announced_at > ?", [t])
        for symbol in ("IBM", "AAPL"):
            full = read_schedule(events_store, symbol, "XNYS", t, 90 * DAY)
            assert full == read_schedule(cut, symbol, "XNYS", t, 90 * DAY), (symbol, as_of)
            assert all(e.announced_at is None or e.announced_at <= t for e in full.events)
            assert all(t <= e.ts <= full.window_end for e in full.events)
    assert cut.query("SELECT count(*) AS n FROM events")["n"].iloc[0] == 0


def _window_by_window(store: Store, symbol: str, calendar: str, as_of: datetime,
                      lookahead: pd.Timedelta) -> ScheduleContext:
    """The schedule the plain way, one window at a time: the calendar's events and sessions
    of the window (``exchange_schedule``) and the events table's rows announced by as_of
    (``known_events``). The oracle of the provider, which reads spans once."""
    end = (pd.Timestamp(as_of) + lookahead).to_pydatetime()
    calendar_events, sessions, calendar_ends = exchange_schedule(calendar, as_of, end)
    rows, n_earnings = known_events(store, symbol, as_of, end, as_of)
    events = sorted([*calendar_events, *imported_events(rows)], key=lambda e: (e.ts, e.event_id))
    return ScheduleContext(symbol=symbol, calendar=calendar, as_of=as_of, window_end=end,
                           events=tuple(events), sessions=sessions,
                           calendar_ends=calendar_ends, earnings_dates_known=n_earnings)


@pytest.mark.parametrize(("calendar", "lookahead"), [("XNYS", 90 * DAY), ("XNYS", 760 * DAY),
                                                     ("FX24x5", 150 * DAY)])
def test_the_provider_equals_the_schedule_read_window_by_window(
        events_store: Store, calendar: str, lookahead: pd.Timedelta) -> None:
    # around the imported events' announcements, 9/11 (announced after the fact), an
    # early close, a holiday, and a weekend
    for as_of in ["2001-09-10T20:00Z", "2001-09-11T13:00Z", "2001-09-14T12:00Z",
                  "2012-06-15T11:59Z", "2012-06-15T12:00Z", "2012-07-02T20:00Z",
                  "2012-07-03T17:30Z", "2012-07-04T15:00Z", "2012-07-07T12:00Z",
                  "2012-07-09T12:00Z", "2012-12-24T18:00Z"]:
        for symbol in ("IBM", "AAPL"):
            t = _t(as_of)
            assert read_schedule(events_store, symbol, calendar, t, lookahead) == \
                _window_by_window(events_store, symbol, calendar, t, lookahead), (as_of, symbol)
