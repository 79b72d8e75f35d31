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
columns (``_merge``: candidates read once per distinct snapshot into (place, snapshot)
matrices sorted by (price, name), the groups of every (snapshot, ATR) pair formed place by
place on running sums, adding in price order as a loop over the members would);
``consolidate`` is a batch of one. When the levels piece is kept as columns (the levels
provider's ``LevelColumns``, see ``buddy.levels.columns.level_pieces``) the candidates of
its stored rows are read from the columns (the same values, no object made), the others
from the objects. The batch's level checks share one merge: the sorted candidates and the
last level table are held for the same snapshot objects, and a check asking for a higher
strength on some of the rows (missing_scanner after entry_quality) reads that table.
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
    sorted candidates' names and last touches (candidate, snapshot; ``last`` None when not
    asked for), read through the pair's ``snapshot``, ``first`` and ``members`` (the group's
    candidates are ``first:first + members``)."""

    pair: np.ndarray
    snapshot: np.ndarray  # per pair, its snapshot's column of ``name`` and ``last``
    first: np.ndarray
    members: np.ndarray
    total: np.ndarray  # sum of member prices, added in price order
    low: np.ndarray
    high: np.ndarray
    sources: np.ndarray  # OR of _SOURCE_BITS
    touch_weight: np.ndarray  # sum of touches x 0.5 ** (age / half-life), in price order
    touches: np.ndarray
    name: np.ndarray  # int64 (candidates, snapshots): the name's number in ``vocabulary``
    last: np.ndarray | None  # object (candidates, snapshots)
    vocabulary: np.ndarray  # object: the candidates' names by number

    def strength(self, groups: np.ndarray) -> np.ndarray:
        """Return the strength of ``groups`` (rounded to 1e-6 as ``round`` rounds)."""
        return _round6(_POPCOUNT[self.sources[groups]] + TOUCH_WEIGHT * self.touch_weight[groups])

    def names(self, groups: np.ndarray) -> list[tuple[str, ...]]:
        """Return the member names of ``groups``, by price."""
        return [tuple(self.vocabulary[self.name[f:f + m, p]].tolist()) for p, f, m in zip(
            self.snapshot[self.pair[groups]].tolist(), self.first[groups].tolist(),
            self.members[groups].tolist(), strict=True)]


def _round6(values: np.ndarray) -> np.ndarray:
    """Return ``round(x, 6)`` of each value, as Python rounds it (the float nearest the
    decimal correctly rounded, halves to even): by arithmetic where the value times 1e6,
    rounded, cannot lie across a half (then the nearest integer is Python's, and that
    integer over 1e6, a correctly rounded division, is the float nearest its decimal),
    else by ``round``."""
    values = np.asarray(values, dtype=np.float64)
    scaled = values * 1e6
    out = np.rint(scaled) / 1e6
    with np.errstate(invalid="ignore"):
        # under 1e3 the product errs by at most 1.2e-7 (of 1e9): far from a half, it lies
        # on the same side of it as the exact product does
        clear = (np.abs(scaled - np.floor(scaled) - 0.5) > 1e-6) & (np.abs(values) < 1e3)
    slow = np.flatnonzero(~clear)
    out[slow] = [round(x, 6) for x in values[slow].tolist()]
    return out


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
    microsecond difference over 1e6 is ``timedelta.total_seconds``; the power as Python
    computes it, once per distinct exponent: ages repeat across snapshots)."""
    seconds = (ts_us - last_us).astype(np.float64) / 1e6
    age = seconds / bar_s
    age = np.where(age > 0.0, age, 0.0)  # max(0.0, age): 0.0 for -0.0 and NaN as well
    exponent, distinct_exponents = pd.factorize(age / TOUCH_HALF_LIFE_BARS,
                                                use_na_sentinel=False)
    decay = np.array([0.5 ** x for x in distinct_exponents.tolist()], dtype=np.float64)
    return touches * decay.reshape(-1)[exponent]


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
    from the columns (``_column_places``, flattened) and the others from their objects: the
    same values."""
    if not isinstance(snapshots, LevelColumns):
        return _object_candidates(snapshots, pivot_method)
    from_columns, as_objects = snapshots.sources()
    places = _column_places(snapshots, from_columns, pivot_method, with_last=with_last)
    row, column = np.nonzero(~np.isnan(places.price))
    # a swing cluster's position counts the pivots its snapshot holds (none without them)
    swing = column >= places.swing_from
    position = column - np.where(swing & ~places.has_family[row], places.swing_from - 4, 0)
    at = (row, column)
    name = places.name[at]
    bits, touches = places.bits[name], places.touches[name]
    last = (places.last[at] if places.last is not None
            else np.full(len(row), None, dtype=object))
    # only a swing cluster with touches has a weight
    weight = np.where((bits == 8) & (touches != 0), places.weight[at], np.nan)
    parts: list[tuple[np.ndarray, tuple[np.ndarray, ...]]] = [
        (from_columns, (row, position, places.price[at], places.vocabulary[name], bits,
                        touches, weight, last))]
    if len(as_objects):
        parts.append((as_objects, _object_candidates(
            [snapshots.make(j) for j in as_objects.tolist()], pivot_method)))
    return tuple(np.concatenate([where[part[0]] if c == 0 else part[c]
                                 for where, part in parts])
                 for c in range(len(parts[0][1])))


@dataclass(frozen=True, slots=True)
class _Places:
    """Candidates of snapshots as (snapshot, place) matrices, each snapshot's in its list's
    order (prior day, range, the pivot family, swing clusters); a NaN price: no candidate
    there (name -1, weight 0.0, last touch None). A name number stands for one (name,
    source bits, touches): ``bits`` and ``touches`` give those of each number."""

    price: np.ndarray  # float64
    name: np.ndarray  # int64: the name's number in ``vocabulary``
    weight: np.ndarray  # float64: touch weight (0.0: none, as the merge adds none)
    last: np.ndarray | None  # object: last touch (None: not asked for)
    vocabulary: np.ndarray  # object
    bits: np.ndarray  # int64 per name number: _SOURCE_BITS
    touches: np.ndarray  # int64 per name number
    swing_from: int  # the first place of a swing cluster
    has_family: np.ndarray  # bool per snapshot: it holds the pivot family


def _column_places(columns: LevelColumns, at: np.ndarray, pivot_method: str, *,
                   with_last: bool) -> _Places:
    """Return the candidates of the stored rows ``at`` of ``columns`` as ``_Places``: the
    fixed prices, the family's pivots and the swing clusters in their column order (a
    snapshot without the family has none there)."""
    n = len(at)
    rows_at: np.ndarray | slice = at
    if n == len(columns) and (not n or at[-1] == n - 1):  # every stored row: views
        rows_at = slice(None)
    family = columns.pivots.get(pivot_method) if pivot_method != "none" else None
    keys: list[str] = family[0] if family is not None else []
    swing_from = 4 + len(keys)
    lengths = np.diff(columns.sr_offsets)[rows_at]
    width = swing_from + (int(lengths.max()) if n else 0)
    price = np.full((n, width), np.nan)
    price[:, :4] = columns.fixed[rows_at][:, _FIXED_COLUMNS]
    has_family = np.zeros(n, dtype=bool)
    if family is not None and keys:
        _, prices, present = family
        has_family = present[rows_at]
        price[:, 4:swing_from] = np.where(has_family[:, None], prices[rows_at], np.nan)
        price[:, [4 + j for j, key in enumerate(keys) if key == "P"]] = np.nan
    # swing clusters, after the pivots: ``cell`` their place in the flat matrices
    row = np.repeat(np.arange(n, dtype=np.int64), lengths)
    within = np.arange(len(row), dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths,
                                                             lengths)
    element = np.repeat(columns.sr_offsets[:-1][rows_at], lengths) + within
    s_price = columns.sr_price[element]
    keep = np.flatnonzero(np.isfinite(s_price))
    row, element = row[keep], element[keep]
    cell = row * width + swing_from + within[keep]
    price.reshape(-1)[cell] = s_price[keep]
    price[~np.isfinite(price)] = np.nan
    touches = columns.sr_touches[element]
    # a name number per distinct (kind, touches), labelled as the object path spells it
    kind_code = columns.sr_kind_number[element]
    kinds = [*columns.sr_kind_names.tolist(), None]  # -1 (NULL): None, as the objects say
    one_of, label_of = _pairs_numbered(kind_code, touches)
    vocabulary = np.array([name for _, name, _ in _FIXED] + [
        f"{pivot_method} pivot {key}" for key in keys] + [
        f"{kinds[kind_code[j]]} cluster ({touches[j]} touches)" for j in one_of.tolist()] + [
        None], dtype=object)[:-1]
    name = np.empty((n, width), dtype=np.int64)
    name[:, :swing_from] = np.arange(swing_from)
    name.reshape(-1)[cell] = swing_from + label_of
    name[np.isnan(price)] = -1
    bits = np.array([b for _, _, b in _FIXED] + [4] * len(keys) + [8] * len(one_of),
                    dtype=np.int64)
    # swing weights: the stored times are whole microseconds; other times as objects give them
    timeframes = np.asarray(columns.timeframe, dtype=object)
    tf_code, tf_names = pd.factorize(timeframes[rows_at], use_na_sentinel=False)
    bar_cache: dict[str, float] = {}
    snap_bar = np.array([_bar_seconds(tf, bar_cache) for tf in tf_names.tolist()] + [0.0],
                        dtype=np.float64)[tf_code[row]]
    snap_ns = columns.bar_ns[rows_at][row]
    last_ns = columns.sr_last_ns[element]
    weight = np.full(len(row), math.nan)
    has = touches != 0
    exact = has & (snap_ns % 1000 == 0) & (last_ns % 1000 == 0)
    fast = np.flatnonzero(exact)
    weight[fast] = _decayed(touches[fast], snap_ns[fast] // 1000, last_ns[fast] // 1000,
                            snap_bar[fast])
    for i in np.flatnonzero(has & ~exact).tolist():
        weight[i] = _touch_weight(utc_datetime(int(snap_ns[i])), int(touches[i]),
                                  utc_datetime(int(last_ns[i])), float(snap_bar[i]))
    weight_matrix = np.zeros((n, width))
    weight_matrix.reshape(-1)[cell] = np.where(np.isnan(weight), 0.0, weight)
    last = None
    if with_last:
        last = np.full((n, width), None, dtype=object)
        last.reshape(-1)[cell] = np.fromiter(map(utc_datetime, last_ns.tolist()),
                                             dtype=object, count=len(last_ns))
    return _Places(price=price, name=name, weight=weight_matrix, last=last,
                   vocabulary=vocabulary, bits=bits,
                   touches=np.concatenate([np.zeros(swing_from, dtype=np.int64),
                                           touches[one_of].astype(np.int64)]),
                   swing_from=swing_from, has_family=has_family)


def _pairs_numbered(kind: np.ndarray, touches: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return ``distinct(kind, touches)`` of small integers (numbered by value, not by first
    appearance): a place per possible pair when there are few."""
    if not len(kind):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    low, span = int(touches.min()), int(touches.max()) - int(touches.min()) + 1
    size = (int(kind.max()) + 2) * span
    if kind.min() < -1 or size > 1_000_000:
        return distinct(kind, touches)
    key = (kind.astype(np.int64) + 1) * span + (touches.astype(np.int64) - low)
    first = np.full(size, len(key), dtype=np.int64)
    first[key[::-1]] = np.arange(len(key))[::-1]  # the last written, the first found
    used = np.flatnonzero(first < len(key))
    number = np.zeros(size, dtype=np.int64)
    number[used] = np.arange(len(used))
    return first[used], number[key]


