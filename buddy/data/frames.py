"""Canonical in-memory frame layouts shared by loaders, jobs and the store.

Every loader returns these columns in this order; the store writes them as they are.

Time conventions
- ``ts`` is the bar's OPEN time, ``ts_close`` the moment the bar was complete and knowable.
  Both are timezone-aware UTC (``datetime64[us, UTC]``). Point-in-time reads filter on
  ``ts_close <= as_of``: a bar still forming at ``as_of`` is never visible.
- ``session`` is the trading session (a calendar date) the bar belongs to: the exchange date for
  stocks and indices, the New York 17:00 roll-over date for FX.

Price conventions
- ``open/high/low/close/volume`` are AS TRADED (unadjusted). Splits live in the
  ``corporate_actions`` table and are applied point-in-time by readers (only splits with
  ``ex_date <= as_of`` are applied), so nothing about a future split leaks into the past.
- ``adj_close`` is the source's own adjusted close when it ships one (it embeds splits and
  dividends from after the bar, so it is kept for reference and never used for features).
"""

from __future__ import annotations

BARS_COLUMNS: tuple[str, ...] = (
    "symbol",  # str
    "timeframe",  # str, a Timeframe value
    "ts",  # datetime64[us, UTC], bar open
    "ts_close",  # datetime64[us, UTC], bar complete
    "session",  # date (datetime64[s] at midnight, no tz) of the trading session
    "open",  # float64
    "high",  # float64
    "low",  # float64
    "close",  # float64
    "volume",  # float64
    "adj_close",  # float64, NaN when the source has none
)

TICKERS_COLUMNS: tuple[str, ...] = (
    "symbol",  # str, primary key
    "name",  # str
    "asset_class",  # 'equity' | 'index' | 'fx' | 'synthetic'
    "exchange",  # str, e.g. 'XNAS', 'XNYS', 'OTC'
    "currency",  # ISO 4217 quote currency
    "sector",  # str or None
    "tick_size",  # float64, minimum price increment
    "lot_size",  # float64, minimum size increment
    "contract_multiplier",  # float64, currency per 1.0 price move per 1 unit of size
    "trading_calendar",  # exchange-calendars name such as 'XNYS', or 'FX24x5'
    "benchmark",  # symbol of the benchmark, or None
    "timezone",  # IANA zone of the exchange
    "source",  # where the data came from
    "licence",  # licence of the data
)

CORPORATE_ACTIONS_COLUMNS: tuple[str, ...] = (
    "symbol",  # str
    "ex_date",  # date: first session trading on the new basis
    "action",  # 'split'
    "ratio",  # float64: new shares per old share (2.0 for a 2-for-1 split)
    "source",  # how it was obtained
)
