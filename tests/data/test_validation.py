from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from buddy.data.calendars import get_calendar
from buddy.data.frames import BARS_COLUMNS
from buddy.data.importer import daily_bars, intraday_bars
from buddy.data.synth import synth_universe
from buddy.data.validation import RULES, BarValidationError, validate_bars

XNYS = get_calendar("XNYS")
FX = get_calendar("FX24x5")


def daily_frame(start: str = "2012-12-03", end: str = "2012-12-31",
                symbol: str = "AAA") -> pd.DataFrame:
    sessions = XNYS.sessions(start, end)
    count = len(sessions)
    prices = pd.DataFrame({"open": np.full(count, 10.0), "high": 11.0, "low": 9.0,
                           "close": 10.5, "volume": 1000.0})
    return daily_bars(symbol, sessions, prices, XNYS)


def hourly_fx_frame() -> pd.DataFrame:
    ts = pd.date_range("2017-01-01 22:00", "2017-01-06 21:00", freq="1h", tz="UTC")
    count = len(ts)
    prices = pd.DataFrame({"open": np.full(count, 1.05), "high": 1.06, "low": 1.04,
                           "close": 1.055, "volume": 5.0})
    return intraday_bars("EURUSD", "1h", ts, prices, FX)


def rules_of(report_frame: pd.DataFrame) -> set[tuple[int, str]]:
    return {(int(r), str(rule)) for r, rule in
            zip(report_frame["row"], report_frame["rule"], strict=True) if pd.notna(r)}


def test_valid_frame_passes() -> None:
    report = validate_bars(daily_frame(), XNYS, "1d")
    assert report.ok
    assert report.violations.empty
    assert report.gaps.empty
    report.raise_if_invalid()
    assert "valid" in str(report)


def test_valid_intraday_frame_passes() -> None:
    report = validate_bars(hourly_fx_frame(), FX, "1h")
    assert report.ok, str(report)
    assert report.gaps.empty


@pytest.mark.parametrize(("column", "value", "rule"), [
    ("high", 8.0, "HIGH_BELOW_LOW"),
    ("high", 10.2, "HIGH_BELOW_OPEN_OR_CLOSE"),
    ("low", 10.3, "LOW_ABOVE_OPEN_OR_CLOSE"),
    ("open", 0.0, "NON_POSITIVE_PRICE"),
    ("close", -1.0, "NON_POSITIVE_PRICE"),
    ("low", np.nan, "NON_FINITE_PRICE"),
    ("close", np.inf, "NON_FINITE_PRICE"),
    ("adj_close", np.inf, "NON_FINITE_PRICE"),
    ("adj_close", -2.0, "NON_POSITIVE_PRICE"),
    ("volume", -5.0, "NEGATIVE_VOLUME"),
    ("volume", np.nan, "NON_FINITE_VOLUME"),
    ("timeframe", "1h", "TIMEFRAME_MISMATCH"),
    ("session", pd.Timestamp("2012-12-05"), "SESSION_MISMATCH"),
])
def test_each_value_rule_is_caught_and_named(column: str, value: object, rule: str) -> None:
    bars = daily_frame()
    bars.loc[7, column] = value
    report = validate_bars(bars, XNYS, "1d")
    assert not report.ok
    assert (7, rule) in rules_of(report.violations)
    with pytest.raises(BarValidationError) as caught:
        report.raise_if_invalid()
    message = str(caught.value)
    assert re.search(rf"row 7\b.*{rule}", message)
    assert caught.value.report is report


def test_duplicate_and_out_of_order_timestamps() -> None:
    bars = daily_frame()
    bars.loc[5, ["ts", "ts_close", "session"]] = bars.loc[3, ["ts", "ts_close", "session"]]
    found = rules_of(validate_bars(bars, XNYS, "1d").violations)
    assert (5, "DUPLICATE_TIMESTAMP") in found
    assert (5, "OUT_OF_ORDER_TIMESTAMP") in found
    assert (3, "DUPLICATE_TIMESTAMP") not in found


def test_order_is_checked_per_symbol() -> None:
    bars = pd.concat([daily_frame(symbol="AAA"), daily_frame(symbol="BBB")], ignore_index=True)
    assert validate_bars(bars, XNYS, "1d").ok
    interleaved = bars.sort_values(["ts", "symbol"]).reset_index(drop=True)
    assert validate_bars(interleaved, XNYS, "1d").ok


def test_naive_timestamps_are_rejected() -> None:
    bars = daily_frame()
    bars["ts"] = bars["ts"].dt.tz_localize(None)
    report = validate_bars(bars, XNYS, "1d")
    assert "NAIVE_TIMESTAMP" in set(report.violations["rule"])
    assert "ts" in set(report.violations["column"])
    assert "NAIVE_TIMESTAMP" in str(report)


def test_missing_column_is_reported() -> None:
    report = validate_bars(daily_frame().drop(columns=["volume"]), XNYS, "1d")
    assert report.violations["rule"].tolist() == ["MISSING_COLUMN"]
    assert report.violations["column"].tolist() == ["volume"]
    with pytest.raises(BarValidationError, match="MISSING_COLUMN"):
        report.raise_if_invalid()