def _object_places(snapshots: Sequence[KeyLevelsSnapshot], pivot_method: str) -> _Places:
    """Return ``_object_candidates`` of ``snapshots`` as ``_Places`` (a place per position)."""
    c_snap, c_position, c_price, c_name, c_bits, c_touch, c_weight, c_last = (
        _object_candidates(snapshots, pivot_method))
    one_of, name_code = distinct(np.asarray(c_name, dtype=object), c_bits, c_touch)
    width = int(c_position.max()) + 1 if len(c_position) else 0
    shape = (len(snapshots), width)
    at = (c_snap, c_position)
    matrices = []
    for values, dtype, fill in ((c_price, np.float64, np.nan), (name_code, np.int64, -1),
                                (np.where(np.isnan(c_weight), 0.0, c_weight), np.float64,
                                 0.0), (c_last, object, None)):
        matrix = np.full(shape, fill, dtype=dtype)
        matrix[at] = np.asarray(values, dtype=dtype)
        matrices.append(matrix)
    price, name, weight, last = matrices
    return _Places(price=price, name=name, weight=weight, last=last,
                   vocabulary=np.asarray(c_name, dtype=object)[one_of],
                   bits=np.asarray(c_bits, dtype=np.int64)[one_of],
                   touches=np.asarray(c_touch, dtype=np.int64)[one_of], swing_from=width,
                   has_family=np.zeros(len(snapshots), dtype=bool))


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


