from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from buddy.data.calendars import get_calendar
from buddy.data.frames import BARS_COLUMNS
from buddy.data.resample import resample_bars
from buddy.data.sample import load_sample
from buddy.data.synth import synth_universe
from buddy.data.validation import validate_bars

FX = get_calendar("FX24x5")
XNYS = get_calendar("XNYS")


def eurusd() -> pd.DataFrame:
    return load_sample().bars.query("symbol == 'EURUSD'").reset_index(drop=True)


def test_fx_hourly_to_four_hours_to_daily_equals_direct_daily() -> None:
    hourly = eurusd()
    four_hours = resample_bars(hourly, "4h", FX)
    direct = resample_bars(hourly, "1d", FX)
    via_four_hours = resample_bars(four_hours, "1d", FX)
    pd.testing.assert_frame_equal(direct, via_four_hours)
    assert list(direct.columns) == list(BARS_COLUMNS)
    assert len(direct) == 260
    assert validate_bars(four_hours, FX, "4h").ok
    assert validate_bars(direct, FX, "1d").ok


def test_four_hour_buckets_align_to_the_new_york_roll() -> None:
    four_hours = resample_bars(eurusd(), "4h", FX)
    per_session = four_hours.groupby("session").size()
    assert (per_session.drop(pd.Timestamp("2017-12-25")) == 6).all()
    winter = four_hours[four_hours["session"] == pd.Timestamp("2017-01-10")]
    assert winter["ts"].dt.hour.tolist() == [22, 2, 6, 10, 14, 18]
    summer = four_hours[four_hours["session"] == pd.Timestamp("2017-07-10")]
    assert summer["ts"].dt.hour.tolist() == [21, 1, 5, 9, 13, 17]


def test_daily_fx_bar_aggregates_its_session() -> None:
    hourly = eurusd()
    daily = resample_bars(hourly, "1d", FX).set_index("session")
    session = hourly[hourly["session"] == pd.Timestamp("2017-06-14")]
    bar = daily.loc["2017-06-14"]
    assert bar["open"] == session["open"].iloc[0]
    assert bar["close"] == session["close"].iloc[-1]
    assert bar["high"] == session["high"].max()
    assert bar["low"] == session["low"].min()
    assert bar["volume"] == pytest.approx(session["volume"].sum())
    assert bar["ts"] == pd.Timestamp("2017-06-13 21:00", tz="UTC")
    assert bar["ts_close"] == pd.Timestamp("2017-06-14 21:00", tz="UTC")


def test_forming_final_bucket_is_dropped() -> None:
    hourly = eurusd()
    cut = hourly[hourly["ts"] < pd.Timestamp("2017-12-29 19:00", tz="UTC")]
    daily = resample_bars(cut, "1d", FX)
    assert daily["session"].max() == pd.Timestamp("2017-12-28")
    four_hours = resample_bars(cut, "4h", FX)
    assert four_hours["ts_close"].max() == pd.Timestamp("2017-12-29 18:00", tz="UTC")
    assert (four_hours["ts_close"] <= cut["ts_close"].max()).all()


def test_weekly_bars_follow_iso_weeks_of_sessions() -> None:
    daily = load_sample().bars.query("symbol == 'AAPL'").reset_index(drop=True)
    weekly = resample_bars(daily, "1w", XNYS)
    assert validate_bars(weekly, XNYS, "1w").ok
    christmas = weekly.set_index("session").loc["2012-12-28"]
    days = daily[(daily["session"] >= "2012-12-24") & (daily["session"] <= "2012-12-28")]
    assert christmas["ts"] == pd.Timestamp("2012-12-24 14:30", tz="UTC")
    assert christmas["ts_close"] == pd.Timestamp("2012-12-28 21:00", tz="UTC")
    assert christmas["open"] == days["open"].iloc[0]
    assert christmas["close"] == days["close"].iloc[-1]
    assert christmas["volume"] == days["volume"].sum()
    good_friday_week = weekly[weekly["ts"].dt.strftime("%Y-%m-%d") == "2012-04-02"]
    assert good_friday_week["session"].iloc[0] == pd.Timestamp("2012-04-05")
    # the data starts on Wednesday 2000-03-01: that week is incomplete and dropped
    assert weekly["session"].min() == pd.Timestamp("2000-03-10")
    assert weekly["session"].max() == pd.Timestamp("2013-03-01")


def test_xnys_hourly_to_four_hours_cuts_the_last_bucket_at_the_close() -> None:
    hourly = synth_universe(2, 0.1, "1h", seed=5, calendar="XNYS").bars
    four_hours = resample_bars(hourly, "4h", XNYS)
    assert validate_bars(four_hours, XNYS, "4h").ok
    first = four_hours[four_hours["session"] == four_hours["session"].iloc[0]]
    first = first[first["symbol"] == "SYN0001"]
    assert (first["ts_close"] - first["ts"]).tolist() == [pd.Timedelta(hours=4),
                                                          pd.Timedelta(hours=2.5)]


def test_target_must_be_coarser() -> None:
    with pytest.raises(ValueError, match="coarser"):
        resample_bars(eurusd(), "1h", FX)
    daily = resample_bars(eurusd(), "1d", FX)
    with pytest.raises(ValueError, match="coarser"):
        resample_bars(daily, "4h", FX)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), drop=st.lists(st.integers(0, 400), max_size=20))
def test_property_resampling_conserves_volume_and_extremes(seed: int, drop: list[int]) -> None:
    hourly = synth_universe(1, 0.05, "1h", seed=seed).bars
    hourly = hourly.drop(index=[i for i in set(drop) if 0 < i < len(hourly) - 1])
    daily = resample_bars(hourly, "1d", FX)
    kept = hourly[hourly["session"].isin(daily["session"])]
    assert daily["volume"].sum() == pytest.approx(kept["volume"].sum())
    assert daily["high"].max() == kept["high"].max()
    assert daily["low"].min() == kept["low"].min()
    assert np.all(daily["high"].to_numpy() >= daily[["open", "close"]].max(axis=1).to_numpy())
