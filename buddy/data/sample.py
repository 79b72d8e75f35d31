"""The sample universe: real market data read from files that installed packages ship.

Files are read straight from each package's folder (found with ``importlib.util.find_spec``);
the packages themselves are never imported.

- bokeh-sampledata ``_data/stocks.csv.gz``: AAPL, IBM, MSFT daily 2000-03-01 to 2013-03-01, GOOG
  from 2004-08-19 (Google's pre-2014 class A history, GOOGL in the source). Unadjusted OHLCV plus
  the source's adjusted close. Quandl WIKI Prices, public domain. FB is skipped.
- arch ``data/sp500/sp500.csv.gz`` and ``data/nasdaq/nasdaq.csv.gz``: S&P 500 and NASDAQ
  Composite index daily OHLCV 1999-01-04 to 2018-12-31 (the arch documentation does not name
  the vendor; the file has the layout of Yahoo Finance's CSV export).
- gym-anytrading ``datasets/data/FOREX_EURUSD_1H_ASK.csv``: EURUSD 1-hour ask bars for 2017,
  bar open times in UTC.

Daily bars run from the session's open to its close on the XNYS calendar (early closes
included); AAPL, MSFT and GOOG list on Nasdaq (exchange 'XNAS') but use the XNYS calendar, whose
sessions and hours equal XNAS's over 1999-2018 (checked). FX bars use the FX24x5 calendar.

Every frame passes ``validate_bars`` before it is returned. The shipped files break no rule
(checked: no OHLC inconsistency, non-positive price, negative volume, duplicate, disorder or
bar off the calendar in any of the seven series), so no row is corrected or dropped. A package
version whose data broke a rule would make ``load_sample`` raise ``BarValidationError`` naming
the rows; the fix then is a listed correction here, never a silent repair. Missing bars are
reported in ``SampleData.gaps``, never filled (in the shipped files: EURUSD's 2017-12-25
session has 9 of 24 hourly bars).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pandas as pd

from buddy.data.calendars import FX_CALENDAR_NAME, get_calendar, to_utc_index
from buddy.data.frames import BARS_COLUMNS, TICKERS_COLUMNS
from buddy.data.importer import daily_bars, intraday_bars
from buddy.data.splits import detect_splits, empty_corporate_actions
from buddy.data.validation import validate_bars
from buddy.timeframes import Timeframe

__all__ = ["SAMPLE_SYMBOLS", "SampleData", "load_sample", "package_file"]

SAMPLE_SYMBOLS: tuple[str, ...] = ("AAPL", "IBM", "MSFT", "GOOG", "SP500", "NASDAQ", "EURUSD")

_STOCKS_SOURCE = "Quandl WIKI Prices via bokeh-sampledata (bokeh_sampledata/_data/stocks.csv.gz)"
_STOCKS_LICENCE = "Public domain (Quandl WIKI Prices; see bokeh_sampledata/stocks.py)"
_ARCH_LICENCE = ("NCSA Open Source License (University of Illinois/NCSA), Copyright (c) 2017 "
                 "Kevin Sheppard; the arch package's LICENSE.md")
_FX_SOURCE = "gym-anytrading (gym_anytrading/datasets/data/FOREX_EURUSD_1H_ASK.csv), ask prices"
_FX_LICENCE = "MIT (gym-anytrading's LICENSE)"

_STOCKS = {
    # symbol: (name, exchange)
    "AAPL": ("Apple Inc.", "XNAS"),
    "IBM": ("International Business Machines Corporation", "XNYS"),
    "MSFT": ("Microsoft Corporation", "XNAS"),
    "GOOG": ("Google Inc. Class A (GOOGL)", "XNAS"),
}
_INDICES = {
    # symbol: (name, exchange, file under arch/data)
    "SP500": ("S&P 500 Index", "XNYS", "sp500/sp500.csv.gz"),
    "NASDAQ": ("NASDAQ Composite Index", "XNAS", "nasdaq/nasdaq.csv.gz"),
}
_SOURCE_COLUMNS = {"Open": "open", "High": "high", "Low": "low", "Close": "close",
                   "Volume": "volume", "Adj Close": "adj_close"}


@dataclass(frozen=True, slots=True, kw_only=True)
class SampleData:
    """The sample universe in canonical frames, plus the gaps validation found."""

    tickers: pd.DataFrame
    bars: pd.DataFrame
    corporate_actions: pd.DataFrame
    gaps: pd.DataFrame


def package_file(package: str, relative: str) -> Path:
    """Return the path of a data file inside an installed package, without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"package: {package!r} is not installed (needed for {relative!r})")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise ValueError(f"package: {package!r} has no file {relative!r} (looked at {path})")
    return path