#: The last _snapshot_matrices call: (pivot method, its snapshots, its result, the level
#: table made of that result: by merge ATR, its min strength, its pairs' snapshots and ATR
#: keys and the table). The level checks of one batch (entry_quality, missing_scanner) ask
#: for the levels of the same snapshots, the second on some of the first's rows, at a
#: strength as high or higher; the entry holds its snapshots, so no other object can take
#: their ids while it is kept.
_Matrices = tuple[list[np.ndarray | None], np.ndarray, np.ndarray]
_Tables = dict[float, tuple[float, np.ndarray, np.ndarray, "LevelTable"]]
_LAST_MATRICES: list[tuple[tuple[str, bool], LevelColumns | list[Any], _Matrices, _Tables]] = []


def _snapshot_matrices(snaps: list[KeyLevelsSnapshot | None] | LevelColumns, pivot_method: str,
                       *, with_last: bool = True) -> _Matrices:
    """Return the candidates of each of ``snaps`` (distinct objects, None: none; or every
    snapshot of LevelColumns, then one without candidates for the rows without a snapshot)
    sorted by (price, name), ties in input order: (k, snapshot) matrices, a row per place
    in that order (price, name number, source bits as uint8, then the touches of each name
    number, then touch weight, 0.0: none, and last touch: None unless ``with_last``; the
    snapshots past the matrices' columns have no candidates), each snapshot's count and the
    names by number; the last call's result again for the same snapshot objects (pieces
    are not changed once built)."""
    return _held(snaps, pivot_method, with_last=with_last)[0]


