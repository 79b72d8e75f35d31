"""The ContextPack's ``levels`` piece: key levels of the last closed bar, on the as-of basis.

The snapshot is the key_levels row of the last bar with ``ts_close <= as_of``, written by the
key-levels job: the levels as of that bar's close, so prior-day levels and pivots are those in
force for the session that follows it (on intraday bars, the forming session's while it
trades; ``buddy.levels.compute``). When the row is missing (the job has not run, or ran with another
LEVELS_VERSION) it is computed on demand from the series' bars closed by as_of, which gives
the same values (``compute_key_levels`` is point-in-time and prefix-stable); nothing is
written. The requesting user's anchors (``level_anchors``) are added as 'user:<name>'
anchored VWAPs; they never enter the shared rows.

Prices are stored on the bar's own as-traded basis and divided here by the split factor in
force at as_of (``split_factor_as_of`` of the bar's session: the divisor
``buddy.context.builder.market_data`` applies to bars and price-level features), so levels
compare directly with the pack's bars and the trader's prices.

``LevelsProvider`` (the instance ``levels_provider``) implements
``buddy.context.providers.PieceProvider``. Its batch form gives the pieces of many requests:
every bar joined to its key_levels row is read once per process (``all_levels``, kept while
the file is unchanged), each row's last closed bar is found with ``searchsorted`` and its
split divisor computed column-wise, and rows on the same stored bar and basis share one
snapshot. The snapshots of a batch's distinct stored bars are read column by column
(``snapshot_columns``: one ``take`` of their rows, the float divisions over arrays) into
``buddy.levels.columns.LevelColumns``, and the piece is a ``PieceColumn`` over it: per row
the number of its snapshot, whose object is made only when someone asks (the level checks
read the columns instead). Rows computed on demand (no stored row) or carrying the user's
anchors go through the scalar path, once per (user, as_of); their snapshots follow the
stored ones.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from buddy.batch.columns import utc_ns
from buddy.batch.pieces import (
    as_of_datetime,
    as_of_ns,
    groups,
    last_closed,
    per_distinct,
)
from buddy.context.piece_columns import PieceColumn
from buddy.context.pieces import AnchoredVWAP, KeyLevelsSnapshot, PriceLevel
from buddy.context.providers import BatchPieceRequest, BatchPieces, PieceRequest
from buddy.data.calendars import to_session_index
from buddy.data.splits import split_factor_as_of
from buddy.levels.columns import (
    FIXED_PRICES,
    VWAP_BANDS,
    LevelColumns,
    as_utc,
    utc_datetime,
)
from buddy.levels.compute import (
    LEVELS_VERSION,
    LevelAnchor,
    compute_key_levels,
    user_anchor_vwaps,
)
from buddy.store import Store
from buddy.store.bars import symbol_actions
from buddy.store.levels import (
    STORED_NAMES,
    LevelsTable,
    actions_known,
    all_levels,
    anchors_before,
    bars_closed,
    key_levels_row,
    last_closed_bar,
    symbol_first_anchors,
    trading_calendar,
)
from buddy.store.levels import whole_queries as whole_level_queries
from buddy.store.tables import WholeQuery
from buddy.timeframes import Timeframe


@dataclass(frozen=True, slots=True)
class LevelsProvider:
    """The ``levels`` piece's provider: stored key levels, else computed on demand."""

    def __call__(self, request: PieceRequest) -> tuple[KeyLevelsSnapshot | None, str | None]:
        """Return the key-levels snapshot of the request, or None and why it is missing."""
        last_bar = None
        if request.market is not None:
            bars = request.market.bars
            last_bar = (bars["ts"].iloc[-1], bars["session"].iloc[-1])
        return levels_piece(request.store, request.instrument.symbol, request.timeframe,
                            request.as_of, user_id=request.user_id, last_bar=last_bar)

    def batch(self, request: BatchPieceRequest) -> BatchPieces:
        """Return (pieces, reasons) per row: ``levels_batch``."""
        return levels_batch(request)

    def whole_queries(self) -> tuple[WholeQuery, ...]:
        """Return the whole-table queries ``batch`` reads (``tables.share_ahead``)."""
        return whole_level_queries(LEVELS_VERSION)


