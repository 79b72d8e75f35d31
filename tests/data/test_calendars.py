from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from buddy.data.calendars import (
    ExchangeCalendar,
    FxCalendar,
    get_calendar,
    holidays_and_early_closes,
)
from buddy.data.sample import package_file


def utc(*stamps: str) -> pd.Series:
    return pd.Series(pd.to_datetime(list(stamps), utc=True))


def test_get_calendar_is_cached_and_typed() -> None:
    assert get_calendar("XNYS") is get_calendar("XNYS")
    assert isinstance(get_calendar("XNYS"), ExchangeCalendar)
    assert isinstance(get_calendar("fx24x5"), FxCalendar)
    assert get_calendar("FX24x5").name == "FX24x5"
    assert get_calendar("XNYS").tz == "America/New_York"


def test_unknown_calendar_names_the_value() -> None:
    with pytest.raises(ValueError, match="NOPE"):
        get_calendar("NOPE")


def test_exchange_calendar_reaches_back_to_1990() -> None:
    sessions = get_calendar("XNYS").sessions("1990-01-01", "1990-01-10")
    assert sessions[0] == pd.Timestamp("1990-01-02")
    assert sessions.dtype == "datetime64[s]"


def test_xnys_sessions_skip_holidays_and_keep_early_closes() -> None:
    calendar = get_calendar("XNYS")
    sessions = calendar.sessions("2012-12-21", "2012-12-27")
    assert list(sessions.strftime("%m-%d")) == ["12-21", "12-24", "12-26", "12-27"]
    schedule = calendar.session_open_close(sessions)
    assert schedule.loc["2012-12-24", "close"] == pd.Timestamp("2012-12-24 18:00", tz="UTC")
    assert schedule.loc["2012-12-26", "close"] == pd.Timestamp("2012-12-26 21:00", tz="UTC")
    summer = calendar.session_open_close(["2012-07-02"])
    assert summer.iloc[0]["open"] == pd.Timestamp("2012-07-02 13:30", tz="UTC")


def test_xnys_session_of_and_contains_respect_early_close() -> None:
    calendar = get_calendar("XNYS")
    ts = utc("2012-12-24 14:30", "2012-12-24 17:30", "2012-12-24 18:00", "2012-12-25 15:00")
    sessions = calendar.session_of(ts)
    assert sessions.iloc[0] == pd.Timestamp("2012-12-24")
    assert sessions.iloc[1] == pd.Timestamp("2012-12-24")
    assert sessions.iloc[2:].isna().all()
    inside = calendar.contains(ts, ts + pd.Timedelta(minutes=30))
    assert inside.tolist() == [True, True, False, False]
    assert not calendar.contains(utc("2012-12-24 17:30"), utc("2012-12-24 18:30"))[0]


def test_fx_session_around_us_dst_start() -> None:
    calendar = get_calendar("FX24x5")
    ts = utc("2017-03-10 21:00", "2017-03-10 22:00", "2017-03-12 20:00", "2017-03-12 21:00",
             "2017-03-13 20:59")
    sessions = calendar.session_of(ts)
    assert sessions.iloc[0] == pd.Timestamp("2017-03-10")
    assert pd.isna(sessions.iloc[1])  # Friday after 17:00 EST: weekend
    assert pd.isna(sessions.iloc[2])  # Sunday 16:00 EDT: still shut
    assert sessions.iloc[3] == pd.Timestamp("2017-03-13")  # Sunday 17:00 EDT opens Monday
    assert sessions.iloc[4] == pd.Timestamp("2017-03-13")


def test_fx_session_around_us_dst_end() -> None:
    calendar = get_calendar("FX24x5")
    ts = utc("2017-11-03 20:59", "2017-11-03 21:00", "2017-11-05 21:00", "2017-11-05 22:00")
    sessions = calendar.session_of(ts)
    assert sessions.iloc[0] == pd.Timestamp("2017-11-03")
    assert pd.isna(sessions.iloc[1])
    assert pd.isna(sessions.iloc[2])
    assert sessions.iloc[3] == pd.Timestamp("2017-11-06")


def test_fx_open_close_follow_new_york_roll() -> None:
    schedule = get_calendar("FX24x5").session_open_close(
        ["2017-01-10", "2017-07-10", "2017-07-08"])
    assert schedule.iloc[0]["open"] == pd.Timestamp("2017-01-09 22:00", tz="UTC")
    assert schedule.iloc[0]["close"] == pd.Timestamp("2017-01-10 22:00", tz="UTC")
    assert schedule.iloc[1]["open"] == pd.Timestamp("2017-07-09 21:00", tz="UTC")  # Sunday
    assert schedule.iloc[1]["close"] == pd.Timestamp("2017-07-10 21:00", tz="UTC")
    assert schedule.iloc[2].isna().all()  # Saturday is no session


def test_fx_calendar_matches_real_eurusd_weekly_open() -> None:
    table = pd.read_csv(package_file("gym_anytrading",
                                     "datasets/data/FOREX_EURUSD_1H_ASK.csv"))
    ts = pd.Series(pd.to_datetime(table["Time"], format="%d.%m.%Y %H:%M:%S.%f", utc=True))
    calendar = get_calendar("FX24x5")
    assert calendar.contains(ts, ts + pd.Timedelta(hours=1)).all()
    week_open = ts[ts.diff() > pd.Timedelta(hours=24)]
    week_open = week_open[week_open.dt.day_name() == "Sunday"]
    summer = (week_open >= "2017-03-12") & (week_open < "2017-11-05")
    assert set(week_open[summer].dt.hour) == {21}
    christmas_eve = week_open.dt.strftime("%m-%d") == "12-24"
    assert set(week_open[~summer & ~christmas_eve].dt.hour) == {22}


def test_holidays_and_early_closes() -> None:
    events = holidays_and_early_closes("XNYS", "2012-10-01", "2012-12-31")
    holidays = events[events["kind"] == "holiday"]["date"].dt.strftime("%m-%d").tolist()
    assert holidays == ["10-29", "10-30", "11-22", "12-25"]
    early = events[events["kind"] == "early_close"]
    assert early["date"].dt.strftime("%m-%d").tolist() == ["11-23", "12-24"]
    assert (early["close_utc"] == pd.Timestamp("2012-11-23 18:00", tz="UTC")).iloc[0]
    assert events.loc[events["kind"] == "holiday", "close_utc"].isna().all()
    assert holidays_and_early_closes("FX24x5", "2012-01-01", "2012-12-31").empty


def test_session_of_is_vectorised_over_a_million_bars() -> None:
    ts = pd.Series(pd.date_range("2005-01-01", periods=1_000_000, freq="5min", tz="UTC"))
    sessions = get_calendar("XNYS").session_of(ts)
    assert len(sessions) == len(ts)
    inside = np.asarray(sessions.notna())
    assert 0.15 < inside.mean() < 0.25  # 6.5 of 24 hours on about 70% of days
