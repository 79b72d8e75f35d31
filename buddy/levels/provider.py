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
snapshot.
Rows computed on demand (no stored row) or carrying the user's anchors go through the scalar
path, once per (user, as_of).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, cast

import numpy as np
import pandas as pd

from buddy.batch.columns import utc_ns
from buddy.batch.pieces import (
    as_of_datetime,
    as_of_ns,
    groups,
    last_closed,
    per_distinct,
    spread,
)
from buddy.context.pieces import AnchoredVWAP, KeyLevelsSnapshot, PriceLevel
from buddy.context.providers import BatchPieceRequest, BatchPieces, PieceRequest
from buddy.data.calendars import to_session_index
from buddy.data.splits import split_factor_as_of
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
        symbol=symbol, timeframe=str(timeframe), ts=_utc(ts),
        prior_day_high=price(row.get("prior_day_high")),
        prior_day_low=price(row.get("prior_day_low")),
        prior_day_close=price(row.get("prior_day_close")),
        pivots={method: {name: float(v) / divisor for name, v in values.items()}
                for method, values in pivots.items() if values},
        anchored_vwaps=tuple(AnchoredVWAP(
            anchor=v["anchor"], anchor_ts=_utc(v["anchor_ts"]), vwap=v["vwap"] / divisor,
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
            last_touch=_utc(level["last_touch"])) for level in levels)
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


@lru_cache(maxsize=65_536)  # snapshots repeat the same anchor and touch times
def _utc(value: Any) -> datetime:
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.to_pydatetime()


# ---------------------------------------------------------------------------- batch form
def levels_batch(request: BatchPieceRequest) -> BatchPieces:
    """Batch form of ``levels_provider``: (pieces, reasons) per row, one read per process.

    A row on a stored bar without anchors of its user gets the snapshot shared by the rows
    on that bar with the same split divisor (its row, nested levels included, converted to
    Python for the distinct stored bars in use only); other rows go through
    ``levels_piece``.
    """
    n = len(request)
    pieces = np.full(n, None, dtype=object)
    reasons = np.full(n, None, dtype=object)
    t = as_of_ns(request.intents["as_of"])
    users = request.intents["user_id"].astype(str).to_numpy(object)
    keys = pd.DataFrame({"symbol": request.instrument["symbol"].to_numpy(object),
                         "timeframe": per_distinct(request.intents["timeframe"],
                                                   lambda v: Timeframe.parse(v).value)})
    table = all_levels(request.store, LEVELS_VERSION)  # every series, once per process
    for (symbol, tf), rows in keys.groupby(["symbol", "timeframe"], sort=False
                                           ).indices.items():
        rows = np.asarray(rows, dtype=np.int64)
        _series_rows(request.store, table, str(symbol), str(tf),
                     symbol_actions(request.store, str(symbol)),
                     symbol_first_anchors(request.store, str(symbol)), rows, t[rows],
                     users[rows], pieces, reasons)
    return pieces, reasons


def _series_rows(store: Store, table: LevelsTable, symbol: str, tf: str,
                 actions: pd.DataFrame, anchors: pd.DataFrame, rows: np.ndarray,
                 t: np.ndarray, users: np.ndarray, pieces: np.ndarray, reasons: np.ndarray
                 ) -> None:
    """Fill ``pieces`` and ``reasons`` at ``rows`` (as_of ``t``, ns) of one series."""
    a, b = table.rows.span(symbol, tf)
    # each row's last bar with ts_close <= as_of: nothing later is read
    position, _ = last_closed(table.bar_ts[a:b], table.ts_close[a:b], t)
    stored = np.append(table.stored[a:b], False)[position]
    user_codes, user_ids = pd.factorize(users)
    first_anchor = np.full(len(user_ids) + 1, np.iinfo(np.int64).max, dtype=np.int64)
    first_anchor[pd.Index(user_ids).get_indexer(anchors["user_id"])] = utc_ns(
        anchors["first_anchor"])  # users of other rows land on the spare last slot
    anchored = t > first_anchor[user_codes]
    shared = np.flatnonzero(stored & ~anchored)
    if len(shared):
        at = position[shared]
        divisor = split_divisors(table.session[a:b][at], actions, t[shared])
        codes, first = groups(np.column_stack([at, divisor.view(np.int64)]))
        memo: dict[Any, Any] = {}  # S/R lists repeat from bar to bar: one tuple each
        made = [snapshot_from_row(symbol, tf, row["bar_ts"], row, divisor=float(divisor[j]),
                                  memo=memo)
                for row, j in zip(table.rows.rows(a + at[first]), first, strict=True)]
        spread([(m, None) for m in made], codes, rows[shared], pieces, reasons)
    others = np.flatnonzero(~(stored & ~anchored))
    if len(others):  # no bar, no stored row or the user's anchors: the scalar path
        user_codes, _ = pd.factorize(users[others])
        codes, first = groups(np.column_stack([t[others], user_codes]))
        timeframe = Timeframe.parse(tf)
        computed = [levels_piece(store, symbol, timeframe, as_of_datetime(int(t[j])),
                                 user_id=str(users[j])) for j in others[first]]
        spread(computed, codes, rows[others], pieces, reasons)


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