def levels_piece(store: Store, symbol: str, timeframe: Timeframe, as_of: datetime, *,
                 user_id: str, last_bar: tuple[Any, Any] | None = None
                 ) -> tuple[KeyLevelsSnapshot | None, str | None]:
    """Return ``key_levels_at`` as a provider does: the snapshot, or None and why."""
    snapshot = key_levels_at(store, symbol, timeframe, as_of, user_id=user_id,
                             last_bar=last_bar)
    if snapshot is None:
        return None, (f"no {timeframe} bars of {symbol} closed at or before "
                      f"{pd.Timestamp(as_of).isoformat()}")
    return snapshot, None


def key_levels_at(store: Store, symbol: str, timeframe: Timeframe | str, as_of: datetime, *,
                  user_id: str | None = None, last_bar: tuple[Any, Any] | None = None
                  ) -> KeyLevelsSnapshot | None:
    """Return the key levels of the last ``timeframe`` bar of ``symbol`` closed at ``as_of``,
    on the as-of price basis, with ``user_id``'s anchors; None when no bar has closed.

    ``last_bar`` is (ts, session) of that bar when the caller already knows it.
    """
    tf = Timeframe.parse(timeframe).value
    as_of = pd.Timestamp(as_of).to_pydatetime()
    with store.connect(read_only=True) as con:
        if last_bar is None:
            last_bar = last_closed_bar(con, symbol, tf, as_of)
            if last_bar is None:
                return None
        ts, session = pd.Timestamp(last_bar[0]), last_bar[1]
        stored = key_levels_row(con, symbol, tf, ts.to_pydatetime(), LEVELS_VERSION)
        actions = actions_known(con, symbol, as_of)
        anchors: tuple[LevelAnchor, ...] = ()
        if user_id is not None:
            anchors = tuple(LevelAnchor(name, pd.Timestamp(at).to_pydatetime()) for name, at
                            in anchors_before(con, user_id, symbol, as_of))
        user_vwaps: list[dict[str, Any]] = []
        if stored is None:
            frame = compute_key_levels(bars_closed(con, symbol, tf, as_of), anchors,
                                       actions=actions,
                                       calendar=trading_calendar(con, symbol))
            row = {STORED_NAMES.get(str(k), str(k)): v
                   for k, v in _python_row(frame.iloc[-1]).items()}
        else:
            row = stored
            if anchors:
                start = min(pd.Timestamp(a.anchor_ts) for a in anchors).to_pydatetime()
                bars = bars_closed(con, symbol, tf, as_of, after=start)
                user_vwaps = user_anchor_vwaps(bars, anchors, actions=actions)
    divisor = float(split_factor_as_of([session], actions, as_of)[0]) if len(actions) else 1.0
    return snapshot_from_row(symbol, tf, ts, row, divisor=divisor, extra_vwaps=user_vwaps)


def snapshot_from_row(symbol: str, timeframe: str, ts: Any, row: Mapping[str, Any], *,
                      divisor: float = 1.0, extra_vwaps: Sequence[Mapping[str, Any]] = (),
                      memo: dict[Any, Any] | None = None) -> KeyLevelsSnapshot:
    """Return a KeyLevelsSnapshot from a key_levels row (the table's columns, nested levels as
    Python values; times as timestamps or int64 UTC ns), every price divided by ``divisor``
    (the split factor from the row's basis to the as-of basis).

    ``memo``: a dict shared by the rows of one batch; a support/resistance list stored
    alike on many bars (clusters change only when a swing confirms) then becomes one tuple
    of (immutable) PriceLevels shared by their snapshots.
    """
    def price(value: Any) -> float | None:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return None
        return float(value) / divisor

    pivots = _nested(row.get("pivots")) or {}
    vwaps = [*(_nested(row.get("anchored_vwap_levels")) or ()), *extra_vwaps]
    levels = _nested(row.get("support_resistance")) or ()
    return KeyLevelsSnapshot(
        symbol=symbol, timeframe=str(timeframe), ts=as_utc(ts),
        prior_day_high=price(row.get("prior_day_high")),
        prior_day_low=price(row.get("prior_day_low")),
        prior_day_close=price(row.get("prior_day_close")),
        pivots={method: {name: float(v) / divisor for name, v in values.items()}
                for method, values in pivots.items() if values},
        anchored_vwaps=tuple(AnchoredVWAP(
            anchor=v["anchor"], anchor_ts=as_utc(v["anchor_ts"]), vwap=v["vwap"] / divisor,
            upper_1=v["upper_1"] / divisor, lower_1=v["lower_1"] / divisor,
            upper_2=v["upper_2"] / divisor, lower_2=v["lower_2"] / divisor) for v in vwaps),
        rolling_range_high=price(row.get("rolling_range_high")),
        rolling_range_low=price(row.get("rolling_range_low")),
        support_resistance=_price_levels(levels, divisor, {} if memo is None else memo),
        version=str(row.get("version") or LEVELS_VERSION),
    )


