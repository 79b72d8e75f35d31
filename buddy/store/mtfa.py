"""Multi-timeframe alignment reads: the last closed bar of each timeframe of a stack with its
trend features, point-in-time (bars filtered by ``buddy.store.bars.closed_by``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np
import pandas as pd

from buddy.store.bars import all_features, bars_closed_by, closed_by
from buddy.store.core import Store

#: The trend features the MTFA read takes from each bar's feature row.
_TREND_FEATURES = ("ema_20", "ema_50", "atr_14", "adx_14")
#: The last closed bar of each requested timeframe, its feature values and the number of
#: closed bars (a forming bar is never read).
_LAST_CLOSED_BARS_SQL = f"""
SELECT b.timeframe, b.ts, b.ts_close, b.close, b.n_closed,
       f.ts IS NOT NULL AS has_features, f.ema_20, f.ema_50, f.atr_14, f.adx_14
FROM (
    SELECT symbol, timeframe, ts, ts_close, close,
           count(*) OVER (PARTITION BY timeframe) AS n_closed
    FROM bars
    WHERE symbol = ? AND list_contains(?, timeframe) AND {closed_by()}
    QUALIFY row_number() OVER (PARTITION BY timeframe ORDER BY ts DESC) = 1
) b
LEFT JOIN ta_features f ON f.symbol = b.symbol AND f.timeframe = b.timeframe AND f.ts = b.ts
"""
#: Every bar of a symbol's stack timeframes closed by the last as_of, with its feature values
#: (the rows _LAST_CLOSED_BARS_SQL picks from), by timeframe and ts.
_STACK_BARS_SQL = f"""
SELECT b.timeframe, b.ts, b.ts_close, b.close,
       f.ts IS NOT NULL AS has_features, f.ema_20, f.ema_50, f.atr_14, f.adx_14
FROM bars b
LEFT JOIN ta_features f ON f.symbol = b.symbol AND f.timeframe = b.timeframe AND f.ts = b.ts
WHERE b.symbol = ? AND list_contains(?, b.timeframe) AND {closed_by("b")}
ORDER BY b.timeframe, b.ts
"""


def last_closed_bars(store: Store, symbol: str, timeframes: Sequence[str], as_of: datetime
                     ) -> pd.DataFrame:
    """Return the last bar of each of ``timeframes`` closed at ``as_of`` (timeframe, ts,
    ts_close, close, n_closed, has_features, ema_20, ema_50, atr_14, adx_14)."""
    return store.query(_LAST_CLOSED_BARS_SQL, [symbol, list(timeframes), as_of])


def stack_bars(store: Store, reads: Sequence[tuple[str, Sequence[str], datetime]]
               ) -> list[pd.DataFrame]:
    """Return, per (symbol, timeframes, as_of), every bar of those timeframes closed by as_of
    with its features (last_closed_bars' columns but n_closed), by timeframe and ts; read in
    one connection."""
    with store.connect(read_only=True) as con:
        return [con.execute(_STACK_BARS_SQL, [symbol, list(timeframes), as_of]).df()
                for symbol, timeframes, as_of in reads]


def stack_frames(store: Store, symbol: str, timeframes: Sequence[str], as_of: datetime
                 ) -> dict[str, pd.DataFrame]:
    """Return, per timeframe, what ``stack_bars`` returns for it (timeframe, ts, ts_close,
    close, has_features, ema_20, ema_50, atr_14, adx_14; bars closed by ``as_of``, by ts),
    from the whole bars and features tables read once per process."""
    out = {}
    for tf in timeframes:
        bars = bars_closed_by(store, symbol, tf, as_of)
        features = all_features(store).series(symbol, tf)
        at = pd.Index(pd.DatetimeIndex(features["ts"])).get_indexer(pd.DatetimeIndex(bars["ts"]))
        frame = pd.DataFrame({"timeframe": bars["timeframe"].to_numpy(object),
                              "ts": bars["ts"], "ts_close": bars["ts_close"],
                              "close": bars["close"].to_numpy(np.float64),
                              "has_features": at >= 0})
        for column in _TREND_FEATURES:
            values = (features[column].to_numpy(np.float64, na_value=np.nan)
                      if column in features else np.full(len(features), np.nan))
            frame[column] = np.where(at >= 0, values[np.maximum(at, 0)] if len(values)
                                     else np.nan, np.nan)
        out[tf] = frame
    return out
