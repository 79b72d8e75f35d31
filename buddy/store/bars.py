"""Bars in the store: the point-in-time filter (written once here) and the whole-series
reads the jobs, the catalogue and the command line make.

A bar is visible as of t only when it was complete by t: ``ts_close <= as_of``. Every read of
bars as of a moment builds its filter with ``closed_by``, so the rule lives in one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: buddy.store.core imports this module
    import pandas as pd

    from buddy.store.core import Store


def closed_by(alias: str | None = None) -> str:
    """Return the point-in-time filter on bars, ``ts_close <= ?`` (bind as_of, UTC), for the
    bars table under ``alias`` (none: unqualified)."""
    return f"{alias}.ts_close <= ?" if alias else "ts_close <= ?"


def bar_spans(store: Store) -> pd.DataFrame:
    """Return each series' first and last bar close (symbol, timeframe, first_close,
    last_ts_close; UTC)."""
    return store.query("SELECT symbol, timeframe, min(ts_close) AS first_close, "
                       "max(ts_close) AS last_ts_close FROM bars GROUP BY ALL")


def last_close(store: Store, symbol: str, timeframe: str) -> Any:
    """Return the close time (UTC) of the series' last bar; NaT/None when it has none."""
    return store.query("SELECT max(ts_close) FROM bars WHERE symbol = ? AND timeframe = ?",
                       [symbol, timeframe]).iloc[0, 0]


def series_bars(store: Store, symbols: Sequence[str] | None, timeframes: Sequence[str] | None
                ) -> pd.DataFrame:
    """Return every bar of the selected series (all when None), by symbol, timeframe, ts."""
    from buddy.store.core import series_where

    where, params = series_where(symbols, timeframes)
    return store.query(f"SELECT * FROM bars {where} ORDER BY symbol, timeframe, ts", params)


def last_bar_ts(store: Store, symbols: Sequence[str] | None, timeframes: Sequence[str] | None
                ) -> pd.DataFrame:
    """Return each selected series' last bar open (symbol, timeframe, last_ts; UTC)."""
    from buddy.store.core import series_where

    where, params = series_where(symbols, timeframes)
    return store.query(f"SELECT symbol, timeframe, max(ts) AS last_ts FROM bars {where} "
                       "GROUP BY ALL ORDER BY symbol, timeframe", params)


_CLOSING_AFTER_SQL = """
WITH keys AS (SELECT unnest(?) AS symbol, unnest(?) AS timeframe,
                     unnest(?)::TIMESTAMPTZ AS first_as_of)
SELECT b.* FROM bars b JOIN keys k USING (symbol, timeframe)
WHERE b.ts_close > k.first_as_of
ORDER BY b.symbol, b.timeframe, b.ts
"""


def bars_closing_after(store: Store, symbols: Sequence[str], timeframes: Sequence[str],
                       first_as_of: Sequence[str]) -> pd.DataFrame:
    """Return, for each (symbols[i], timeframes[i]), its bars closing after first_as_of[i]
    (ISO time with a zone): what comes after a decision, for outcomes only; by symbol,
    timeframe, ts."""
    return store.query(_CLOSING_AFTER_SQL, [list(symbols), list(timeframes), list(first_as_of)])
