from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from buddy.data.calendars import get_calendar
from buddy.data.frames import BARS_COLUMNS
from buddy.data.importer import read_bars_file
from buddy.data.sample import load_sample
from buddy.data.validation import BarValidationError

XNYS = get_calendar("XNYS")


def daily_table() -> pd.DataFrame:
    sessions = XNYS.sessions("2012-12-17", "2013-01-04")
    count = len(sessions)
    close = np.linspace(10.0, 12.0, count)
    return pd.DataFrame({
        "Date": sessions.strftime("%Y-%m-%d"),
        "Open": close - 0.1,
        "HIGH": close + 0.3,
        "low": close - 0.3,
        "Close": close,
        "Volume": np.arange(count, dtype=float) * 100,
        "Adj Close": close / 2,
    })


def test_csv_daily_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "aaa.csv"
    daily_table().to_csv(path, index=False)
    bars = read_bars_file(path, symbol="AAA", timeframe="1d", tz=None, calendar="XNYS")
    assert list(bars.columns) == list(BARS_COLUMNS)
    assert len(bars) == len(daily_table())
    eve = bars.set_index("session").loc["2012-12-24"]
    assert eve["ts"] == pd.Timestamp("2012-12-24 14:30", tz="UTC")
    assert eve["ts_close"] == pd.Timestamp("2012-12-24 18:00", tz="UTC")
    assert bars["adj_close"].tolist() == pytest.approx((daily_table()["Close"] / 2).tolist())
    assert (bars["symbol"] == "AAA").all()
    assert (bars["timeframe"] == "1d").all()


def test_parquet_intraday_round_trip(tmp_path: Path) -> None:
    fx = load_sample().bars.query("symbol == 'EURUSD'").head(300)
    table = fx[["ts", "open", "high", "low", "close", "volume"]].rename(
        columns={"ts": "Timestamp"})
    path = tmp_path / "eurusd.parquet"
    table.to_parquet(path, index=False)
    bars = read_bars_file(path, symbol="EURUSD", timeframe="1h", tz=None, calendar="FX24x5")
    pd.testing.assert_frame_equal(bars.reset_index(drop=True), fx.reset_index(drop=True))


def test_naive_intraday_timestamps_are_refused_without_tz(tmp_path: Path) -> None:
    path = tmp_path / "naive.csv"
    pd.DataFrame({"datetime": ["2017-01-03 10:00", "2017-01-03 11:00"], "open": [1.0, 1.0],
                  "high": [1.1, 1.1], "low": [0.9, 0.9], "close": [1.0, 1.0],
                  "volume": [1.0, 1.0]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"column 'datetime'.*no timezone.*tz="):
        read_bars_file(path, symbol="X", timeframe="1h", tz=None, calendar="FX24x5")
    bars = read_bars_file(path, symbol="X", timeframe="1h", tz="America/New_York",
                          calendar="FX24x5")
    assert bars["ts"].iloc[0] == pd.Timestamp("2017-01-03 15:00", tz="UTC")


def test_naive_daily_timestamps_with_times_need_tz(tmp_path: Path) -> None:
    path = tmp_path / "daily_times.csv"
    table = daily_table()
    table["Date"] = table["Date"] + " 09:30"
    table.to_csv(path, index=False)
    with pytest.raises(ValueError, match="no timezone"):
        read_bars_file(path, symbol="AAA", timeframe="1d", tz=None, calendar="XNYS")
    bars = read_bars_file(path, symbol="AAA", timeframe="1d", tz="America/New_York",
                          calendar="XNYS")
    assert bars["session"].iloc[0] == pd.Timestamp("2012-12-17")
    assert bars["ts"].iloc[0] == pd.Timestamp("2012-12-17 14:30", tz="UTC")


def test_separate_date_and_time_columns(tmp_path: Path) -> None:
    path = tmp_path / "split.csv"
    pd.DataFrame({"Date": ["2017-01-03", "2017-01-03"], "Time": ["10:00", "11:00"],
                  "Open": [1.0, 1.0], "High": [1.1, 1.1], "Low": [0.9, 0.9],
                  "Close": [1.0, 1.0], "Volume": [1.0, 1.0]}).to_csv(path, index=False)
    bars = read_bars_file(path, symbol="X", timeframe="1h", tz="UTC", calendar="FX24x5")
    assert bars["ts"].tolist() == [pd.Timestamp("2017-01-03 10:00", tz="UTC"),
                                   pd.Timestamp("2017-01-03 11:00", tz="UTC")]


def test_missing_columns_are_named(tmp_path: Path) -> None:
    path = tmp_path / "missing.csv"
    daily_table().drop(columns=["Volume", "low"]).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"missing required column\(s\) low, volume"):
        read_bars_file(path, symbol="AAA", timeframe="1d", tz=None, calendar="XNYS")