def _held(snaps: list[KeyLevelsSnapshot | None] | LevelColumns, pivot_method: str, *,
          with_last: bool) -> tuple[_Matrices, _Tables]:
    """Return ``_snapshot_matrices`` and the level tables held with them (made now, with
    none, unless held for these snapshot objects)."""
    if _LAST_MATRICES:
        method, held, result, held_tables = _LAST_MATRICES[0]
        if method == (pivot_method, with_last) and _same_snapshots(held, snaps):
            return result, held_tables
    result = _sorted_candidates(snaps, pivot_method, with_last=with_last)
    tables: _Tables = {}
    _LAST_MATRICES[:] = [((pivot_method, with_last),
                          snaps if isinstance(snaps, LevelColumns) else list(snaps), result,
                          tables)]
    return result, tables


def _sorted_candidates(snaps: list[KeyLevelsSnapshot | None] | LevelColumns,
                       pivot_method: str, *, with_last: bool) -> _Matrices:
    """Return ``_snapshot_matrices`` (computed)."""
    if isinstance(snaps, LevelColumns):
        from_columns, as_objects = snaps.sources()
        parts = [(from_columns, _column_places(snaps, from_columns, pivot_method,
                                               with_last=with_last))]
        if len(as_objects):
            parts.append((as_objects, _object_places(
                [snaps.make(j) for j in as_objects.tolist()], pivot_method)))
        n_snap = snaps.count + 1  # the last: the rows without a snapshot
    else:
        present = [s for s, snap in enumerate(snaps) if snap is not None]
        parts = [(np.asarray(present, dtype=np.int64), _object_places(
            [snap for snap in snaps if snap is not None], pivot_method))]
        n_snap = len(snaps)
    rows, places = parts[0]
    if len(parts) > 1 or (len(rows) and rows[-1] != len(rows) - 1):  # not rows 0.. of n_snap
        places = _stack_places(parts, n_snap, with_last=with_last)
    return _sort_places(places, n_snap, with_last=with_last)


