"""The ContextPack's ``regime`` piece: the regime snapshot of the last bar closed at as_of.

Read from regime_snapshots when the job has stored that bar with the current version; else
computed on demand from the bars closed at as_of (the same computation as the job, for that
bar only: at most one HMM fit, none when the fit in force is stored in regime_models).
Nothing is written: the provider is a read path.

``RegimeProvider`` (the instance ``regime_provider``) implements
``buddy.context.providers.PieceProvider``. Its batch form gives the pieces of many requests:
every bar's times and every stored snapshot are read once per process and matched by bar
(``all_snapshots``, kept while the file is unchanged), each row's last closed bar is found
with ``searchsorted``, and rows on the same stored bar share one snapshot. The pieces are
kept as columns (a ``PieceColumn`` over ``buddy.regime.columns.StoredRegimes``: the stored
rows' columns, converted once per process, which regime_fit reads); a RegimeSnapshot object
is built from its row (``snapshots_from_table``) only when a pack or a scalar caller asks.
Rows whose bar has no current snapshot are computed on demand, once per as_of.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd

from buddy.batch.columns import objects
from buddy.batch.pieces import (
    as_of_datetime,
    as_of_ns,
    groups,
    last_closed,
    per_distinct,
    row_groups,
)
from buddy.context.piece_columns import PieceColumn
from buddy.context.pieces import RegimeSnapshot
from buddy.context.providers import BatchPieceRequest, BatchPieces, PieceRequest
from buddy.regime.columns import StoredColumns, StoredRegimes, stored_columns
from buddy.regime.snapshots import (
    RegimeConfig,
    compute_series,
    incomplete_reason,
    series_snapshot,
    snapshot_from_row,
    stored_fits,
)
from buddy.store import Store
from buddy.store.regime import (
    WHOLE_QUERIES,
    RegimeTable,
    all_snapshots,
    hmm_fits,
    stored_snapshot_at,
)
from buddy.store.tables import WholeQuery
from buddy.timeframes import Timeframe


@dataclass(frozen=True, slots=True)
class RegimeProvider:
    """The ``regime`` piece's provider under ``config``."""

    config: RegimeConfig = field(default_factory=RegimeConfig)

    def __call__(self, request: PieceRequest) -> tuple[RegimeSnapshot | None, str | None]:
        """Return the regime of the request's last closed bar, or None and why it is
        missing."""
        return regime_at(request.store, request.instrument.symbol, request.timeframe,
                         request.as_of, self.config)

    def batch(self, request: BatchPieceRequest) -> BatchPieces:
        """Return (pieces, reasons) per row: ``regime_batch``."""
        return regime_batch(request, self.config)

    def whole_queries(self) -> tuple[WholeQuery, ...]:
        """Return the whole-table queries ``batch`` reads (``tables.share_ahead``)."""
        return WHOLE_QUERIES


def regime_at(store: Store, symbol: str, timeframe: Timeframe | str, as_of: datetime,
              config: RegimeConfig | None = None) -> tuple[RegimeSnapshot | None, str | None]:
    """Return the regime snapshot of the last ``timeframe`` bar of ``symbol`` closed at
    ``as_of``: the stored row, else computed on demand; or None and the reason."""
    config = config or RegimeConfig()
    tf = Timeframe.parse(timeframe).value
    row = stored_snapshot_at(store, symbol, tf, as_of)
    if pd.isna(row["bar_ts"]):
        return None, _no_bars(symbol, tf, as_of)
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
        return None, _no_bars(symbol, tf, as_of)
    features = store.features(symbol, tf, as_of=as_of)
    actions = store.corporate_actions(symbol)
    known = pd.to_datetime(actions["ex_date"]) <= pd.Timestamp(as_of).tz_convert(None)
    models = hmm_fits(store, symbol, tf, config.hmm.model_version, bars["ts"].iloc[-1])
    fitted = stored_fits(models, bars["ts"]) or {}
    series = compute_series(bars, features, actions[known.to_numpy()], config,
                            start=len(bars) - 1, fitted=fitted)
    return series_snapshot(series, config)


def _no_bars(symbol: str, timeframe: str, as_of: datetime) -> str:
    return f"no {timeframe} bars of {symbol} closed at or before {pd.Timestamp(as_of).isoformat()}"


# ---------------------------------------------------------------------------- batch form

