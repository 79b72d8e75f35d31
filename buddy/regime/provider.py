"""The ContextPack's ``regime`` piece: the regime snapshot of the last bar closed at as_of.

Read from regime_snapshots when the job has stored that bar with the current version; else
computed on demand from the bars closed at as_of (the same computation as the job, for that
bar only: at most one HMM fit, none when the fit in force is stored in regime_models).
Nothing is written: the provider is a read path.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from buddy.context.builder import PieceRequest
from buddy.context.pieces import RegimeSnapshot
from buddy.regime.snapshots import (
    RegimeConfig,
    compute_series,
    incomplete_reason,
    series_snapshot,
    snapshot_from_row,
    stored_fits,
)
from buddy.store import Store
from buddy.timeframes import Timeframe

STORED_SQL = """
WITH last AS (
    SELECT max(ts) AS ts FROM bars WHERE symbol = ? AND timeframe = ? AND ts_close <= ?
)
SELECT last.ts AS bar_ts, r.* EXCLUDE (ts) FROM last
LEFT JOIN regime_snapshots r ON r.symbol = ? AND r.timeframe = ? AND r.ts = last.ts
"""

MODELS_SQL = """
SELECT ts, params_json FROM regime_models
WHERE symbol = ? AND timeframe = ? AND model_version = ? AND ts <= ? ORDER BY ts
"""


def regime_provider(request: PieceRequest) -> tuple[RegimeSnapshot | None, str | None]:
    """Return the regime of the request's last closed bar, or None and why it is missing."""
    return regime_at(request.store, request.instrument.symbol, request.timeframe,
                     request.as_of)


def regime_at(store: Store, symbol: str, timeframe: Timeframe | str, as_of: datetime,
              config: RegimeConfig | None = None) -> tuple[RegimeSnapshot | None, str | None]:
    """Return the regime snapshot of the last ``timeframe`` bar of ``symbol`` closed at
    ``as_of``: the stored row, else computed on demand; or None and the reason."""
    config = config or RegimeConfig()
    tf = Timeframe.parse(timeframe).value
    found = store.query(STORED_SQL, [symbol, tf, as_of, symbol, tf])
    row = found.iloc[0].to_dict()
    if pd.isna(row["bar_ts"]):
        return None, (f"no {tf} bars of {symbol} closed at or before "
                      f"{pd.Timestamp(as_of).isoformat()}")
    if row.get("version") == config.version:
        row["ts"] = row["bar_ts"]
        reason = incomplete_reason(row)
        return (None, reason) if reason else (snapshot_from_row(row), None)
    return compute_regime_at(store, symbol, tf, as_of, config)


def compute_regime_at(store: Store, symbol: str, timeframe: Timeframe | str, as_of: datetime,
                      config: RegimeConfig | None = None
                      ) -> tuple[RegimeSnapshot | None, str | None]:
    """Compute the regime of the last bar closed at ``as_of`` from the bars, features, splits
    and stored HMM fits known at ``as_of`` only (nothing stored is required)."""
    config = config or RegimeConfig()
    tf = Timeframe.parse(timeframe).value
    bars = store.bars(symbol, tf, as_of=as_of)
    if bars.empty:
        return None, (f"no {tf} bars of {symbol} closed at or before "
                      f"{pd.Timestamp(as_of).isoformat()}")
    features = store.features(symbol, tf, as_of=as_of)
    actions = store.corporate_actions(symbol)
    known = pd.to_datetime(actions["ex_date"]) <= pd.Timestamp(as_of).tz_convert(None)
    models = store.query(MODELS_SQL, [symbol, tf, config.hmm.model_version,
                                      bars["ts"].iloc[-1]])
    fitted = stored_fits(models, bars["ts"]) or {}
    series = compute_series(bars, features, actions[known.to_numpy()], config,
                            start=len(bars) - 1, fitted=fitted)
    return series_snapshot(series, config)