def _price_levels(levels: Sequence[Mapping[str, Any]], divisor: float, memo: dict[Any, Any]
                  ) -> tuple[PriceLevel, ...]:
    """Return the PriceLevels of a support_resistance list, once per distinct list and
    divisor in ``memo``."""
    if not levels:
        return ()
    try:  # every field of the stored struct (price, kind, touches, last_touch) in the key
        # dict.items of a non-dict mapping raises TypeError: the fallback below
        key: Any = (divisor, *map(tuple, map(dict.items, cast(Any, levels))))
        out = memo.get(key)
    except TypeError:  # levels as other mappings, or unhashable values: no sharing
        key, out = None, None
    if out is None:
        out = tuple(PriceLevel(
            price=level["price"] / divisor, kind=level["kind"], touches=int(level["touches"]),
            last_touch=as_utc(level["last_touch"])) for level in levels)
        if key is not None:
            memo[key] = out
    return out


def _python_row(row: pd.Series) -> dict[str, Any]:
    out = {}
    for key, value in row.items():
        out[key] = value.as_py() if hasattr(value, "as_py") else value
    return out


def _nested(value: Any) -> Any:
    # pd.NA: a NULL struct of a row computed on demand (the pivots of a series' first bar);
    # a stored list comes back as a numpy object array, whose truth value is ambiguous
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return list(value) if isinstance(value, np.ndarray) else value




# ---------------------------------------------------------------- snapshots from columns
def utc_datetimes(ns: np.ndarray) -> list[datetime]:
    """Return int64 UTC nanoseconds as the datetimes ``as_utc`` gives (tzinfo ``UTC``), one
    object per distinct value."""
    distinct_ns, inverse = np.unique(np.asarray(ns, dtype=np.int64), return_inverse=True)
    # whole microseconds (every stored time) by arithmetic; anything else as as_utc makes it
    made = [utc_datetime(x) for x in distinct_ns.tolist()]
    return [made[i] for i in inverse.reshape(-1).tolist()]


def _children(column: pa.ChunkedArray | pa.Array) -> tuple[pa.Array, list[pa.Array]]:
    """Return a struct column as one array and its fields with the parent's nulls applied."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    return array, array.flatten()


def _listed(column: pa.ChunkedArray | pa.Array
            ) -> tuple[np.ndarray, dict[str, pa.Array], np.ndarray]:
    """Return a LIST<STRUCT> column as (per row its offset into the elements, ending with
    their count), the elements' fields (element nulls applied), and per element whether any
    field is null."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    lengths = pc.list_value_length(array).fill_null(0).to_numpy(zero_copy_only=False)
    offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
    elements = pc.list_flatten(array)
    fields = dict(zip([f.name for f in elements.type], elements.flatten(), strict=True))
    null = np.zeros(len(elements), dtype=bool)
    for values in fields.values():
        if values.null_count:
            null |= values.is_null().to_numpy(zero_copy_only=False)
    return offsets, fields, null


