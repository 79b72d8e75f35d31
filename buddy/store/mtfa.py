"""Multi-timeframe alignment reads: the last closed bar of each timeframe of a stack with its
trend features, point-in-time (bars filtered by ``buddy.store.bars.closed_by``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np
import pandas as pd

from buddy.store.bars import all_bars, all_features, closed_by
from buddy.store.core import Store
from buddy.store.tables import cached

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


def last_closed_bars(store: Store, symbol: str, timeframes: Sequence[str], as_of: datetime
                     ) -> pd.DataFrame:
    """Return the last bar of each of ``timeframes`` closed at ``as_of`` (timeframe, ts,
    ts_close, close, n_closed, has_features, ema_20, ema_50, atr_14, adx_14)."""
    return store.query(_LAST_CLOSED_BARS_SQL, [symbol, list(timeframes), as_of])


def stack_frames(store: Store, symbol: str, timeframes: Sequence[str], as_of: datetime
                 ) -> dict[str, pd.DataFrame]:
    """Return, per timeframe, its bars closed by ``as_of`` with their trend features
    (``last_closed_bars``' columns but n_closed: the rows it picks from), by ts,
    from the whole bars and features tables read once per process (each series joined
    once, then cut at as_of)."""
    joined = cached(store, "mtfa:series", lambda s: {})
    cut = np.int64(pd.Timestamp(as_of).tz_convert("UTC").as_unit("ns").value)
    out = {}
    for tf in timeframes:
        if (symbol, tf) not in joined:
            joined[(symbol, tf)] = _series_frame(store, symbol, tf)
        frame, closes = joined[(symbol, tf)]
        keep = closes <= cut  # closed_by over the read columns
        out[tf] = frame if keep.all() else frame[keep].reset_index(drop=True)
    return out


def _series_frame(store: Store, symbol: str, tf: str) -> tuple[pd.DataFrame, np.ndarray]:
    """Return one series' every bar joined to its trend features, and its closes (ns)."""
    bars = all_bars(store).series(symbol, tf)
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
    closes = pd.DatetimeIndex(frame["ts_close"]).tz_convert("UTC").as_unit("ns").asi8
    return frame, closes