def _stack_places(parts: list[tuple[np.ndarray, _Places]], n_snap: int, *, with_last: bool
                  ) -> _Places:
    """Return the rows of ``parts`` (each: the snapshot numbers of its rows, their places)
    in one ``_Places`` of ``n_snap`` rows (the others without candidates)."""
    width = max(p.price.shape[1] for _, p in parts)
    shape = (n_snap, width)
    price, weight = np.full(shape, np.nan), np.zeros(shape)
    name = np.full(shape, -1, dtype=np.int64)
    last = np.full(shape, None, dtype=object) if with_last else None
    offset = 0
    for rows, p in parts:
        w = p.price.shape[1]
        price[rows, :w], weight[rows, :w] = p.price, p.weight
        name[rows, :w] = np.where(p.name >= 0, p.name + offset, -1)
        if last is not None and p.last is not None:
            last[rows, :w] = p.last
        offset += len(p.vocabulary)
    return _Places(price=price, name=name, weight=weight, last=last,
                   vocabulary=np.concatenate([p.vocabulary for _, p in parts]),
                   bits=np.concatenate([p.bits for _, p in parts]),
                   touches=np.concatenate([p.touches for _, p in parts]),
                   swing_from=width, has_family=np.zeros(n_snap, dtype=bool))


def _sort_places(places: _Places, n_snap: int, *, with_last: bool) -> _Matrices:
    """Return the candidates of ``places`` sorted within each snapshot by (price, name),
    ties in place order (a stable sort), as ``_snapshot_matrices`` gives them (``n_snap``
    counts: the snapshots past the places' have none)."""
    price = places.price
    # names by their sort order (equal names equal), no candidate (-1) last
    _, name_rank = np.unique(places.vocabulary.astype(str), return_inverse=True)
    name_rank = np.append(name_rank.reshape(-1), len(places.vocabulary))
    order = np.lexsort((name_rank[places.name], np.where(np.isnan(price), np.inf, price)),
                       axis=1)
    count_s = np.count_nonzero(~np.isnan(price), axis=1).astype(np.int64)
    k = int(count_s.max()) if len(count_s) else 0
    # the flat cells in sorted order, a place per row: (place, snapshot) matrices
    cells = (order[:, :k] + (np.arange(len(price)) * price.shape[1])[:, None]).T
    name = places.name.reshape(-1)[cells]
    # a name number's bits; -1 (no candidate) reads the appended 0
    count_s = np.append(count_s, np.zeros(n_snap - len(count_s), dtype=np.int64))
    return [price.reshape(-1)[cells], name, np.append(places.bits, 0).astype(np.uint8)[name],
            np.append(places.touches, 0), places.weight.reshape(-1)[cells],
            places.last.reshape(-1)[cells] if with_last and places.last is not None
            else None], count_s, places.vocabulary


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
                 merge_atr: float, min_raw: float = -math.inf) -> _Merged:
    """Merge each (snapshot ``codes``, ATR) pair's candidates (``_snapshot_matrices``);
    keep the groups whose unrounded strength is at least ``min_raw``."""
    price_s, name, bits_s, touches_of, weight_s, last = per_snapshot
    assert price_s is not None and bits_s is not None and touches_of is not None
    assert weight_s is not None and name is not None
    codes = np.asarray(codes, dtype=np.int64)
    n = len(codes)
    atr = np.asarray(atr, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        width = np.where(np.isfinite(atr) & (atr > 0), merge_atr * atr, 0.0)
    # the pairs by snapshot (their columns read in order; ``by_snapshot``: a pair's place)
    by_snapshot = np.argsort(codes, kind="stable")
    in_order, width = codes[by_snapshot], width[by_snapshot]
    held = in_order < price_s.shape[1]  # a snapshot past the matrices' columns has none
    every = bool(held.all())
    column: np.ndarray | slice = in_order if every else np.where(held, in_order, 0)
    if every and n == price_s.shape[1] and (not n or in_order[-1] == n - 1):
        column = slice(None)  # each snapshot once, in order: its rows as they are
    # groups, place by place over every pair: a candidate opens a group when it lies more
    # than the width above its group's first (a NaN, no candidate, closes it); each
    # group's sums run along its members in price order, one after another from 0.0 (as a
    # loop over them adds). A group is kept as it closes.
    start, total, weight = np.full(n, np.nan), np.zeros(n), np.zeros(n)
    sources, opened = np.zeros(n, dtype=np.uint8), np.zeros(n, dtype=np.int64)
    popcount = _POPCOUNT.astype(np.float64)
    kept: list[tuple[np.ndarray, ...]] = []
    before = np.zeros(n, dtype=bool)  # the pairs with a candidate at the place before
    price_before = np.zeros(n)
    for t in range(price_s.shape[0] + 1):
        price_t = price_s[t, column] if t < price_s.shape[0] else np.full(n, np.nan)
        if not every:
            price_t[~held] = np.nan
        with np.errstate(invalid="ignore"):
            new = ~(price_t - start <= width)
        closing = new & before
        if min_raw > -math.inf:
            closing &= popcount[sources] + TOUCH_WEIGHT * weight >= min_raw
        at = np.flatnonzero(closing)
        kept.append((at, np.full(len(at), t - 1), opened[at], total[at], start[at],
                     price_before[at], sources[at], weight[at]))
        if t == price_s.shape[0]:
            break
        weight_t, bits_t = weight_s[t, column], bits_s[t, column]
        np.copyto(start, price_t, where=new)
        opened[new] = t
        np.add(total, price_t, out=total)
        np.add(price_t, 0.0, out=total, where=new)
        np.add(weight, weight_t, out=weight)
        np.add(weight_t, 0.0, out=weight, where=new)
        np.bitwise_or(sources, bits_t, out=sources)
        np.copyto(sources, bits_t, where=new)
        before, price_before = ~np.isnan(price_t), price_t
    # the groups, pairs in order and each pair's by price (a stable sort: places ascend)
    place, last_place, first, group_total, low, high, group_sources, group_weight = (
        np.concatenate(c) for c in zip(*kept, strict=True))
    pair = by_snapshot[place]
    order = np.argsort(pair, kind="stable")
    pair, last_place, first = pair[order], last_place[order], first[order]
    members = last_place - first + 1
    # the members' touches (integers: exact in any order)
    touches = np.zeros(len(pair), dtype=np.int64)
    snapshot_column = np.minimum(codes[pair], price_s.shape[1] - 1)  # kept: held
    for j in range(int(members.max()) if len(pair) else 0):
        on = np.flatnonzero(members > j)
        touches[on] += touches_of[name[first[on] + j, snapshot_column[on]]]
    return _Merged(pair=pair, snapshot=codes, first=first, members=members,
                   total=group_total[order], low=low[order], high=high[order],
                   sources=group_sources[order].astype(np.int64),
                   touch_weight=group_weight[order], touches=touches, name=name, last=last,
                   vocabulary=vocabulary)


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
        lasts = [x for x in merged.last[merged.first[g]:merged.first[g] + merged.members[g],
                                        merged.snapshot[0]]
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
    atr_key = np.nan_to_num(atr, nan=-1.0)
    first, inverse = distinct(code, atr_key)
    if pivot_method not in PIVOT_METHODS:
        raise ValueError(f"pivot_method: must be one of {PIVOT_METHODS} (got {pivot_method!r})")
    snaps = (snapshots if isinstance(snapshots, LevelColumns) else
             [snap if isinstance(snap, KeyLevelsSnapshot) else None for snap in snapshots])
    pair_code, pair_atr = code[first], atr_key[first]
    # the candidates of every snapshot given (once per batch: the level checks of one batch
    # pass the same snapshots, each with its own rows), merged for the pairs in use; the
    # pairs of a table held for them are read from it
    (per_snapshot, count_s, vocabulary), tables = _held(snaps, pivot_method, with_last=False)
    if float(merge_atr) in tables:
        held_strength, held_code, held_atr, held = tables[float(merge_atr)]
        # a table of a lower strength holds every level asked for
        rows = (_held_pairs(held_code, held_atr, pair_code, pair_atr)
                if min_strength >= held_strength else None)
        if rows is not None:
            return _table_rows(held, rows, inverse.reshape(-1), min_strength)
    # rounding to 1e-6 moves a strength by at most 5e-7: the rest cannot reach min_strength
    merged = _merge_pairs(per_snapshot, count_s, vocabulary, pair_code, atr[first],
                          merge_atr=merge_atr, min_raw=min_strength - 1e-9 - 1e-6)
    near = np.arange(len(merged.pair))
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
    table = LevelTable(code=inverse.reshape(-1), price=price, strength=strengths,
                       touches=touches, rank=rank, names=np.array(names, dtype=object))
    tables.clear()  # one table held: the batch's checks merge at one width
    tables[float(merge_atr)] = (float(min_strength), pair_code, pair_atr, table)
    return table


def _same_snapshots(held: LevelColumns | list[Any], snaps: LevelColumns | list[Any]) -> bool:
    """Return whether ``snaps`` are the held snapshot objects (the same columns, or a list
    of the same objects)."""
    if isinstance(snaps, LevelColumns):
        return held is snaps
    return (isinstance(held, list) and len(held) == len(snaps)
            and all(map(operator.is_, held, snaps)))


def _held_pairs(held_code: np.ndarray, held_atr: np.ndarray, pair_code: np.ndarray,
                pair_atr: np.ndarray) -> np.ndarray | None:
    """Return each (``pair_code``, ``pair_atr``) pair's place among the held (distinct)
    pairs, None when one is not held."""
    size = int(max(held_code.max(initial=-1), pair_code.max(initial=-1))) + 1
    by_code = np.full(size, -1, dtype=np.int64)
    by_code[held_code] = np.arange(len(held_code))
    rows = by_code[pair_code]
    if np.bincount(held_code, minlength=1).max() <= 1:  # a snapshot at one ATR: by snapshot
        if (rows >= 0).all() and (held_atr[rows] == pair_atr).all():
            return rows
        return None
    _, place = distinct(np.concatenate([held_code, pair_code]),
                        np.concatenate([held_atr, pair_atr]))
    rows = place[len(held_code):]
    return rows if not len(rows) or rows.max() < len(held_code) else None


def _table_rows(table: LevelTable, rows: np.ndarray, code: np.ndarray, min_strength: float
                ) -> LevelTable:
    """Return the table of the pairs ``rows`` of ``table`` (``code``: per row its pair's
    place in ``rows``) and their levels of strength at least ``min_strength`` as
    level_table gives them for those pairs alone: as wide as their most levels, their names
    alone."""
    strength = table.strength[rows]
    with np.errstate(invalid="ignore"):
        kept = strength >= min_strength - 1e-9  # the padding (NaN) is none
    count = np.count_nonzero(kept, axis=1)
    width = int(count.max()) if len(rows) else 0
    # each row's kept levels to its front, in their order
    row, column = np.nonzero(kept)
    at = (row, np.cumsum(kept, axis=1)[row, column] - 1)
    shape = (len(rows), width)
    price, strengths = np.full(shape, np.nan), np.full(shape, np.nan)
    touches, rank = np.zeros(shape, dtype=np.int64), np.full(shape, NO_RANK, dtype=np.int64)
    price[at] = table.price[rows][row, column]
    strengths[at] = strength[row, column]
    touches[at] = table.touches[rows][row, column]
    used, renumbered = np.unique(table.rank[rows][row, column], return_inverse=True)
    rank[at] = renumbered.reshape(-1)
    return LevelTable(code=code, price=price, strength=strengths, touches=touches, rank=rank,
                      names=table.names[used])


def _level_names(merged: _Merged, groups: np.ndarray) -> np.ndarray:
    """Return the name of each of ``groups``: its members' names joined by ' / ', by price
    (a level of one member, as most are, by that member's); each distinct run of names
    joined once."""
    snap = merged.snapshot[merged.pair[groups]]
    first, members = merged.first[groups], merged.members[groups]
    numbers = merged.name[first, snap]
    named = merged.vocabulary[numbers] if len(groups) else np.zeros(0, dtype=object)
    for m in np.unique(members[members > 1]).tolist():
        at = np.flatnonzero(members == m)
        runs = merged.name[first[at][:, None] + np.arange(m)[None, :], snap[at][:, None]]
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
