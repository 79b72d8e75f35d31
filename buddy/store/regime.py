"""Regimes in the store: ``regime_snapshots`` (one row per bar) and ``regime_models`` (the
walk-forward HMM fits), read point-in-time by the regime provider and whole by the job.

Bars as of a moment are read with ``buddy.store.bars.closed_by`` (``ts_close <= as_of``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from buddy.store.bars import closed_by
from buddy.store.core import Store, series_where
from buddy.store.tables import ArrowSeries, cached, query_arrow, utc_ns_column

#: The last bar closed by as_of and its stored snapshot (NULLs when none).
_STORED_SQL = f"""
WITH last AS (
    SELECT max(ts) AS ts FROM bars WHERE symbol = ? AND timeframe = ? AND {closed_by()}
)
SELECT last.ts AS bar_ts, r.* EXCLUDE (ts) FROM last
LEFT JOIN regime_snapshots r ON r.symbol = ? AND r.timeframe = ? AND r.ts = last.ts
"""
_MODELS_SQL = """
SELECT ts, params_json FROM regime_models
WHERE symbol = ? AND timeframe = ? AND model_version = ? AND ts <= ? ORDER BY ts
"""
_BULK_SQL = """
SELECT {bar_columns}, f.feature_set_version, {feature_columns}
FROM bars b LEFT JOIN ta_features f USING (symbol, timeframe, ts)
{where}
ORDER BY b.symbol, b.timeframe, b.ts
"""


def stored_snapshot_at(store: Store, symbol: str, timeframe: str, as_of: datetime
                       ) -> dict[str, Any]:
    """Return the last bar closed at ``as_of`` (``bar_ts``, NaT when none) with its stored
    regime_snapshots columns (NaN/None when not stored)."""
    found = store.query(_STORED_SQL, [symbol, timeframe, as_of, symbol, timeframe])
    return dict(found.iloc[0].to_dict())


def hmm_fits(store: Store, symbol: str, timeframe: str, model_version: str, until: Any
             ) -> pd.DataFrame:
    """Return the series' stored HMM fits of ``model_version`` made at or before bar
    ``until`` (ts, params_json), by ts."""
    return store.query(_MODELS_SQL, [symbol, timeframe, model_version, until])


def regime_job_inputs(store: Store, symbols: Sequence[str] | None,
                      timeframes: Sequence[str] | None, bar_columns: Sequence[str],
                      feature_columns: Sequence[str], model_version: str
                      ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Return what the regime job reads, in one connection: the selected series' bar columns
    joined to their features (by symbol, timeframe, ts), every corporate action, the last
    stored snapshot per series (symbol, timeframe, last_ts, version) and the stored fits of
    ``model_version`` (symbol, timeframe, ts, params_json)."""
    where, params = series_where(symbols, timeframes)
    # One read connection for every read: opening a DuckDB file costs tens of milliseconds.
    with store.connect(read_only=True) as con:
        frame = con.execute(_BULK_SQL.format(
            bar_columns=", ".join(f"b.{c}" for c in bar_columns),
            feature_columns=", ".join(f"f.{c}" for c in feature_columns), where=where),
            params).df()
        actions = con.execute("SELECT * FROM corporate_actions ORDER BY symbol, ex_date").df()
        done = con.execute("SELECT symbol, timeframe, max(ts) AS last_ts, arg_max(version, ts) "
                           "AS version FROM regime_snapshots GROUP BY ALL").df()
        models = con.execute("SELECT symbol, timeframe, ts, params_json FROM regime_models "
                             "WHERE model_version = ? ORDER BY symbol, timeframe, ts",
                             [model_version]).df()
    return frame, actions, done, models


