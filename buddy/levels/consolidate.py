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
is measured in. Prices are on the snapshot's (as-of) basis. Both run one merge over
columns (``_merge``: candidates read once per distinct snapshot, the groups of every
(snapshot, ATR) pair formed column by column); ``consolidate`` is a batch of one. When the
levels piece is kept as columns (the levels provider's ``LevelColumns``, see
``buddy.levels.columns.level_pieces``) the candidates of its stored rows are read from the
columns (the same values, no object made), the others from the objects.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from buddy.batch.columns import distinct
from buddy.context.pieces import KeyLevelsSnapshot
from buddy.levels.columns import FIXED_PRICES, LevelColumns, LevelPieces, utc_datetime
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


#: Sources by bit (a merged level's sources are the OR of its members' bits), in name order.
_SOURCE_BITS: tuple[tuple[str, int], ...] = (("pivot", 4), ("prior_day", 1), ("range", 2),
                                             ("swing", 8))
_POPCOUNT = np.array([bin(i).count("1") for i in range(16)], dtype=np.int64)


@dataclass(frozen=True, slots=True)
class _Merged:
    """The merged levels of distinct (snapshot, ATR) pairs, one entry per group (level),
    pairs in order and each pair's groups by price. ``name``/``last``: each snapshot's
    sorted candidates' names and last touches (snapshot, candidate; ``last`` None when not
    asked for), read through the pair's ``snapshot``, ``first`` and ``members`` (the group's
    candidates are ``first:first + members``)."""

    pair: np.ndarray
    snapshot: np.ndarray  # per pair, its snapshot's row of ``name`` and ``last``
    first: np.ndarray
    members: np.ndarray
    total: np.ndarray  # sum of member prices, added in price order
    low: np.ndarray
    high: np.ndarray
    sources: np.ndarray  # OR of _SOURCE_BITS
    touch_weight: np.ndarray  # sum of touches x 0.5 ** (age / half-life), in price order
    touches: np.ndarray
    name: np.ndarray  # int64 (snapshots, candidates): the name's number in ``vocabulary``
    last: np.ndarray | None  # object (snapshots, candidates)
    vocabulary: np.ndarray  # object: the candidates' names by number

    def strength(self, groups: np.ndarray) -> np.ndarray:
        """Return the strength of ``groups`` (rounded to 1e-6 as ``round`` rounds)."""
        raw = _POPCOUNT[self.sources[groups]] + TOUCH_WEIGHT * self.touch_weight[groups]
        return np.array([round(x, 6) for x in raw.tolist()], dtype=np.float64)

    def names(self, groups: np.ndarray) -> list[tuple[str, ...]]:
        """Return the member names of ``groups``, by price."""
        return [tuple(self.vocabulary[self.name[p, f:f + m]].tolist()) for p, f, m in zip(
            self.snapshot[self.pair[groups]].tolist(), self.first[groups].tolist(),
            self.members[groups].tolist(), strict=True)]


def _bar_seconds(timeframe: str, cache: dict[str, float]) -> float:
    seconds = cache.get(timeframe)
    if seconds is None:
        try:
            seconds = Timeframe.parse(timeframe).nominal.total_seconds()
        except ValueError:
            seconds = 86_400.0
        cache[timeframe] = seconds
    return seconds


