"""Consolidated key levels: the few levels a trader would mark, each with a strength.

A key-levels snapshot holds some 30 prices (prior day, rolling range, three pivot families,
anchored VWAPs, support/resistance clusters), many of them within a few ticks of each other.
``consolidate`` turns one snapshot into one list:

1. Candidates: prior-day high and low (source 'prior_day'), rolling-range high and low
   ('range'), the R and S levels of ONE pivot family ('pivot'; classic floor pivots by
   default, 'none' for none) and each support/resistance cluster of confirmed swing points
   ('swing'). Lines price swings around rather than stalls at (the pivot P, the prior close,
   the anchored VWAPs and their bands) are means, not levels: entry_quality reads the VWAPs
   in its extension check.
2. Merge: by price, a candidate within ``merge_atr`` x ATR of the first price of the current
   group joins it, so a merged level spans at most that width (without an ATR only equal
   prices merge). Its price is the mean of its members' prices.
3. Strength (documented formula, a count a trader can check):

       strength = sources + TOUCH_WEIGHT x sum over its swing clusters of
                  touches x 0.5 ** (age_bars / TOUCH_HALF_LIFE_BARS)

   ``sources``: how many distinct sources the merged level holds (confluence, 1 to 4: a
   prior-day high that is also a swing cluster and a pivot counts 3); ``touches``: the
   cluster's swing points; ``age_bars``: bars (the timeframe's nominal length) from the
   cluster's latest touch to the snapshot's bar, so a touch loses half its weight every
   TOUCH_HALF_LIFE_BARS bars.
   A lone pivot has strength 1; a prior-day high on a fresh two-touch cluster 3, and so
   does a fresh four-touch cluster alone.

Level checks (entry_quality, missing_scanner) look only at levels of strength at least their
``min_level_strength`` (``DEFAULT_MIN_STRENGTH``); ``level_table`` gives those as padded
arrays over the distinct (snapshot, ATR) pairs of a batch, and ``row_atr`` the ATR each row
is measured in. Prices are on the snapshot's (as-of) basis.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from buddy.context.pieces import KeyLevelsSnapshot
from buddy.levels.nearest import NO_RANK
from buddy.timeframes import Timeframe

if TYPE_CHECKING:
    from buddy.batch.context import BatchContext, Windows

__all__ = [
    "DEFAULT_MERGE_ATR",
    "DEFAULT_MIN_STRENGTH",
    "DEFAULT_PIVOT_METHOD",
    "PIVOT_METHODS",
    "TOUCH_HALF_LIFE_BARS",
    "TOUCH_WEIGHT",
    "ConsolidatedLevel",
    "LevelTable",
    "consolidate",
    "level_table",
    "row_atr",
]

PIVOT_METHODS = ("classic", "fibonacci", "camarilla", "none")
DEFAULT_PIVOT_METHOD = "classic"
DEFAULT_MERGE_ATR = 0.25  # levels closer than this (ATR) are one level
DEFAULT_MIN_STRENGTH = 3.0  # strength a level needs before a level check looks at it
TOUCH_WEIGHT = 0.5  # strength per fresh swing touch
TOUCH_HALF_LIFE_BARS = 60.0  # bars over which a touch loses half its weight
ATR_FALLBACK_BARS = 14


@dataclass(frozen=True, slots=True)
class ConsolidatedLevel:
    """One merged level: its price (mean of its members), span, strength and makeup."""

    price: float
    low: float
    high: float
    strength: float
    sources: tuple[str, ...]  # distinct sources, sorted
    names: tuple[str, ...]  # its members' names, by price
    touches: int  # swing points of its clusters (0: none)
    last_touch: datetime | None

    @property
    def name(self) -> str:
        """Return a readable name: its members' names joined by ' / '."""
        return " / ".join(self.names)


def _candidates(snapshot: KeyLevelsSnapshot, pivot_method: str
                ) -> list[tuple[float, str, str, int, datetime | None]]:
    """Return (price, name, source, touches, last touch) of the snapshot's candidates."""
    out: list[tuple[float, str, str, int, datetime | None]] = []

    def add(value: float | None, name: str, source: str, touches: int = 0,
            last: datetime | None = None) -> None:
        if value is not None and math.isfinite(value):
            out.append((float(value), name, source, touches, last))

    add(snapshot.prior_day_high, "prior-day high", "prior_day")
    add(snapshot.prior_day_low, "prior-day low", "prior_day")
    add(snapshot.rolling_range_high, "range high", "range")
    add(snapshot.rolling_range_low, "range low", "range")
    if pivot_method != "none":
        for name, value in snapshot.pivots.get(pivot_method, {}).items():
            if name != "P":
                add(value, f"{pivot_method} pivot {name}", "pivot")
    for level in snapshot.support_resistance:
        add(level.price, f"{level.kind} cluster ({level.touches} touches)", "swing",
            int(level.touches), level.last_touch)
    return out


