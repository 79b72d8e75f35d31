from __future__ import annotations

import pandas as pd

from buddy.data import sample as sample_module
from buddy.data.calendars import get_calendar
from buddy.data.frames import BARS_COLUMNS, CORPORATE_ACTIONS_COLUMNS, TICKERS_COLUMNS
from buddy.data.sample import SAMPLE_SYMBOLS, load_sample
from buddy.data.validation import validate_bars


def test_sample_has_seven_symbols_in_canonical_layout() -> None:
    sample = load_sample()
    assert sorted(sample.tickers["symbol"]) == sorted(SAMPLE_SYMBOLS)
    assert sorted(sample.bars["symbol"].unique()) == sorted(SAMPLE_SYMBOLS)
    assert list(sample.bars.columns) == list(BARS_COLUMNS)
    assert list(sample.tickers.columns) == list(TICKERS_COLUMNS)
    assert list(sample.corporate_actions.columns) == list(CORPORATE_ACTIONS_COLUMNS)
    assert str(sample.bars["ts"].dtype) == "datetime64[us, UTC]"
    assert str(sample.bars["ts_close"].dtype) == "datetime64[us, UTC]"
    assert str(sample.bars["session"].dtype) == "datetime64[s]"


def test_sample_ranges() -> None:
    bars = load_sample().bars
    ranges = bars.groupby("symbol").agg(first=("session", "min"), last=("session", "max"),
                                        rows=("ts", "size"), timeframe=("timeframe", "first"))
    expected = {
        "AAPL": ("2000-03-01", "2013-03-01", 3270, "1d"),
        "IBM": ("2000-03-01", "2013-03-01", 3270, "1d"),
        "MSFT": ("2000-03-01", "2013-03-01", 3270, "1d"),
        "GOOG": ("2004-08-19", "2013-03-01", 2148, "1d"),
        "SP500": ("1999-01-04", "2018-12-31", 5031, "1d"),
        "NASDAQ": ("1999-01-04", "2018-12-31", 5031, "1d"),
        "EURUSD": ("2017-01-02", "2017-12-29", 6225, "1h"),
    }
    for symbol, (first, last, rows, timeframe) in expected.items():
        row = ranges.loc[symbol]
        assert row["first"] == pd.Timestamp(first), symbol
        assert row["last"] == pd.Timestamp(last), symbol
        assert row["rows"] == rows, symbol
        assert row["timeframe"] == timeframe, symbol


def test_daily_bars_span_the_session_including_early_closes() -> None:
    bars = load_sample().bars
    ibm = bars[bars["symbol"] == "IBM"].set_index("session")
    assert ibm.loc["2012-11-23", "ts"] == pd.Timestamp("2012-11-23 14:30", tz="UTC")
    assert ibm.loc["2012-11-23", "ts_close"] == pd.Timestamp("2012-11-23 18:00", tz="UTC")
    assert ibm.loc["2012-07-05", "ts_close"] == pd.Timestamp("2012-07-05 20:00", tz="UTC")


def test_fx_bars_are_hourly_with_ny_sessions() -> None:
    fx = load_sample().bars.query("symbol == 'EURUSD'")
    assert ((fx["ts_close"] - fx["ts"]) == pd.Timedelta(hours=1)).all()
    first = fx.iloc[0]
    assert first["ts"] == pd.Timestamp("2017-01-01 22:00", tz="UTC")
    assert first["session"] == pd.Timestamp("2017-01-02")
    assert fx["adj_close"].isna().all()


def test_every_sample_series_passes_validation() -> None:
    sample = load_sample()
    for symbol, bars in sample.bars.groupby("symbol"):
        ticker = sample.tickers.set_index("symbol").loc[symbol]
        calendar = get_calendar(ticker["trading_calendar"])
        report = validate_bars(bars, calendar, bars["timeframe"].iloc[0])
        assert report.ok, str(report)


def test_gaps_are_exposed_not_filled() -> None:
    gaps = load_sample().gaps
    assert gaps[["symbol", "session", "expected_bars", "found_bars"]].values.tolist() == [
        ["EURUSD", pd.Timestamp("2017-12-25"), 24, 9]]


def test_ticker_metadata() -> None:
    tickers = load_sample().tickers.set_index("symbol")
    assert tickers.loc["AAPL", "exchange"] == "XNAS"
    assert tickers.loc["IBM", "exchange"] == "XNYS"
    assert (tickers.loc[["AAPL", "IBM", "MSFT", "GOOG"], "benchmark"] == "SP500").all()
    assert tickers.loc["SP500", "asset_class"] == "index"
    assert "NCSA" in tickers.loc["NASDAQ", "licence"]
    assert tickers.loc["EURUSD", "tick_size"] == 0.00001
    assert tickers.loc["EURUSD", "lot_size"] == 1000.0
    assert tickers.loc["EURUSD", "trading_calendar"] == "FX24x5"
    assert "MIT" in tickers.loc["EURUSD", "licence"]


def test_load_sample_returns_independent_copies() -> None:
    first = load_sample()
    first.bars.loc[0, "close"] = -1.0
    assert load_sample().bars.loc[0, "close"] > 0


def test_load_sample_rebuilds_without_its_cache() -> None:
    sample_module._load.cache_clear()
    assert set(load_sample().bars["symbol"]) == set(SAMPLE_SYMBOLS)