def _numbered(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Return text ``values`` as (per value the number of its distinct value, -1: NULL;
    the distinct values, object)."""
    encoded = values.dictionary_encode()
    return (encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64),
            np.asarray(encoded.dictionary.to_pylist(), dtype=object))


def _row_has(offsets: np.ndarray, flag: np.ndarray) -> np.ndarray:
    """Return per row whether any of its elements (``offsets``) has ``flag``."""
    counts = np.add.reduceat(np.append(flag, False).astype(np.int64), offsets[:-1]) if len(
        offsets) > 1 else np.zeros(0, dtype=np.int64)
    return (counts > 0) & (np.diff(offsets) > 0)


def snapshots_from_columns(table: pa.Table, divisor: np.ndarray, symbols: Sequence[str],
                           timeframes: Sequence[str]) -> list[KeyLevelsSnapshot]:
    """Return ``snapshot_from_row`` of each row of ``table`` (the ``all_levels`` snapshot
    columns, times as int64 UTC ns) with its ``divisor``, symbol and timeframe, read column
    by column (``snapshot_columns``): the same float divisions and values, equal
    support/resistance lists of one divisor sharing one tuple. A row with a NULL where the
    row form expects a value goes through ``snapshot_from_row`` itself (and fails as it
    fails)."""
    columns = snapshot_columns(table, divisor, symbols, timeframes)
    return [columns.make(j) for j in range(columns.count)]


def snapshot_columns(table: pa.Table, divisor: np.ndarray, symbols: Sequence[str],
                     timeframes: Sequence[str],
                     computed: Sequence[KeyLevelsSnapshot] = ()) -> LevelColumns:
    """Return the rows of ``table`` as ``LevelColumns`` (prices divided by ``divisor`` as
    ``snapshot_from_row`` divides them) followed by the ``computed`` snapshots; a row the
    columns cannot say (a NULL where the row form expects a value) is made by the row form
    now (and fails as it fails)."""
    n = table.num_rows
    divisor = np.asarray(divisor, dtype=np.float64)
    odd = np.zeros(n, dtype=bool)  # rows the row form builds
    bar_ns = table.column("bar_ts")
    odd |= bar_ns.is_null().to_numpy(zero_copy_only=False)
    fixed = np.column_stack([table.column(name).to_numpy() for name in FIXED_PRICES]
                            ).reshape(n, len(FIXED_PRICES)) / divisor[:, None]  # NULL: NaN
    versions = [str(v or LEVELS_VERSION) for v in table.column("version").to_pylist()]
    # pivots: method -> (names, per row its prices, whether the method is there)
    pivots_array, methods = _children(table.column("pivots"))
    pivots: dict[str, tuple[list[str], np.ndarray, np.ndarray]] = {}
    for field, family in zip(pivots_array.type, methods, strict=True):
        valid = family.is_valid().to_numpy(zero_copy_only=False)
        names = [f.name for f in family.type]
        _, values = _children(family)
        for value in values:  # a NULL price of a present method: the row form fails on it
            odd |= valid & value.is_null().to_numpy(zero_copy_only=False)
        matrix = (np.column_stack([v.to_numpy(zero_copy_only=False) for v in values])
                  if values else np.zeros((n, 0))) / divisor[:, None]
        pivots[field.name] = (names, matrix, valid & bool(names))
    # anchored VWAPs, in their stored order
    v_off, v_fields, v_null = _listed(table.column("anchored_vwap_levels"))
    odd |= _row_has(v_off, v_null)
    v_div = np.repeat(divisor, np.diff(v_off))
    bands = np.column_stack([v_fields[name].to_numpy(zero_copy_only=False) / v_div
                             for name in VWAP_BANDS]).reshape(len(v_div), len(VWAP_BANDS))
    # support/resistance clusters
    s_off, s_fields, s_null = _listed(table.column("support_resistance"))
    odd |= _row_has(s_off, s_null)
    s_raw = s_fields["price"].to_numpy(zero_copy_only=False).astype(np.float64)
    # text as numbers into its distinct values (-1: NULL): no Python string per element
    s_kind_number, s_kind_names = _numbered(s_fields["kind"])
    v_anchor_number, v_anchor_names = _numbered(v_fields["anchor"])
    row_memo: dict[Any, Any] = {}
    row_form = {}
    for i in np.flatnonzero(odd).tolist():
        row = table.slice(i, 1).to_pylist()[0]
        row_form[i] = snapshot_from_row(symbols[i], timeframes[i], row["bar_ts"], row,
                                        divisor=float(divisor[i]), memo=row_memo)
    return LevelColumns(
        symbol=list(symbols), timeframe=[str(tf) for tf in timeframes],
        bar_ns=bar_ns.fill_null(0).to_numpy().astype(np.int64), version=versions,
        divisor=divisor, fixed=fixed, pivots=pivots, vwap_offsets=v_off,
        vwap_anchor_number=v_anchor_number, vwap_anchor_names=v_anchor_names,
        vwap_anchor_ns=v_fields["anchor_ts"].fill_null(0).to_numpy().astype(np.int64),
        vwap_bands=bands, sr_offsets=s_off, sr_raw=s_raw,
        sr_price=s_raw / np.repeat(divisor, np.diff(s_off)), sr_kind_number=s_kind_number,
        sr_kind_names=s_kind_names,
        sr_touches=s_fields["touches"].fill_null(0).to_numpy(zero_copy_only=False
                                                              ).astype(np.int64),
        sr_last_ns=s_fields["last_touch"].fill_null(0).to_numpy(zero_copy_only=False
                                                                 ).astype(np.int64),
        usable=~odd, row_form=row_form, computed=tuple(computed))


# ---------------------------------------------------------------------------- batch form
def levels_batch(request: BatchPieceRequest) -> BatchPieces:
    """Batch form of ``levels_provider``: (pieces, reasons) per row, one read per process.

    The pieces are a PieceColumn over ``LevelColumns``: a row on a stored bar without
    anchors of its user gets the snapshot shared by the rows on that bar with the same split
    divisor (read as columns for the distinct stored bars in use only, every series' at
    once: ``snapshot_columns``); other rows go through ``levels_piece``, once per (user,
    as_of), and their snapshots follow the stored ones.
    """
    n = len(request)
    code = np.full(n, -1, dtype=np.int64)
    reasons = np.full(n, None, dtype=object)
    t = as_of_ns(request.intents["as_of"])
    users = request.intents["user_id"].astype(str).to_numpy(object)
    keys = pd.DataFrame({"symbol": request.instrument["symbol"].to_numpy(object),
                         "timeframe": per_distinct(request.intents["timeframe"],
                                                   lambda v: Timeframe.parse(v).value)})
    table = all_levels(request.store, LEVELS_VERSION)  # every series, once per process
    shared: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    computed: list[KeyLevelsSnapshot] = []
    for (symbol, tf), rows in keys.groupby(["symbol", "timeframe"], sort=False
                                           ).indices.items():
        rows = np.asarray(rows, dtype=np.int64)
        _series_rows(request.store, table, str(symbol), str(tf),
                     symbol_actions(request.store, str(symbol)),
                     symbol_first_anchors(request.store, str(symbol)), rows, t[rows],
                     users[rows], code, reasons, shared, computed)
    columns = _build_shared(table, shared, keys, code, computed)
    return PieceColumn(code, columns.count, columns.make, columns), reasons


def _series_rows(store: Store, table: LevelsTable, symbol: str, tf: str,
                 actions: pd.DataFrame, anchors: pd.DataFrame, rows: np.ndarray,
                 t: np.ndarray, users: np.ndarray, code: np.ndarray, reasons: np.ndarray,
                 shared_out: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
                 computed: list[KeyLevelsSnapshot]) -> None:
    """Set ``code`` and ``reasons`` at ``rows`` (as_of ``t``, ns) of one series: the rows on
    a stored bar without anchors go to ``shared_out`` as (their stored rows of ``table``,
    their split divisors, the rows) for one column-wise read over the batch
    (``_build_shared``); the others are computed on demand, once per (user, as_of): a row
    with a snapshot gets -2 - its number in ``computed``, a row without one -1 and the
    reason."""
    a, b = table.rows.span(symbol, tf)
    # each row's last bar with ts_close <= as_of: nothing later is read
    position, _ = last_closed(table.bar_ts[a:b], table.ts_close[a:b], t)
    stored = np.append(table.stored[a:b], False)[position]
    anchored = np.zeros(len(t), dtype=bool)
    if len(anchors):  # most series have no user's anchors: no per-user lookup then
        user_codes, user_ids = pd.factorize(users)
        first_anchor = np.full(len(user_ids) + 1, np.iinfo(np.int64).max, dtype=np.int64)
        first_anchor[pd.Index(user_ids).get_indexer(anchors["user_id"])] = utc_ns(
            anchors["first_anchor"])  # users of other rows land on the spare last slot
        anchored = t > first_anchor[user_codes]
    shared = np.flatnonzero(stored & ~anchored)
    if len(shared):
        at = position[shared]
        divisor = split_divisors(table.session[a:b][at], actions, t[shared])
        shared_out.append((a + at, divisor, rows[shared]))
    others = np.flatnonzero(~(stored & ~anchored))
    if len(others):  # no bar, no stored row or the user's anchors: the scalar path
        user_codes, _ = pd.factorize(users[others])
        codes, first = groups(np.column_stack([t[others], user_codes]))
        timeframe = Timeframe.parse(tf)
        made = np.full(len(first), -1, dtype=np.int64)
        why = np.full(len(first), None, dtype=object)
        for u, j in enumerate(others[first].tolist()):
            piece, why[u] = levels_piece(store, symbol, timeframe, as_of_datetime(int(t[j])),
                                         user_id=str(users[j]))
            if piece is not None:
                made[u] = -2 - len(computed)
                computed.append(piece)
        code[rows[others]] = made[codes]
        reasons[rows[others]] = why[codes]


def _build_shared(table: LevelsTable, shared: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
                  keys: pd.DataFrame, code: np.ndarray, computed: list[KeyLevelsSnapshot]
                  ) -> LevelColumns:
    """Return the LevelColumns of the distinct (stored row, divisor) pairs of every series
    (``snapshot_columns`` over one ``take``) followed by the ``computed`` snapshots, and set
    ``code`` of the rows that share each (``keys``: each row's symbol and timeframe); the
    rows computed on demand (-2 - k) become the number after the stored ones."""
    at = np.concatenate([s[0] for s in shared]) if shared else np.zeros(0, dtype=np.int64)
    divisor = np.concatenate([s[1] for s in shared]) if shared else np.zeros(0)
    rows = np.concatenate([s[2] for s in shared]) if shared else np.zeros(0, dtype=np.int64)
    # hashed, not sorted: the divisor's bits, so equal means bit for bit
    codes, first = groups(np.column_stack([at, divisor.view(np.int64)]))
    made_rows = rows[first]
    symbols = keys["symbol"].to_numpy(object)[made_rows].tolist()
    timeframes = keys["timeframe"].to_numpy(object)[made_rows].tolist()
    columns = snapshot_columns(table.rows.take(at[first]), divisor[first], symbols,
                               timeframes, computed)
    on_computed = code <= -2
    code[on_computed] = len(columns) + (-2 - code[on_computed])
    code[rows] = codes
    return columns


def split_divisors(sessions: Any, actions: pd.DataFrame, as_of: np.ndarray) -> np.ndarray:
    """Return per row the divisor from its bar's ``sessions`` basis to its ``as_of`` basis
    (ns): ``split_factor_as_of`` column-wise, multiplying the same ratios in the same order
    (latest split first), so each value is bit for bit the scalar one."""
    divisor = np.ones(len(as_of), dtype=np.float64)
    splits = actions[actions["action"] == "split"] if len(actions) else actions
    if not len(splits):
        return divisor
    session_s = to_session_index(sessions).asi8
    as_of_s = to_session_index(pd.DatetimeIndex(as_of, tz="UTC").tz_localize(None)).asi8
    ex_s = to_session_index(splits["ex_date"]).asi8
    ratios = splits["ratio"].to_numpy(np.float64)
    for j in np.argsort(ex_s, kind="stable")[::-1]:
        applies = (ex_s[j] <= as_of_s) & (session_s < ex_s[j])
        divisor = np.where(applies, divisor * ratios[j], divisor)
    return divisor


levels_provider = LevelsProvider()