def consolidate(snapshot: KeyLevelsSnapshot, atr: float, *,
                pivot_method: str = DEFAULT_PIVOT_METHOD,
                merge_atr: float = DEFAULT_MERGE_ATR) -> tuple[ConsolidatedLevel, ...]:
    """Return the snapshot's levels merged within ``merge_atr`` x ``atr`` (price), by price,
    each with its strength (module docstring)."""
    if pivot_method not in PIVOT_METHODS:
        raise ValueError(f"pivot_method: must be one of {PIVOT_METHODS} (got {pivot_method!r})")
    found = sorted(_candidates(snapshot, pivot_method), key=lambda c: (c[0], c[1]))
    width = merge_atr * atr if atr is not None and math.isfinite(atr) and atr > 0 else 0.0
    try:
        bar_s = Timeframe.parse(snapshot.timeframe).nominal.total_seconds()
    except ValueError:
        bar_s = 86_400.0
    groups: list[list[tuple[float, str, str, int, datetime | None]]] = []
    for candidate in found:
        if groups and candidate[0] - groups[-1][0][0] <= width:
            groups[-1].append(candidate)
        else:
            groups.append([candidate])
    out = []
    for members in groups:
        prices = [m[0] for m in members]
        sources = tuple(sorted({m[2] for m in members}))
        touch_weight = 0.0
        lasts = [m[4] for m in members if m[4] is not None]
        for _, _, _, touches, last in members:
            if touches and last is not None:
                age = max(0.0, (pd.Timestamp(snapshot.ts) - pd.Timestamp(last)).total_seconds()
                          / bar_s)
                touch_weight += touches * 0.5 ** (age / TOUCH_HALF_LIFE_BARS)
        out.append(ConsolidatedLevel(
            price=sum(prices) / len(prices), low=min(prices), high=max(prices),
            strength=round(len(sources) + TOUCH_WEIGHT * touch_weight, 6), sources=sources,
            names=tuple(m[1] for m in members), touches=sum(m[3] for m in members),
            last_touch=max(lasts) if lasts else None))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class LevelTable:
    """The strong consolidated levels of each distinct (snapshot, ATR) pair of a batch,
    padded to one width (NaN prices); ``rank`` orders names alphabetically (ties in distance
    go to the smaller rank)."""

    code: np.ndarray  # row -> table row
    price: np.ndarray  # (pairs, width)
    strength: np.ndarray
    touches: np.ndarray  # 0 where the level has no swing cluster
    rank: np.ndarray  # NO_RANK in the padding
    names: np.ndarray  # object: every name, sorted (rank -> name)

    def name_of(self, rank: np.ndarray) -> np.ndarray:
        """Return the names of levels by rank."""
        return self.names[rank]


def level_table(snapshots: Sequence[Any], code: np.ndarray, atr: np.ndarray, *,
                pivot_method: str, merge_atr: float, min_strength: float) -> LevelTable:
    """Return the levels of strength at least ``min_strength`` for each row (``code``: its
    distinct snapshot, None or another type where there is none; ``atr``: its ATR, price)."""
    atr = np.asarray(atr, dtype=np.float64)
    key = np.column_stack([code.astype(np.float64), np.nan_to_num(atr, nan=-1.0)])
    pairs, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
    found: list[list[ConsolidatedLevel]] = []
    for j in first.tolist():
        snap = snapshots[int(code[j])]
        merged = consolidate(snap, float(atr[j]), pivot_method=pivot_method,
                             merge_atr=merge_atr) if isinstance(snap, KeyLevelsSnapshot) else ()
        found.append([lv for lv in merged if lv.strength >= min_strength - 1e-9])
    names = sorted({lv.name for levels in found for lv in levels})
    rank_of = {name: i for i, name in enumerate(names)}
    width = max((len(levels) for levels in found), default=0)
    shape = (len(pairs), width)
    price, strength = np.full(shape, np.nan), np.full(shape, np.nan)
    touches, rank = np.zeros(shape, dtype=np.int64), np.full(shape, NO_RANK, dtype=np.int64)
    for i, levels in enumerate(found):
        for k, lv in enumerate(levels):
            price[i, k], strength[i, k] = lv.price, lv.strength
            touches[i, k], rank[i, k] = lv.touches, rank_of[lv.name]
    return LevelTable(code=inverse.reshape(-1), price=price, strength=strength,
                      touches=touches, rank=rank, names=np.array(names, dtype=object))


def row_atr(ctx: BatchContext) -> tuple[np.ndarray, np.ndarray]:
    """Return per row the ATR (price; NaN where none) and its source: ``atr_14`` of the last
    bar's features ('ta_features'), else the mean true range of the last 14 bars ('bars'),
    else 'none'."""
    atr = (ctx.latest["atr_14"].to_numpy(np.float64, copy=True) if "atr_14" in
           ctx.latest.columns else np.full(len(ctx.latest), np.nan))
    with np.errstate(invalid="ignore"):
        from_features = np.isfinite(atr) & (atr > 0)
        fallback = np.flatnonzero(~from_features)
        if len(fallback):
            atr[fallback] = _bars_atr(ctx.bars.take(fallback))
        has_atr = atr > 0
    atr[~has_atr] = np.nan
    source = np.where(from_features, "ta_features",
                      np.where(has_atr, "bars", "none")).astype(object)
    return atr, source


def _bars_atr(bars: Windows) -> np.ndarray:
    """Return the mean true range of each window's last ATR_FALLBACK_BARS bars (NaN with
    fewer than two bars): the ATR when the features have none."""
    k = ATR_FALLBACK_BARS + 1
    high, low, close = (bars.tail(name, k) for name in ("high", "low", "close"))
    prev = close[:, :-1]
    true_range = np.maximum(high[:, 1:], prev) - np.minimum(low[:, 1:], prev)
    count = np.minimum(bars.lengths, k) - 1
    valid = np.arange(k - 1)[None, :] >= (k - 1 - count)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(valid, true_range, 0.0).sum(axis=1) / count
    mean[count < 1] = np.nan
    return mean