def regime_batch(request: BatchPieceRequest, config: RegimeConfig | None = None
                 ) -> BatchPieces:
    """Batch form of ``regime_provider``: (pieces, reasons) per row, one read per process.

    The pieces are a PieceColumn (``buddy.regime.columns.StoredRegimes``): rows on the same
    stored bar share one distinct snapshot, read as columns of the whole table and built as
    an object only when asked (a stored row still warming up gives every row on it the same
    reason); rows whose bar has no snapshot of the current version are computed on demand by
    ``compute_regime_at``, once per distinct as_of.
    """
    config = config or RegimeConfig()
    n = len(request)
    code = np.full(n, -1, dtype=np.int64)
    reasons = np.empty(n, dtype=object)  # None on every row until set
    t = as_of_ns(request.intents["as_of"])
    series = row_groups(request.instrument["symbol"].to_numpy(object),
                        per_distinct(request.intents["timeframe"],
                                     lambda v: Timeframe.parse(v).value))
    table = all_snapshots(request.store)  # every series, read once per process
    stored = stored_columns(table, _STORED)
    bars = _StoredBars()
    computed: list[RegimeSnapshot] = []
    version = config.version  # a hash of the config: once per batch
    for (symbol, tf), rows in series.items():
        rows = np.asarray(rows, dtype=np.int64)
        _series_rows(request, config, version, table, str(symbol), str(tf), rows, t[rows],
                     code, reasons, bars, computed)
    snapshot_rows = table.snapshot[np.concatenate(bars.parts)] if bars.parts else np.zeros(
        0, np.int64)
    regimes = StoredRegimes(stored, snapshot_rows, computed)
    # codes of computed snapshots were counted from 0: they follow the stored ones
    code = np.where(code <= -2, len(snapshot_rows) + (-2 - code), code)
    incomplete = objects(regimes.incomplete())
    if len(incomplete):
        on_stored = (code >= 0) & (code < len(snapshot_rows))
        # a stored row still warming up: asked once per distinct row
        warms = np.array([w is not None for w in incomplete.tolist()], dtype=bool)
        warming = on_stored & warms[np.where(on_stored, code, 0)]
        reasons[warming] = incomplete[code[warming]]
        code[warming] = -1
    return PieceColumn(code, len(snapshot_rows) + len(computed), regimes.make,
                       regimes), reasons


class _StoredBars:
    """The batch's distinct stored bars (rows of the table), series after series."""

    def __init__(self) -> None:
        self.parts: list[np.ndarray] = []
        self.count = 0

    def add(self, rows: np.ndarray) -> int:
        """Append a series' distinct stored bars; return the number of the first."""
        first = self.count
        self.parts.append(rows)
        self.count += len(rows)
        return first


#: The whole table's columns, per process (``stored_columns``).
_STORED: dict[int, StoredColumns] = {}


def _series_rows(request: BatchPieceRequest, config: RegimeConfig, version: str,
                 table: RegimeTable, symbol: str, tf: str, rows: np.ndarray, t: np.ndarray,
                 code: np.ndarray, reasons: np.ndarray, bars: _StoredBars,
                 computed: list[RegimeSnapshot]) -> None:
    """Set ``code`` at ``rows`` (as_of ``t``, ns) of one series: rows on a stored bar get
    the number of the bar among the batch's distinct stored bars (appended to ``bars`` as
    rows of ``table``), rows computed on demand -2 - their number in ``computed``, and rows
    without a snapshot -1 with the reason."""
    a, b = table.span(symbol, tf)
    # each row's last bar with ts_close <= as_of: nothing later is read
    position, _ = last_closed(table.bar_ts[a:b], table.ts_close[a:b], t)
    current = np.append(table.of_version(a, b, version), False)
    stored = current[position]  # position -1 (no bar) reads the appended False
    on_stored = np.flatnonzero(stored)
    if len(on_stored):  # one snapshot per stored bar
        codes, first = groups(position[on_stored, None])
        code[rows[on_stored]] = bars.add(a + position[on_stored][first]) + codes
    others = np.flatnonzero(~stored)
    if len(others):  # no bar, or computed on demand: once per as_of
        codes, first = groups(t[others, None])
        made = np.full(len(first), -1, dtype=np.int64)
        why = np.full(len(first), None, dtype=object)
        for u, j in enumerate(others[first].tolist()):
            as_of = as_of_datetime(int(t[j]))
            piece, why[u] = (None, _no_bars(symbol, tf, as_of)) if position[j] < 0 else (
                compute_regime_at(request.store, symbol, tf, as_of, config))
            if piece is not None:
                made[u] = -2 - len(computed)
                computed.append(piece)
        code[rows[others]] = made[codes]
        reasons[rows[others]] = why[codes]


regime_provider = RegimeProvider()