def test_unknown_extension_and_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "bars.xlsx"
    path.write_text("nothing")
    with pytest.raises(ValueError, match=r"unknown file extension of 'bars.xlsx'"):
        read_bars_file(path, symbol="AAA", timeframe="1d", tz=None, calendar="XNYS")
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not parquet at all")
    with pytest.raises(ValueError, match=r"could not read .*broken\.parquet"):
        read_bars_file(broken, symbol="AAA", timeframe="1d", tz=None, calendar="XNYS")
    with pytest.raises(ValueError, match="file not found"):
        read_bars_file(tmp_path / "absent.csv", symbol="AAA", timeframe="1d", tz=None,
                       calendar="XNYS")


def test_invalid_rows_raise_naming_rows_and_rules(tmp_path: Path) -> None:
    table = daily_table()
    table.loc[3, "HIGH"] = 1.0
    table.loc[6, "Date"] = "2012-12-25"
    path = tmp_path / "bad.csv"
    table.to_csv(path, index=False)
    with pytest.raises(BarValidationError) as caught:
        read_bars_file(path, symbol="AAA", timeframe="1d", tz=None, calendar="XNYS")
    message = str(caught.value)
    assert "row 3" in message and "HIGH_BELOW_LOW" in message
    assert "row 6" in message and "OUTSIDE_TRADING_CALENDAR" in message


def test_weekly_import_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "w.csv"
    daily_table().to_csv(path, index=False)
    with pytest.raises(ValueError, match="timeframe"):
        read_bars_file(path, symbol="AAA", timeframe="1w", tz=None, calendar="XNYS")


def test_daily_dates_stamped_at_utc_midnight_keep_their_date(tmp_path: Path) -> None:
    table = daily_table()
    table["Date"] = pd.to_datetime(table["Date"]).dt.tz_localize("UTC")
    path = tmp_path / "utc_dates.parquet"
    table.to_parquet(path, index=False)
    bars = read_bars_file(path, symbol="AAA", timeframe="1d", tz=None, calendar="XNYS")
    assert bars["session"].iloc[0] == pd.Timestamp("2012-12-17")
    assert bars["ts"].iloc[0] == pd.Timestamp("2012-12-17 14:30", tz="UTC")


def test_ambiguous_day_month_order_needs_a_time_format(tmp_path: Path) -> None:
    path = tmp_path / "dotted.csv"
    pd.DataFrame({"Time": ["02.01.2017 10:00:00.000", "13.01.2017 10:00:00.000"],
                  "Open": [1.0, 1.0], "High": [1.1, 1.1], "Low": [0.9, 0.9],
                  "Close": [1.0, 1.0], "Volume": [1.0, 1.0]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"column 'Time': day/month order is ambiguous"):
        read_bars_file(path, symbol="X", timeframe="1h", tz="UTC", calendar="FX24x5")
    bars = read_bars_file(path, symbol="X", timeframe="1h", tz="UTC", calendar="FX24x5",
                          time_format="%d.%m.%Y %H:%M:%S.%f")
    assert bars["ts"].dt.strftime("%m-%d").tolist() == ["01-02", "01-13"]


def test_us_dates_with_a_time_format(tmp_path: Path) -> None:
    table = daily_table()
    table["Date"] = pd.to_datetime(table["Date"]).dt.strftime("%-m/%-d/%Y")
    path = tmp_path / "us.csv"
    table.to_csv(path, index=False)
    with pytest.raises(ValueError, match="ambiguous"):
        read_bars_file(path, symbol="AAA", timeframe="1d", tz=None, calendar="XNYS")
    bars = read_bars_file(path, symbol="AAA", timeframe="1d", tz=None, calendar="XNYS",
                          time_format="%m/%d/%Y")
    assert bars["session"].iloc[0] == pd.Timestamp("2012-12-17")