def _ticker(symbol: str, name: str, asset_class: str, exchange: str, sector: str | None,
            tick_size: float, lot_size: float, calendar: str, benchmark: str | None,
            timezone: str, source: str, licence: str) -> dict[str, object]:
    return {"symbol": symbol, "name": name, "asset_class": asset_class, "exchange": exchange,
            "currency": "USD", "sector": sector, "tick_size": tick_size, "lot_size": lot_size,
            "contract_multiplier": 1.0, "trading_calendar": calendar, "benchmark": benchmark,
            "timezone": timezone, "source": source, "licence": licence}


def _stock_bars() -> list[pd.DataFrame]:
    table = pd.read_csv(package_file("bokeh_sampledata", "_data/stocks.csv.gz"))
    calendar = get_calendar("XNYS")
    frames = []
    for symbol in _STOCKS:
        rows = table[table["Ticker"] == symbol]
        sessions = pd.to_datetime(rows["Date"], format="%Y-%m-%d")
        prices = rows.rename(columns=_SOURCE_COLUMNS)
        frames.append(daily_bars(symbol, sessions, prices, calendar))
    return frames


def _index_bars() -> list[pd.DataFrame]:
    calendar = get_calendar("XNYS")
    frames = []
    for symbol, (_, _, relative) in _INDICES.items():
        table = pd.read_csv(package_file("arch", f"data/{relative}"))
        sessions = pd.to_datetime(table["Date"], format="%m/%d/%Y")
        frames.append(daily_bars(symbol, sessions, table.rename(columns=_SOURCE_COLUMNS),
                                 calendar))
    return frames


def _fx_bars() -> pd.DataFrame:
    path = package_file("gym_anytrading", "datasets/data/FOREX_EURUSD_1H_ASK.csv")
    table = pd.read_csv(path)
    opens = to_utc_index(pd.to_datetime(table["Time"], format="%d.%m.%Y %H:%M:%S.%f", utc=True))
    return intraday_bars("EURUSD", Timeframe.H1, opens, table.rename(columns=_SOURCE_COLUMNS),
                         get_calendar(FX_CALENDAR_NAME))


def _tickers() -> pd.DataFrame:
    rows = [
        _ticker(symbol, name, "equity", exchange, "Technology", 0.01, 1.0, "XNYS", "SP500",
                "America/New_York", _STOCKS_SOURCE, _STOCKS_LICENCE)
        for symbol, (name, exchange) in _STOCKS.items()
    ]
    rows += [
        _ticker(symbol, name, "index", exchange, None, 0.01, 1.0, "XNYS", None,
                "America/New_York", f"arch package data (arch/data/{relative})", _ARCH_LICENCE)
        for symbol, (name, exchange, relative) in _INDICES.items()
    ]
    rows.append(_ticker("EURUSD", "Euro / US Dollar", "fx", "OTC", None, 0.00001, 1000.0,
                        FX_CALENDAR_NAME, None, "America/New_York", _FX_SOURCE, _FX_LICENCE))
    tickers = pd.DataFrame(rows)[list(TICKERS_COLUMNS)]
    return tickers.astype({"tick_size": "float64", "lot_size": "float64",
                           "contract_multiplier": "float64"})


@lru_cache(maxsize=1)
def _load() -> SampleData:
    stocks = _stock_bars()
    per_symbol = [*stocks, *_index_bars()]
    reports = [validate_bars(frame, get_calendar("XNYS"), Timeframe.D1) for frame in per_symbol]
    fx = _fx_bars()
    reports.append(validate_bars(fx, get_calendar(FX_CALENDAR_NAME), Timeframe.H1))
    for report in reports:
        report.raise_if_invalid()
    bars = pd.concat([*per_symbol, fx], ignore_index=True)[list(BARS_COLUMNS)]
    actions = [detect_splits(symbol, frame, source=f"detected in {_STOCKS_SOURCE}: adj_close/close")
               for symbol, frame in zip(_STOCKS, stocks, strict=True)]
    corporate_actions = pd.concat([empty_corporate_actions(), *actions], ignore_index=True)
    gaps = pd.concat([r.gaps for r in reports], ignore_index=True)
    return SampleData(tickers=_tickers(), bars=bars, corporate_actions=corporate_actions,
                      gaps=gaps)


def load_sample() -> SampleData:
    """Return the sample universe (7 symbols), validated, as fresh copies of cached frames."""
    cached = _load()
    return SampleData(tickers=cached.tickers.copy(), bars=cached.bars.copy(),
                      corporate_actions=cached.corporate_actions.copy(),
                      gaps=cached.gaps.copy())
