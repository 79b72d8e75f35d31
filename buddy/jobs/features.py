"""The TA features job: compute ta_features for every (symbol, timeframe) with new bars.

Incremental and idempotent: indicators are recomputed over each series' full history (so EMA
and Wilder seeds are exactly those of a full run and every row equals the point-in-time
value), but only rows for bars newer than the last stored feature row are written. A series
whose stored rows come from another FEATURE_SET_VERSION is rewritten whole. A second run with
no new bars writes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
from tqdm.auto import tqdm

from buddy.features.ta import FEATURE_SET_VERSION, compute_features
from buddy.store import Store
from buddy.store.bars import series_bars


@dataclass(frozen=True, slots=True)
class FeaturesJobResult:
    """What a features run did."""

    series: int  # (symbol, timeframe) pairs examined
    series_updated: int
    rows_written: int


def run_features_job(store: Store, *, symbols: Sequence[str] | None = None,
                     timeframes: Sequence[str] | None = None, progress: bool = True
                     ) -> FeaturesJobResult:
    """Compute and store TA features for new bars; return counts."""
    bars = series_bars(store, symbols, timeframes)
    actions = store.corporate_actions()
    done = store.last_feature_ts()
    done_at = {(r.symbol, r.timeframe): (r.last_ts, r.feature_set_version)
               for r in done.itertuples()}
    pieces = []
    groups = bars.groupby(["symbol", "timeframe"], sort=True)
    for (symbol, timeframe), series in tqdm(groups, total=groups.ngroups, disable=not progress,
                                            desc="features", unit="series"):
        last_ts, version = done_at.get((symbol, timeframe), (None, None))
        if version == FEATURE_SET_VERSION and last_ts is not None and (
            series["ts"].iloc[-1] <= last_ts
        ):
            continue
        features = compute_features(series.reset_index(drop=True),
                                    actions[actions["symbol"] == symbol])
        if version == FEATURE_SET_VERSION and last_ts is not None:
            features = features[features["ts"] > last_ts]
        if len(features):
            features.insert(3, "feature_set_version", FEATURE_SET_VERSION)
            pieces.append(features)
    if not pieces:
        return FeaturesJobResult(series=groups.ngroups, series_updated=0, rows_written=0)
    frame = pd.concat(pieces, ignore_index=True)
    # A series from an older feature set is recomputed whole, so its frame spans every stored
    # row and the range replacement in write_market_data drops them in the same transaction.
    written = store.write_market_data(features=frame).get("ta_features", 0)
    return FeaturesJobResult(series=groups.ngroups, series_updated=len(pieces),
                             rows_written=written)
