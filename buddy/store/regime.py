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

from buddy.store.bars import closed_by
from buddy.store.core import Store, series_where
from buddy.store.tables import ArrowSeries, cached, utc_ns_column

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


#: Every bar with its stored snapshot (NULLs when none), for all series at once,
#: read once per process; callers take each row's last closed bar (ts_close <= as_of): the
#: row _STORED_SQL picks for one as_of. Columns a snapshot does not read are left out (the
#: time of computing and the label, which the snapshot derives).
_ALL_SERIES_SQL = """
SELECT b.symbol AS bar_symbol, b.timeframe AS bar_timeframe, b.ts AS bar_ts, b.ts_close,
       r.* EXCLUDE (ts, computed_at, hmm_state_label)
FROM bars b
LEFT JOIN regime_snapshots r ON r.symbol = b.symbol AND r.timeframe = b.timeframe
    AND r.ts = b.ts
ORDER BY b.symbol, b.timeframe, b.ts
"""


@dataclass(frozen=True, slots=True)
class RegimeTable:
    """Every bar with its stored snapshot, by series: bar_ts, ts_close and the
    regime_snapshots columns (NULL when not stored) of each bar."""

    rows: ArrowSeries
    bar_ts: np.ndarray  # int64 UTC ns
    ts_close: np.ndarray  # int64 UTC ns
    version: np.ndarray  # object; None when not stored


def all_snapshots(store: Store) -> RegimeTable:
    """Return every bar with its stored regime snapshot (``_ALL_SERIES_SQL``), read once per
    process while the file is unchanged (``buddy.store.tables``). Not point-in-time: a row's
    bar is its last with ts_close <= as_of (``buddy.batch.pieces.last_closed``)."""
    def read(store: Store) -> RegimeTable:
        with store.connect(read_only=True) as con:
            table = con.sql(_ALL_SERIES_SQL).to_arrow_table()
        # spans from the two key columns alone: indexing the whole table would combine
        # every column's chunks once more
        spans = ArrowSeries.of(table.select(["bar_symbol", "bar_timeframe"]), "bar_symbol",
                               "bar_timeframe").spans
        # the rows hand out what a snapshot is built from: times it does not read cost most
        rows = ArrowSeries(table.drop_columns(["bar_symbol", "bar_timeframe", "ts_close"]),
                           spans)
        return RegimeTable(rows=rows,
                           bar_ts=utc_ns_column(table.column("bar_ts")),
                           ts_close=utc_ns_column(table.column("ts_close")),
                           version=np.asarray(table.column("version").to_pylist(),
                                              dtype=object))

    return cached(store, "regime_snapshots", read)
