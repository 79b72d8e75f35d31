"""Multi-timeframe alignment reads: the last closed bar of each timeframe of a stack with its
trend features, point-in-time (bars filtered by ``buddy.store.bars.closed_by``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

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


@dataclass(frozen=True, slots=True)
class BarTrends:
    """One series' bars by ts with their trend features, as numpy columns: the rows
    ``last_closed_bars`` picks from (its columns but timeframe and n_closed)."""

    ts: np.ndarray  # bar open, int64 UTC ns
    ts_close: np.ndarray  # int64 UTC ns
    close: np.ndarray  # float64
    has_features: np.ndarray  # bool: the bar has a ta_features row
    features: dict[str, np.ndarray]  # each trend feature, float64 (NaN without a row)

    def __len__(self) -> int:
        return len(self.ts)

    def take(self, keep: np.ndarray) -> BarTrends:
        """Return the bars where ``keep`` is True."""
        return BarTrends(self.ts[keep], self.ts_close[keep], self.close[keep],
                         self.has_features[keep],
                         {name: values[keep] for name, values in self.features.items()})

    def record(self, position: int) -> dict[str, Any]:
        """Return bar ``position`` as a ``last_closed_bars`` row without n_closed (ts and
        ts_close as UTC Timestamps, numbers as Python floats; NaN for a missing feature)."""
        return {"ts": pd.Timestamp(int(self.ts[position]), tz="UTC"),
                "ts_close": pd.Timestamp(int(self.ts_close[position]), tz="UTC"),
                "close": float(self.close[position]),
                "has_features": bool(self.has_features[position]),
                **{name: float(values[position]) for name, values in self.features.items()}}


def stack_series(store: Store, symbol: str, timeframes: Sequence[str], as_of: datetime
                 ) -> dict[str, BarTrends]:
    """Return, per timeframe, its bars closed by ``as_of`` with their trend features, by ts,
    from the whole bars and features tables read once per process (each series joined
    once, then cut at as_of)."""
    joined = cached(store, "mtfa:series", lambda s: {})
    cut = np.int64(pd.Timestamp(as_of).tz_convert("UTC").as_unit("ns").value)
    out = {}
    for tf in timeframes:
        if (symbol, tf) not in joined:
            joined[(symbol, tf)] = _bar_trends(store, symbol, tf)
        series = joined[(symbol, tf)]
        keep = series.ts_close <= cut  # closed_by over the read columns
        out[tf] = series if keep.all() else series.take(keep)
    return out


@dataclass(frozen=True, slots=True)
class _Columns:
    """The whole bars and features tables' columns the MTFA read takes, as numpy."""

    bar_ts: np.ndarray
    bar_close_ts: np.ndarray
    close: np.ndarray
    feature_ts: np.ndarray
    features: dict[str, np.ndarray]


def _columns(store: Store) -> _Columns:
    def read(store: Store) -> _Columns:
        bars, features = all_bars(store).frame, all_features(store).frame

        def floats(frame: pd.DataFrame, column: str) -> np.ndarray:
            if column not in frame:
                return np.full(len(frame), np.nan)
            return frame[column].to_numpy(np.float64, na_value=np.nan)

        return _Columns(bar_ts=_utc_ns(bars["ts"]), bar_close_ts=_utc_ns(bars["ts_close"]),
                        close=floats(bars, "close"), feature_ts=_utc_ns(features["ts"]),
                        features={c: floats(features, c) for c in _TREND_FEATURES})

    return cached(store, "mtfa:columns", read)


def _bar_trends(store: Store, symbol: str, tf: str) -> BarTrends:
    """Return one series' every bar joined to its trend features (by ts)."""
    columns = _columns(store)
    a, b = all_bars(store).span(symbol, tf)
    c, d = all_features(store).span(symbol, tf)
    ts, feature_ts = columns.bar_ts[a:b], columns.feature_ts[c:d]
    # both by ts, unique per series: a bar's feature row is at its ts' insertion point
    at = np.searchsorted(feature_ts, ts)
    has = at < len(feature_ts)
    has[has] = feature_ts[at[has]] == ts[has]
    at = np.where(has, at, 0)
    features = {name: np.where(has, values[c:d][at], np.nan) if d > c
                else np.full(len(ts), np.nan) for name, values in columns.features.items()}
    return BarTrends(ts, columns.bar_close_ts[a:b], columns.close[a:b], has, features)


def _utc_ns(values: Any) -> np.ndarray:
    """Return a column of tz-aware times as int64 UTC nanoseconds."""
    return pd.DatetimeIndex(values).tz_convert("UTC").as_unit("ns").asi8