def _touch_weight(ts: Any, touches: int, last: Any, bar_s: float) -> float:
    """Return a swing cluster's touch weight (NaN: it adds none)."""
    if not (touches and last is not None):
        return math.nan
    if type(ts) is datetime and type(last) is datetime:
        seconds = (ts - last).total_seconds()  # exactly pandas' (microsecond) Timedelta's
    else:
        seconds = (pd.Timestamp(ts) - pd.Timestamp(last)).total_seconds()
    age = max(0.0, seconds / bar_s)
    return touches * 0.5 ** (age / TOUCH_HALF_LIFE_BARS)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _utc_us(values: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Return microseconds since the epoch of ``values`` and where they are exact UTC
    datetimes (tzinfo ``UTC``: their difference is then the UTC one); once per object."""
    # the objects live in ``values`` throughout, so an id names one object
    codes, ids = pd.factorize(np.fromiter(map(id, values), dtype=np.int64, count=len(values)))
    first = np.zeros(len(ids), dtype=np.int64)
    first[codes[::-1]] = np.arange(len(values))[::-1]
    us = np.zeros(len(ids), dtype=np.int64)
    ok = np.zeros(len(ids), dtype=bool)
    for j, i in enumerate(first.tolist()):
        value = values[i]
        if type(value) is datetime and value.tzinfo is UTC:
            us[j], ok[j] = (value - _EPOCH) // _MICROSECOND, True
    return us[codes], ok[codes]


def _decayed(touches: np.ndarray, ts_us: np.ndarray, last_us: np.ndarray, bar_s: np.ndarray
             ) -> np.ndarray:
    """Return ``_touch_weight`` of swing clusters from their snapshot's and last touch's
    microseconds since the epoch: the same float operations in the same order (the
    microsecond difference over 1e6 is ``timedelta.total_seconds``; the power per value as
    Python computes it)."""
    seconds = (ts_us - last_us).astype(np.float64) / 1e6
    age = seconds / bar_s
    age = np.where(age > 0.0, age, 0.0)  # max(0.0, age): 0.0 for -0.0 and NaN as well
    decay = np.array([0.5 ** x for x in (age / TOUCH_HALF_LIFE_BARS).tolist()],
                     dtype=np.float64)
    return touches * decay


def _touch_weights(snap_ts: np.ndarray, of: np.ndarray, touches: np.ndarray,
                   last: np.ndarray, bar_s: np.ndarray) -> np.ndarray:
    """Return ``_touch_weight`` of each swing cluster (its snapshot's time ``snap_ts[of]``;
    NaN: it adds none), column-wise where both times are UTC datetimes: the same float
    operations in the same order (the microsecond difference over 1e6 is
    ``timedelta.total_seconds``; the power per value as Python computes it)."""
    weight = np.full(len(touches), math.nan)
    last_l = last.tolist()
    has = (touches != 0) & np.fromiter((x is not None for x in last_l), dtype=bool,
                                       count=len(last_l))
    snap_us, snap_ok = _utc_us(snap_ts.tolist())
    ts_us, ts_ok = snap_us[of], snap_ok[of]
    last_us, last_ok = _utc_us(last_l)
    fast = np.flatnonzero(has & ts_ok & last_ok)
    weight[fast] = _decayed(touches[fast], ts_us[fast], last_us[fast], bar_s[fast])
    ts_l = snap_ts.tolist()
    for i in np.flatnonzero(has & ~(ts_ok & last_ok)).tolist():  # other times: one by one
        weight[i] = _touch_weight(ts_l[of[i]], int(touches[i]), last_l[i], float(bar_s[i]))
    return weight


_FIXED = (("prior_day_high", "prior-day high", 1), ("prior_day_low", "prior-day low", 1),
          ("rolling_range_high", "range high", 2), ("rolling_range_low", "range low", 2))
_FIXED_GET = attrgetter(*(field for field, _, _ in _FIXED))
#: The columns of ``LevelColumns.fixed`` that are candidates, in ``_FIXED`` order.
_FIXED_COLUMNS = [FIXED_PRICES.index(field) for field, _, _ in _FIXED]


def _candidate_columns(snapshots: Sequence[KeyLevelsSnapshot] | LevelColumns,
                       pivot_method: str, *, with_last: bool = True
                       ) -> tuple[np.ndarray, ...]:
    """Return the candidates of ``snapshots`` as columns: snapshot number, position in the
    snapshot's list (prior day, range, pivots in their order, swing clusters in theirs),
    price, name (object), source bits, touches, touch weight (NaN: none), last touch
    (object; None throughout unless ``with_last``). Unsorted; a non-finite or missing price
    is no candidate. Of LevelColumns (every snapshot it numbers), the stored rows are read
    from the columns and the others from their objects: the same values."""
    if not isinstance(snapshots, LevelColumns):
        return _object_candidates(snapshots, pivot_method)
    from_columns, as_objects = snapshots.sources()
    parts = [(from_columns, _column_candidates(snapshots, from_columns, pivot_method,
                                               with_last=with_last))]
    if len(as_objects):
        parts.append((as_objects, _object_candidates(
            [snapshots.make(j) for j in as_objects.tolist()], pivot_method)))
    return tuple(np.concatenate([where[part[0]] if c == 0 else part[c]
                                 for where, part in parts])
                 for c in range(len(parts[0][1])))


def _column_candidates(columns: LevelColumns, at: np.ndarray, pivot_method: str, *,
                       with_last: bool) -> tuple[np.ndarray, ...]:
    """Return ``_object_candidates`` of the snapshots of rows ``at`` of ``columns``."""
    n = len(at)
    fixed = columns.fixed[at][:, _FIXED_COLUMNS]
    f_snap, f_pos = np.nonzero(np.isfinite(fixed))
    f_price = fixed[f_snap, f_pos]
    f_name = np.array([name for _, name, _ in _FIXED], dtype=object)[f_pos]
    f_bits = np.array([bits for _, _, bits in _FIXED], dtype=np.int64)[f_pos]
    family = columns.pivots.get(pivot_method) if pivot_method != "none" else None
    names: list[str] = family[0] if family is not None else []
    label = np.array([f"{pivot_method} pivot {key}" for key in names], dtype=object)
    is_level = np.array([key != "P" for key in names], dtype=bool)
    if family is not None and names:
        _, prices, present = family
        k = len(names)
        with_family = np.flatnonzero(present[at])
        p_count = np.where(present[at], k, 0).astype(np.int64)
        p_snap = np.repeat(with_family, k)
        p_pos = np.tile(np.arange(k, dtype=np.int64), len(with_family))
        p_price = prices[at[with_family]].reshape(-1)
    else:
        p_count = np.zeros(n, dtype=np.int64)
        p_snap, p_pos = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        p_price = np.zeros(0)
    keep = np.isfinite(p_price) & is_level[p_pos]
    p_snap, p_pos, p_price = p_snap[keep], p_pos[keep], p_price[keep]
    p_name = label[p_pos]
    p_pos = p_pos + 4
    # swing clusters, after the pivots
    lengths = np.diff(columns.sr_offsets)[at]
    within = np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(
        np.cumsum(lengths) - lengths, lengths)
    element = np.repeat(columns.sr_offsets[at], lengths) + within
    s_snap = np.repeat(np.arange(n, dtype=np.int64), lengths)
    s_price = columns.sr_price[element]
    keep = np.isfinite(s_price)
    s_snap, s_price = s_snap[keep], s_price[keep]
    s_pos = within[keep] + 4 + p_count[s_snap]
    element = element[keep]
    touches = columns.sr_touches[element].astype(np.int64)
    # a label per distinct (kind, touches), as the object path spells it
    kind_code, kinds = pd.factorize(columns.sr_kind[element])
    one_of, label_of = distinct(kind_code, touches)
    s_label = np.array([f"{kinds[kind_code[j]]} cluster ({touches[j]} touches)"
                        for j in one_of.tolist()] + [None], dtype=object)[:-1]
    s_name = s_label[label_of]
    tf_code, timeframes = pd.factorize(
        np.fromiter((columns.timeframe[i] for i in at.tolist()), dtype=object, count=n),
        use_na_sentinel=False)
    bar_cache: dict[str, float] = {}
    snap_bar = np.array([_bar_seconds(tf, bar_cache) for tf in timeframes.tolist()],
                        dtype=np.float64).reshape(-1)[tf_code] if n else np.zeros(0)
    # the stored times are whole microseconds: other times as the objects give them
    snap_ns = columns.bar_ns[at][s_snap]
    last_ns = columns.sr_last_ns[element]
    weight = np.full(len(touches), math.nan)
    has = touches != 0
    exact = has & (snap_ns % 1000 == 0) & (last_ns % 1000 == 0)
    fast = np.flatnonzero(exact)
    weight[fast] = _decayed(touches[fast], snap_ns[fast] // 1000, last_ns[fast] // 1000,
                            snap_bar[s_snap][fast])
    for i in np.flatnonzero(has & ~exact).tolist():
        weight[i] = _touch_weight(utc_datetime(int(snap_ns[i])), int(touches[i]),
                                  utc_datetime(int(last_ns[i])), float(snap_bar[s_snap[i]]))
    s_last = (np.fromiter(map(utc_datetime, last_ns.tolist()), dtype=object,
                          count=len(last_ns)) if with_last
              else np.full(len(last_ns), None, dtype=object))
    return _stacked((f_snap, p_snap, s_snap), (f_pos, p_pos, s_pos), (f_price, p_price, s_price),
                    (f_name, p_name, s_name), f_bits, touches, weight, s_last)


def _object_candidates(snapshots: Sequence[KeyLevelsSnapshot], pivot_method: str
                       ) -> tuple[np.ndarray, ...]:
    """Return ``_candidate_columns`` of ``snapshots``, read from the objects."""
    n = len(snapshots)
    # the four fixed levels
    fixed = np.array([_FIXED_GET(snap) for snap in snapshots], dtype=np.float64).reshape(n, 4)
    f_snap, f_pos = np.nonzero(np.isfinite(fixed))
    f_price = fixed[f_snap, f_pos]
    f_name = np.array([name for _, name, _ in _FIXED], dtype=object)[f_pos]
    f_bits = np.array([bits for _, _, bits in _FIXED], dtype=np.int64)[f_pos]
    # one pivot family, in its order, without P
    # columns appended directly: no tuple per candidate for the collector to walk
    p_snap_l: list[int] = []
    p_pos_l: list[int] = []
    p_key_l: list[str] = []
    p_value_l: list[Any] = []
    p_count_l: list[int] = []
    for s, snap in enumerate(snapshots):
        family = snap.pivots.get(pivot_method, {}) if pivot_method != "none" else {}
        p_count_l.append(len(family))
        p_snap_l.extend([s] * len(family))
        p_pos_l.extend(range(len(family)))
        p_key_l.extend(family.keys())
        p_value_l.extend(family.values())
    p_snap, p_pos = np.array(p_snap_l, dtype=np.int64), np.array(p_pos_l, dtype=np.int64)
    p_key = np.array(p_key_l, dtype=object)
    p_value = np.fromiter(p_value_l, dtype=object, count=len(p_value_l))
    p_price = np.array(p_value.tolist(), dtype=np.float64)  # None -> NaN
    keep = np.isfinite(p_price) & (p_key != "P")
    labels = {key: f"{pivot_method} pivot {key}" for key in set(p_key[keep].tolist())}
    p_name = np.array([labels[key] for key in p_key[keep].tolist()], dtype=object)
    p_count = np.array(p_count_l, dtype=np.int64)
    p_snap, p_pos, p_price = p_snap[keep], p_pos[keep] + 4, p_price[keep]
    # swing clusters, after the pivots
    s_snap_l: list[int] = []
    s_pos_l: list[int] = []
    s_level_l: list[Any] = []
    for s, snap in enumerate(snapshots):
        levels = snap.support_resistance
        s_snap_l.extend([s] * len(levels))
        s_pos_l.extend(range(len(levels)))
        s_level_l.extend(levels)
    s_snap, s_pos = np.array(s_snap_l, dtype=np.int64), np.array(s_pos_l, dtype=np.int64)
    s_value = np.fromiter(map(attrgetter("price"), s_level_l), dtype=object,
                          count=len(s_level_l))
    s_kind = np.fromiter(map(attrgetter("kind"), s_level_l), dtype=object, count=len(s_level_l))
    s_touch = np.fromiter(map(attrgetter("touches"), s_level_l), dtype=object,
                          count=len(s_level_l))
    s_last = np.fromiter(map(attrgetter("last_touch"), s_level_l), dtype=object,
                         count=len(s_level_l))
    snap_ts = np.fromiter(map(attrgetter("ts"), snapshots), dtype=object, count=n)
    snap_tf = np.fromiter(map(attrgetter("timeframe"), snapshots), dtype=object, count=n)
    s_price = np.array(s_value.tolist(), dtype=np.float64)
    keep = np.isfinite(s_price)
    s_snap, s_pos, s_price = s_snap[keep], s_pos[keep] + 4 + p_count[s_snap[keep]], s_price[keep]
    s_kind, s_touch, s_last = s_kind[keep], s_touch[keep], s_last[keep]
    kinds, counts = s_kind.tolist(), s_touch.tolist()
    pairs = list(zip(kinds, counts, strict=True))
    # a swing label per distinct (kind, touches); a set keeps each pair's first spelling
    labels_s = {pair: f"{pair[0]} cluster ({pair[1]} touches)" for pair in set(pairs)}
    s_name = np.fromiter(map(labels_s.__getitem__, pairs), dtype=object, count=len(pairs))
    touches = np.fromiter(map(int, counts), dtype=np.int64, count=len(counts))
    bar_cache: dict[str, float] = {}
    # an unknown timeframe fails as the scalar merge fails
    snap_bar = np.fromiter((_bar_seconds(tf, bar_cache) for tf in snap_tf.tolist()),
                           dtype=np.float64, count=n)
    weight = _touch_weights(snap_ts, s_snap, touches, s_last, snap_bar[s_snap])
    return _stacked((f_snap, p_snap, s_snap), (f_pos, p_pos, s_pos), (f_price, p_price, s_price),
                    (f_name, p_name, s_name), f_bits, touches, weight, s_last)


#: The last _snapshot_matrices call: (pivot method, its snapshots, its result). The level
#: checks of one batch (entry_quality, missing_scanner) merge the same snapshots; the entry
#: holds its snapshots, so no other object can take their ids while it is kept.
_Matrices = tuple[list[np.ndarray | None], np.ndarray, np.ndarray]
_LAST_MATRICES: list[tuple[tuple[str, bool], LevelColumns | list[Any], _Matrices]] = []


def _snapshot_matrices(snaps: list[KeyLevelsSnapshot | None] | LevelColumns, pivot_method: str,
                       *, with_last: bool = True) -> _Matrices:
    """Return the candidates of each of ``snaps`` (distinct objects, None: none; or every
    snapshot of LevelColumns, then one row without candidates for the rows without a
    snapshot) sorted by (price, name), ties in input order, as (snapshot, k) matrices
    (price, name number, source bits, touches, touch weight, last touch: None unless
    ``with_last``), each snapshot's count and the names by number; the last call's result
    again for the same snapshot objects (pieces are not changed once built)."""
    if _LAST_MATRICES:
        method, held, result = _LAST_MATRICES[0]
        if method == (pivot_method, with_last) and (
                held is snaps if isinstance(snaps, LevelColumns) else
                isinstance(held, list) and len(held) == len(snaps)
                and all(map(operator.is_, held, snaps))):
            return result
    result = _sorted_candidates(snaps, pivot_method, with_last=with_last)
    _LAST_MATRICES[:] = [((pivot_method, with_last),
                          snaps if isinstance(snaps, LevelColumns) else list(snaps), result)]
    return result


def _sorted_candidates(snaps: list[KeyLevelsSnapshot | None] | LevelColumns,
                       pivot_method: str, *, with_last: bool) -> _Matrices:
    """Return ``_snapshot_matrices`` (computed)."""
    if isinstance(snaps, LevelColumns):
        n_snap = snaps.count + 1
        columns = _candidate_columns(snaps, pivot_method, with_last=with_last)
        c_snap = columns[0]
    else:
        n_snap = len(snaps)
        present = [s for s, snap in enumerate(snaps) if snap is not None]
        columns = _candidate_columns([snap for snap in snaps if snap is not None],
                                     pivot_method, with_last=with_last)
        c_snap = np.asarray(present, dtype=np.int64)[columns[0]]
    c_position, c_price, c_name, c_bits, c_touch, c_weight, c_last = columns[1:]
    name_code, name_unique = pd.factorize(np.asarray(c_name, dtype=object))
    name_rank = np.empty(len(name_unique), dtype=np.int64)
    name_rank[sorted(range(len(name_unique)), key=name_unique.__getitem__)] = np.arange(
        len(name_unique))
    # each snapshot's candidates in a row of (snapshot, position) matrices, sorted within
    # the row by (price, name), ties in position order (a stable sort); the padding (no
    # candidate there: every candidate's price is finite) sorts last
    width = int(c_position.max()) + 1 if len(c_position) else 0
    at = (c_snap, c_position)
    price_by_place = np.full((n_snap, width), np.inf)
    price_by_place[at] = c_price
    rank_by_place = np.full((n_snap, width), len(name_unique), dtype=np.int64)
    rank_by_place[at] = name_rank[name_code]
    order = np.lexsort((rank_by_place, price_by_place), axis=1)
    count_s = np.bincount(c_snap, minlength=n_snap)
    k = int(count_s.max()) if n_snap else 0
    order = order[:, :k]
    padding = np.arange(k)[None, :] >= count_s[:, None]
    matrices: list[np.ndarray | None] = []
    for values, dtype, fill in ((c_price, np.float64, np.nan), (name_code, np.int64, -1),
                                (c_bits, np.int64, 0), (c_touch, np.int64, 0),
                                (c_weight, np.float64, np.nan), (c_last, object, None)):
        if values is c_last and not with_last:
            matrices.append(None)
            continue
        by_place = np.full((n_snap, width), fill, dtype=dtype)
        by_place[at] = np.asarray(values, dtype=dtype)
        matrix = np.take_along_axis(by_place, order, axis=1)
        matrix[padding] = fill
        matrices.append(matrix)
    return matrices, count_s, np.asarray(name_unique, dtype=object)


def _merge(snapshots: Sequence[KeyLevelsSnapshot | None], atr: np.ndarray, *,
           pivot_method: str, merge_atr: float) -> _Merged:
    """Merge the candidates of each (snapshot, ATR) pair (None: no candidates).

    Candidates are read once per distinct snapshot object and sorted by (price, name) as a
    stable sort would; the groups form column by column over all pairs at once: a candidate
    opens a new group when it lies more than ``merge_atr`` x ATR above its group's first.
    """
    if pivot_method not in PIVOT_METHODS:
        raise ValueError(f"pivot_method: must be one of {PIVOT_METHODS} (got {pivot_method!r})")
    codes, distinct = pd.factorize(np.fromiter(map(id, snapshots), dtype=np.int64,
                                               count=len(snapshots)))
    first_of = np.zeros(len(distinct), dtype=np.int64)
    first_of[codes[::-1]] = np.arange(len(snapshots))[::-1]
    snaps = [snapshots[i] for i in first_of.tolist()]
    per_snapshot, count_s, vocabulary = _snapshot_matrices(snaps, pivot_method)
    return _merge_pairs(per_snapshot, count_s, vocabulary, codes, atr, merge_atr=merge_atr)


def _merge_pairs(per_snapshot: list[np.ndarray | None], count_s: np.ndarray,
                 vocabulary: np.ndarray, codes: np.ndarray, atr: np.ndarray, *,
                 merge_atr: float) -> _Merged:
    """Merge each (snapshot ``codes``, ATR) pair's candidates (``_snapshot_matrices``)."""
    price_s, name, bits_s, touch_s, weight_s, last = per_snapshot
    assert price_s is not None and bits_s is not None and touch_s is not None
    assert weight_s is not None and name is not None
    k = price_s.shape[1]
    codes = np.asarray(codes, dtype=np.int64)
    n = len(codes)
    count = count_s[codes]
    atr = np.asarray(atr, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        width = np.where(np.isfinite(atr) & (atr > 0), merge_atr * atr, 0.0)
    # groups, column by column over the pairs that still have candidates (pairs by count,
    # most first, so those are a leading slice): a candidate opens a group when it lies
    # more than the width above its group's first
    by_count = np.argsort(-count, kind="stable")
    price = price_s[codes[by_count]]
    sorted_count, sorted_width = count[by_count], width[by_count]
    active = np.searchsorted(-sorted_count, -np.arange(k), side="left")  # count > t
    group = np.zeros((n, max(k, 1)), dtype=np.int64)
    start_price = price[:, 0].copy() if k else np.zeros(n)
    for t in range(1, k):
        m = int(active[t])
        if not m:
            break
        with np.errstate(invalid="ignore"):
            new = ~(price[:m, t] - start_price[:m] <= sorted_width[:m])
        start_price[:m] = np.where(new, price[:m, t], start_price[:m])
        group[:m, t] = group[:m, t - 1] + new
    # every candidate of every pair, pairs in order and each pair's by price
    rows = np.arange(n)
    member_pair = np.repeat(rows, count)
    member_t = np.arange(len(member_pair)) - np.repeat(np.cumsum(count) - count, count)
    place = np.empty(n, dtype=np.int64)
    place[by_count] = rows
    member_group = group[place[member_pair], member_t]
    n_groups = np.zeros(n, dtype=np.int64)
    if len(member_pair):
        last_member = np.cumsum(count) - 1
        has = count > 0
        n_groups[has] = member_group[last_member[has]] + 1
    offset = np.cumsum(n_groups) - n_groups
    g = offset[member_pair] + member_group  # ascending: a group's members are contiguous
    size = int(n_groups.sum())
    snap = codes[member_pair]
    value = price_s[snap, member_t]
    weight = weight_s[snap, member_t]
    opens = np.flatnonzero(np.r_[True, g[1:] != g[:-1]]) if len(g) else np.zeros(0, np.int64)
    closes = np.r_[opens[1:], len(g)][:len(opens)] - 1  # no group: none
    # sums added in price order, one member after another, as a loop over them would
    total = np.bincount(g, weights=value, minlength=size)
    touch_weight = np.bincount(g, weights=np.where(np.isnan(weight), 0.0, weight),
                               minlength=size)
    members = np.bincount(g, minlength=size).astype(np.int64)
    bits = bits_s[snap, member_t]
    sources = np.zeros(size, dtype=np.int64)
    for _, bit in _SOURCE_BITS:  # the OR of the members' bits, bit by bit
        sources |= np.where(np.bincount(g, weights=(bits & bit) != 0, minlength=size) > 0,
                            bit, 0)
    # integer counts: exact as float sums
    touches = np.bincount(g, weights=touch_s[snap, member_t], minlength=size)
    return _Merged(pair=np.repeat(rows, n_groups), snapshot=codes,
                   first=member_t[opens], members=members, total=total, low=value[opens],
                   high=value[closes], sources=sources.astype(np.int64),
                   touch_weight=touch_weight, touches=touches.astype(np.int64), name=name,
                   last=last, vocabulary=vocabulary)


def consolidate(snapshot: KeyLevelsSnapshot, atr: float | None, *,
                pivot_method: str = DEFAULT_PIVOT_METHOD,
                merge_atr: float = DEFAULT_MERGE_ATR) -> tuple[ConsolidatedLevel, ...]:
    """Return the snapshot's levels merged within ``merge_atr`` x ``atr`` (price), by price,
    each with its strength (module docstring): the merge of a batch of one."""
    merged = _merge([snapshot], np.array([math.nan if atr is None else atr], dtype=np.float64),
                    pivot_method=pivot_method, merge_atr=merge_atr)
    groups = np.arange(len(merged.pair))
    strength, names = merged.strength(groups).tolist(), merged.names(groups)
    out = []
    for g in groups.tolist():
        assert merged.last is not None
        lasts = [x for x in merged.last[merged.snapshot[0],
                                        merged.first[g]:merged.first[g] + merged.members[g]]
                 if x is not None]
        out.append(ConsolidatedLevel(
            price=float(merged.total[g] / merged.members[g]), low=float(merged.low[g]),
            high=float(merged.high[g]), strength=strength[g],
            sources=tuple(s for s, bit in _SOURCE_BITS if merged.sources[g] & bit),
            names=names[g], touches=int(merged.touches[g]),
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


def level_table(snapshots: LevelPieces, code: np.ndarray, atr: np.ndarray, *,
                pivot_method: str, merge_atr: float, min_strength: float) -> LevelTable:
    """Return the levels of strength at least ``min_strength`` for each row (``code``: its
    distinct snapshot of ``snapshots``, ``buddy.levels.columns.level_pieces``: -1 of
    LevelColumns, None or another type of objects where there is none; ``atr``: its ATR,
    price)."""
    atr = np.asarray(atr, dtype=np.float64)
    code = np.asarray(code, dtype=np.int64)
    if isinstance(snapshots, LevelColumns):  # no snapshot: the matrices' last row, empty
        code = np.where(code < 0, snapshots.count, code)
    first, inverse = distinct(code, np.nan_to_num(atr, nan=-1.0))
    if pivot_method not in PIVOT_METHODS:
        raise ValueError(f"pivot_method: must be one of {PIVOT_METHODS} (got {pivot_method!r})")
    # the candidates of every snapshot given (once per batch: the level checks of one batch
    # pass the same snapshots, each with its own rows), merged for the pairs in use
    per_snapshot, count_s, vocabulary = _snapshot_matrices(
        snapshots if isinstance(snapshots, LevelColumns) else
        [snap if isinstance(snap, KeyLevelsSnapshot) else None for snap in snapshots],
        pivot_method, with_last=False)
    merged = _merge_pairs(per_snapshot, count_s, vocabulary, code[first].astype(np.int64),
                          atr[first], merge_atr=merge_atr)
    raw = _POPCOUNT[merged.sources] + TOUCH_WEIGHT * merged.touch_weight
    # rounding to 1e-6 moves a strength by at most 5e-7: the rest cannot reach min_strength
    near = np.flatnonzero(raw >= min_strength - 1e-9 - 1e-6)
    strength = merged.strength(near)
    strong = strength >= min_strength - 1e-9
    kept, strength = near[strong], strength[strong]
    named = _level_names(merged, kept)
    level_code, level_names = pd.factorize(named)
    names = sorted(level_names.tolist())
    rank_of = {name: i for i, name in enumerate(names)}
    pair = merged.pair[kept]
    per_pair = np.bincount(pair, minlength=len(first))
    width = int(per_pair.max()) if len(kept) else 0
    at = (pair, np.arange(len(kept)) - np.repeat(np.cumsum(per_pair) - per_pair, per_pair))
    shape = (len(first), width)
    price, strengths = np.full(shape, np.nan), np.full(shape, np.nan)
    touches, rank = np.zeros(shape, dtype=np.int64), np.full(shape, NO_RANK, dtype=np.int64)
    price[at] = merged.total[kept] / merged.members[kept]
    strengths[at] = strength
    touches[at] = merged.touches[kept]
    rank[at] = np.array([rank_of[name] for name in level_names.tolist()],
                        dtype=np.int64).reshape(-1)[level_code]
    return LevelTable(code=inverse.reshape(-1), price=price, strength=strengths,
                      touches=touches, rank=rank, names=np.array(names, dtype=object))


def _level_names(merged: _Merged, groups: np.ndarray) -> np.ndarray:
    """Return the name of each of ``groups``: its members' names joined by ' / ', by price
    (a level of one member, as most are, by that member's); each distinct run of names
    joined once."""
    snap = merged.snapshot[merged.pair[groups]]
    first, members = merged.first[groups], merged.members[groups]
    numbers = merged.name[snap, first]
    named = merged.vocabulary[numbers] if len(groups) else np.zeros(0, dtype=object)
    for m in np.unique(members[members > 1]).tolist():
        at = np.flatnonzero(members == m)
        runs = merged.name[snap[at][:, None], first[at][:, None] + np.arange(m)[None, :]]
        one_of, run = distinct(*runs.T)
        joined = np.array([" / ".join(merged.vocabulary[runs[j]].tolist())
                           for j in one_of.tolist()], dtype=object)
        named[at] = joined[run]
    return np.asarray(named, dtype=object)


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


def _stacked(snap: tuple[np.ndarray, ...], pos: tuple[np.ndarray, ...],
             price: tuple[np.ndarray, ...], name: tuple[np.ndarray, ...], f_bits: np.ndarray,
             touches: np.ndarray, weight: np.ndarray, s_last: np.ndarray
             ) -> tuple[np.ndarray, ...]:
    """Return the candidate columns of both builders: the (fib, pivot, stored) parts of each
    column one after the other; pivots carry bit 4, stored levels bit 8, and only stored
    levels have touches, a weight and a last touch."""
    none = np.zeros(len(price[0]) + len(price[1]), dtype=np.int64)
    return (np.concatenate(snap).astype(np.int64), np.concatenate(pos).astype(np.int64),
            np.concatenate(price), np.concatenate(name),
            np.concatenate([f_bits, np.full(len(price[1]), 4, dtype=np.int64),
                            np.full(len(price[2]), 8, dtype=np.int64)]),
            np.concatenate([none, touches]),
            np.concatenate([np.full(len(none), math.nan), weight]),
            np.concatenate([np.full(len(none), None, dtype=object), s_last]))