def test_bar_on_a_holiday_is_outside_the_calendar() -> None:
    sessions = pd.DatetimeIndex(["2012-12-24", "2012-12-25", "2012-12-26"])
    prices = pd.DataFrame({"open": [10.0] * 3, "high": 11.0, "low": 9.0, "close": 10.0,
                           "volume": 1.0})
    report = validate_bars(daily_bars("AAA", sessions, prices, XNYS), XNYS, "1d")
    assert rules_of(report.violations) == {(1, "OUTSIDE_TRADING_CALENDAR")}


def test_daily_bar_past_an_early_close_breaks_the_span() -> None:
    bars = daily_frame("2012-12-20", "2012-12-27")
    christmas_eve = bars.index[bars["session"] == pd.Timestamp("2012-12-24")][0]
    bars.loc[christmas_eve, "ts_close"] = pd.Timestamp("2012-12-24 21:00", tz="UTC")
    found = rules_of(validate_bars(bars, XNYS, "1d").violations)
    assert (christmas_eve, "OUTSIDE_TRADING_CALENDAR") in found


def test_intraday_bar_of_wrong_length_and_weekend_bar() -> None:
    bars = hourly_fx_frame()
    bars.loc[10, "ts_close"] = bars.loc[10, "ts"] + pd.Timedelta(minutes=30)
    weekend = bars.iloc[[-1]].copy()
    weekend["ts"] = pd.Timestamp("2017-01-07 12:00", tz="UTC")
    weekend["ts_close"] = pd.Timestamp("2017-01-07 13:00", tz="UTC")
    bars = pd.concat([bars, weekend], ignore_index=True)
    found = rules_of(validate_bars(bars, FX, "1h").violations)
    assert (10, "BAR_SPAN_MISMATCH") in found
    assert (len(bars) - 1, "OUTSIDE_TRADING_CALENDAR") in found


def test_close_not_after_open() -> None:
    bars = hourly_fx_frame()
    bars.loc[4, "ts_close"] = bars.loc[4, "ts"]
    assert (4, "CLOSE_NOT_AFTER_OPEN") in rules_of(validate_bars(bars, FX, "1h").violations)


def test_gaps_are_reported_but_not_errors() -> None:
    bars = daily_frame().drop(index=[4, 5]).reset_index(drop=True)
    report = validate_bars(bars, XNYS, "1d")
    assert report.ok
    assert report.gaps["session"].dt.strftime("%m-%d").tolist() == ["12-07", "12-10"]
    assert report.gaps["found_bars"].tolist() == [0, 0]
    assert "gaps" in str(report)


def test_intraday_gap_counts_bars_in_the_session() -> None:
    bars = hourly_fx_frame().drop(index=[30, 31, 32]).reset_index(drop=True)
    gaps = validate_bars(bars, FX, "1h").gaps
    assert gaps[["expected_bars", "found_bars"]].values.tolist() == [[24, 21]]
    assert gaps["session"].iloc[0] == pd.Timestamp("2017-01-03")


def test_summary_lists_at_most_twenty_rows() -> None:
    bars = daily_frame("2012-01-01", "2012-12-31")
    bars.loc[:49, "volume"] = -1.0
    message = str(validate_bars(bars, XNYS, "1d"))
    listed = [line for line in message.splitlines() if line.strip().startswith("row ")]
    assert len(listed) == 20
    assert "and 30 more" in message


def test_every_rule_code_is_screaming_snake() -> None:
    assert all(re.fullmatch(r"[A-Z][A-Z_]+", code) for code in RULES)


def test_report_columns() -> None:
    report = validate_bars(daily_frame(), XNYS, "1d")
    assert list(report.violations.columns) == ["row", "ts", "rule", "column", "value", "detail"]
    assert list(report.gaps.columns) == ["symbol", "timeframe", "session", "expected_bars",
                                         "found_bars"]


@settings(max_examples=40, deadline=None)
@given(open_=st.floats(0.01, 1e6), close=st.floats(0.01, 1e6),
       high=st.floats(0.01, 1e6), low=st.floats(0.01, 1e6))
def test_property_high_below_low_is_never_accepted(open_: float, close: float, high: float,
                                                   low: float) -> None:
    bars = daily_frame("2012-12-03", "2012-12-05")
    bars.loc[1, ["open", "high", "low", "close"]] = [open_, high, low, close]
    report = validate_bars(bars, XNYS, "1d")
    consistent = low <= min(open_, close) and high >= max(open_, close)
    assert report.ok == consistent
    if high < low:
        assert (1, "HIGH_BELOW_LOW") in rules_of(report.violations)


def test_a_million_rows_validate() -> None:
    universe = synth_universe(400, 10, "1d", seed=3)
    assert len(universe.bars) > 1_000_000
    assert list(universe.bars.columns) == list(BARS_COLUMNS)
    report = validate_bars(universe.bars, XNYS, "1d")
    assert report.ok
