"""The ContextPack's ``levels`` piece: key levels of the last closed bar, on the as-of basis.

The snapshot is the key_levels row of the last bar with ``ts_close <= as_of``, written by the
key-levels job. When the row is missing (the job has not run, or ran with another
LEVELS_VERSION) it is computed on demand from the series' bars closed by as_of, which gives
the same values (``compute_key_levels`` is point-in-time and prefix-stable); nothing is
written. The requesting user's anchors (``level_anchors``) are added as 'user:<name>'
anchored VWAPs; they never enter the shared rows.

Prices are stored on the bar's own as-traded basis and divided here by the split factor in
force at as_of (``split_factor_as_of`` of the bar's session: the divisor
``buddy.context.builder.market_data`` applies to bars and price-level features), so levels
compare directly with the pack's bars and the trader's prices.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import pandas as pd

from buddy.context.builder import PieceRequest
from buddy.context.pieces import AnchoredVWAP, KeyLevelsSnapshot, PriceLevel
from buddy.data.splits import split_factor_as_of
from buddy.levels.compute import (
    LEVELS_VERSION,
    LevelAnchor,
    compute_key_levels,
    user_anchor_vwaps,
)
from buddy.store import Store
from buddy.timeframes import Timeframe

_LAST_BAR_SQL = ("SELECT ts, session FROM bars WHERE symbol = ? AND timeframe = ? AND "
                 "ts_close <= ? ORDER BY ts DESC LIMIT 1")
_ROW_SQL = ("SELECT * FROM key_levels WHERE symbol = ? AND timeframe = ? AND ts = ? AND "
            "version = ?")
_ACTIONS_SQL = ("SELECT * FROM corporate_actions WHERE symbol = ? AND ex_date <= CAST(? AS "
                "DATE) ORDER BY ex_date")
_ANCHORS_SQL = ("SELECT name, anchor_ts FROM level_anchors WHERE user_id = ? AND symbol = ? "
                "AND anchor_ts < ? ORDER BY name")
_BARS_SQL = "SELECT * FROM bars WHERE symbol = ? AND timeframe = ? AND ts_close <= ? ORDER BY ts"
_BARS_SINCE_SQL = ("SELECT * FROM bars WHERE symbol = ? AND timeframe = ? AND ts_close <= ? "
                   "AND ts_close > ? ORDER BY ts")


def levels_provider(request: PieceRequest) -> tuple[KeyLevelsSnapshot | None, str | None]:
    """Return the key-levels snapshot of the request, or None and why it is missing."""
    last_bar = None
    if request.market is not None:
        bars = request.market.bars
        last_bar = (bars["ts"].iloc[-1], bars["session"].iloc[-1])
    snapshot = key_levels_at(request.store, request.instrument.symbol, request.timeframe,
                             request.as_of, user_id=request.user_id, last_bar=last_bar)
    if snapshot is None:
        return None, (f"no {request.timeframe} bars of {request.instrument.symbol} closed at "
                      f"or before {pd.Timestamp(request.as_of).isoformat()}")
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
            found = con.execute(_LAST_BAR_SQL, [symbol, tf, as_of]).fetchall()
            if not found:
                return None
            last_bar = found[0]
        ts, session = pd.Timestamp(last_bar[0]), last_bar[1]
        row_frame = con.execute(_ROW_SQL, [symbol, tf, ts.to_pydatetime(), LEVELS_VERSION]).df()
        actions = con.execute(_ACTIONS_SQL, [symbol, as_of]).df()
        anchors = ()
        if user_id is not None:
            anchors = tuple(LevelAnchor(name, pd.Timestamp(at).to_pydatetime()) for name, at
                            in con.execute(_ANCHORS_SQL, [user_id, symbol, as_of]).fetchall())
        if row_frame.empty:
            bars = con.execute(_BARS_SQL, [symbol, tf, as_of]).df()
            frame = compute_key_levels(bars, anchors, actions=actions)
            row = _python_row(frame.iloc[-1])
            user_vwaps: list[dict[str, Any]] = []
        else:
            row = row_frame.iloc[0].to_dict()
            user_vwaps = []
            if anchors:
                start = min(pd.Timestamp(a.anchor_ts) for a in anchors).to_pydatetime()
                bars = con.execute(_BARS_SINCE_SQL, [symbol, tf, as_of, start]).df()
                user_vwaps = user_anchor_vwaps(bars, anchors, actions=actions)
    divisor = float(split_factor_as_of([session], actions, as_of)[0]) if len(actions) else 1.0
    return snapshot_from_row(symbol, tf, ts, row, divisor=divisor, extra_vwaps=user_vwaps)


def snapshot_from_row(symbol: str, timeframe: str, ts: Any, row: Mapping[str, Any], *,
                      divisor: float = 1.0, extra_vwaps: Sequence[Mapping[str, Any]] = ()
                      ) -> KeyLevelsSnapshot:
    """Return a KeyLevelsSnapshot from a key_levels row (JSON text or decoded values), every
    price divided by ``divisor`` (the split factor from the row's basis to the as-of basis)."""
    def price(value: Any) -> float | None:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return None
        return float(value) / divisor

    pivots = _decoded(row.get("pivots_json")) or {}
    vwaps = [*(_decoded(row.get("anchored_vwap_levels_json")) or []), *extra_vwaps]
    levels = _decoded(row.get("support_resistance_json")) or []
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
        support_resistance=tuple(PriceLevel(
            price=level["price"] / divisor, kind=level["kind"], touches=int(level["touches"]),
            last_touch=_utc(level["last_touch"])) for level in levels),
        version=str(row.get("version") or LEVELS_VERSION),
    )


def _python_row(row: pd.Series) -> dict[str, Any]:
    out = {}
    for key, value in row.items():
        out[key] = value.as_py() if hasattr(value, "as_py") else value
    return out


def _decoded(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, str):
        return json.loads(value)
    return value


def _utc(value: Any) -> datetime:
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.to_pydatetime()