#: Every stored snapshot and every bar's times, for all series at once, read once per
#: process and matched by (symbol, timeframe, ts) in numpy (a join in SQL costs twice the
#: CPU); callers take each row's last closed bar (ts_close <= as_of): the row _STORED_SQL
#: picks for one as_of. Columns a snapshot does not read are left out (the time of computing
#: and the label, which the snapshot derives).
_ALL_SNAPSHOTS_SQL = """
SELECT * EXCLUDE (computed_at, hmm_state_label) FROM regime_snapshots
ORDER BY symbol, timeframe, ts
"""
_ALL_BAR_TIMES_SQL = """
SELECT symbol, timeframe, ts, ts_close FROM bars ORDER BY symbol, timeframe, ts
"""
#: The whole-table queries of ``all_snapshots`` (``tables.share_ahead``).
WHOLE_QUERIES: tuple[tuple[str, None], ...] = ((_ALL_SNAPSHOTS_SQL, None),
                                               (_ALL_BAR_TIMES_SQL, None))


@dataclass(frozen=True, slots=True)
class RegimeTable:
    """Every bar by series (``span``): bar_ts, ts_close, and the row of its stored snapshot
    in ``snapshots`` (-1 when none) with that snapshot's version (``versions[version]``;
    -1 when none)."""

    spans: dict[tuple[str, str], tuple[int, int]]  # the bars' rows of each series
    bar_ts: np.ndarray  # int64 UTC ns
    ts_close: np.ndarray  # int64 UTC ns
    snapshot: np.ndarray  # int64: row of ``snapshots``, -1 when the bar has none
    version: np.ndarray  # int64 code into ``versions``; -1 when not stored
    versions: list[str]
    snapshots: pa.Table  # regime_snapshots rows by (symbol, timeframe, ts), one chunk

    def span(self, symbol: str, timeframe: str) -> tuple[int, int]:
        """Return the series' [start, stop) bar rows ((0, 0) when it has none)."""
        return self.spans.get((symbol, timeframe), (0, 0))

    def of_version(self, a: int, b: int, version: str) -> np.ndarray:
        """Return per bar of rows [a, b) whether its stored snapshot has ``version``."""
        if version not in self.versions:
            return np.zeros(b - a, dtype=bool)
        return self.version[a:b] == self.versions.index(version)

    def stored(self, bars: np.ndarray) -> pa.Table:
        """Return the snapshot rows of the bars at rows ``bars`` (each must have one)."""
        return self.snapshots.take(pa.array(self.snapshot[bars], pa.int64()))


def all_snapshots(store: Store) -> RegimeTable:
    """Return every bar with its stored regime snapshot, read once per process while the
    file is unchanged (``buddy.store.tables``). Not point-in-time: a row's bar is its last
    with ts_close <= as_of (``buddy.batch.pieces.last_closed``)."""
    def read(store: Store) -> RegimeTable:
        # shared by a run's workers (buddy.store.tables.query_arrow)
        snapshots = query_arrow(store, _ALL_SNAPSHOTS_SQL).combine_chunks()
        bars = query_arrow(store, _ALL_BAR_TIMES_SQL)
        spans = ArrowSeries.of(bars.select(["symbol", "timeframe"])).spans
        bar_ts = utc_ns_column(bars.column("ts"))
        stored = ArrowSeries.of(snapshots.select(["symbol", "timeframe"]))
        snapshot_ts = utc_ns_column(snapshots.column("ts"))
        snapshot = np.full(len(bar_ts), -1, dtype=np.int64)
        for key, (a, b) in spans.items():
            c, d = stored.span(*key)
            if d == c:
                continue
            # both by ts, unique per series: a bar's snapshot is at its ts' insertion point
            at = np.minimum(np.searchsorted(snapshot_ts[c:d], bar_ts[a:b]), d - c - 1)
            snapshot[a:b] = np.where(snapshot_ts[c:d][at] == bar_ts[a:b], c + at, -1)
        # each version text once: the rows hold its number
        encoded = snapshots.column("version").combine_chunks().dictionary_encode()
        codes = np.append(encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
                          .astype(np.int64), -1)  # snapshot -1 reads the appended -1
        return RegimeTable(spans=spans, bar_ts=bar_ts,
                           ts_close=utc_ns_column(bars.column("ts_close")),
                           snapshot=snapshot, version=codes[snapshot],
                           versions=encoded.dictionary.to_pylist(), snapshots=snapshots)

    return cached(store, "regime_snapshots", read)
