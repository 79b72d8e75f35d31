"""Key-levels snapshots of a batch as columns, and snapshots made from them on demand.

The levels provider's batch form reads the snapshots of a batch's distinct stored bars
column by column (``buddy.levels.provider.snapshot_columns``) into a ``LevelColumns``: every
price already on its row's as-of basis, times as int64 UTC nanoseconds. The level checks read
those columns (``buddy.levels.consolidate``, ``anchored_vwaps``); the piece each row carries
is a ``ColumnSnapshot``, a KeyLevelsSnapshot whose fields are made from its row of the
columns the first time anyone reads one (``BatchContext.pack``, a module's scalar form, a
test). A replay whose modules read the columns never makes the objects: they were most of
the piece's cost.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from operator import attrgetter
from typing import Any

import numpy as np
import pandas as pd

from buddy.context.pieces import AnchoredVWAP, KeyLevelsSnapshot, PriceLevel

__all__ = ["ColumnSnapshot", "LevelColumns", "anchored_vwaps", "as_utc", "by_columns",
           "utc_datetime"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: The bands of an anchored VWAP, in ``LevelColumns.vwap_bands`` column order.
VWAP_BANDS = ("vwap", "upper_1", "lower_1", "upper_2", "lower_2")
#: The fixed prices, in ``LevelColumns.fixed`` column order.
FIXED_PRICES = ("prior_day_high", "prior_day_low", "prior_day_close", "rolling_range_high",
                "rolling_range_low")


@lru_cache(maxsize=65_536)  # snapshots repeat the same anchor and touch times
def as_utc(value: Any) -> datetime:
    """Return a time (a timestamp, a datetime, int64 UTC ns) as a UTC datetime (naive: UTC)."""
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.to_pydatetime()


def utc_datetime(ns: int) -> datetime:
    """Return int64 UTC nanoseconds as the datetime ``pd.Timestamp(ns, tz=UTC)`` gives
    (tzinfo ``UTC``): whole microseconds (every stored time) by arithmetic."""
    return _EPOCH + timedelta(microseconds=ns // 1000) if ns % 1000 == 0 else as_utc(ns)


@dataclass(frozen=True, slots=True, eq=False)
class LevelColumns:
    """The key-levels snapshots of a batch's distinct stored bars as columns (row i is one
    snapshot; every price divided by its row's split divisor, NaN for a NULL; times int64
    UTC ns). Rows whose stored values the row form reads otherwise (a NULL inside a nested
    level) are not ``usable``: ``snapshots`` holds those rows' snapshots as the row form
    made them, and ColumnSnapshots of the others."""

    symbol: list[str]
    timeframe: list[str]
    bar_ns: np.ndarray  # int64
    version: list[str]
    divisor: np.ndarray  # float64
    fixed: np.ndarray  # (n, 5): FIXED_PRICES
    pivots: dict[str, tuple[list[str], np.ndarray, np.ndarray]]  # method: names, prices, present
    vwap_offsets: np.ndarray  # (n + 1,): row i's VWAPs are [offsets[i], offsets[i + 1])
    vwap_anchor: np.ndarray  # object
    vwap_anchor_number: np.ndarray  # int64: the anchor's place in vwap_anchor_names (-1: NULL)
    vwap_anchor_names: np.ndarray  # object: the distinct anchors
    vwap_anchor_ns: np.ndarray  # int64
    vwap_bands: np.ndarray  # (m, 5): VWAP_BANDS
    sr_offsets: np.ndarray  # (n + 1,): row i's clusters are [offsets[i], offsets[i + 1])
    sr_raw: np.ndarray  # the stored prices (before the divisor)
    sr_price: np.ndarray
    sr_kind: np.ndarray  # object
    sr_touches: np.ndarray  # int64
    sr_last_ns: np.ndarray  # int64
    usable: np.ndarray  # bool
    snapshots: list[KeyLevelsSnapshot] = field(default_factory=list)
    #: support/resistance tuples made so far, by (divisor, stored list): rows holding the
    #: same list on one basis share one tuple of PriceLevels
    _levels: dict[Any, tuple[PriceLevel, ...]] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.bar_ns)

    def vwap_anchor_is(self, anchor: str) -> np.ndarray:
        """Return per stored VWAP whether it is anchored at ``anchor``."""
        found = np.flatnonzero(self.vwap_anchor_names == anchor)
        if not len(found):
            return np.zeros(len(self.vwap_anchor_number), dtype=bool)
        return self.vwap_anchor_number == found[0]

    def snapshot(self, i: int) -> KeyLevelsSnapshot:
        """Return row i's snapshot as the row form makes it (a usable row's fields)."""
        fixed = [None if x != x else x for x in self.fixed[i].tolist()]  # NaN: None
        return KeyLevelsSnapshot(
            symbol=self.symbol[i], timeframe=str(self.timeframe[i]),
            ts=utc_datetime(int(self.bar_ns[i])),
            prior_day_high=fixed[0], prior_day_low=fixed[1], prior_day_close=fixed[2],
            pivots={method: dict(zip(names, prices[i].tolist(), strict=True))
                    for method, (names, prices, present) in self.pivots.items()
                    if present[i]},
            anchored_vwaps=self._vwaps(i), rolling_range_high=fixed[3],
            rolling_range_low=fixed[4], support_resistance=self._price_levels(i),
            version=self.version[i])

    def _vwaps(self, i: int) -> tuple[AnchoredVWAP, ...]:
        a, b = int(self.vwap_offsets[i]), int(self.vwap_offsets[i + 1])
        return tuple(AnchoredVWAP(anchor=anchor, anchor_ts=utc_datetime(at), vwap=vwap,
                                  upper_1=u1, lower_1=l1, upper_2=u2, lower_2=l2)
                     for anchor, at, (vwap, u1, l1, u2, l2) in zip(
                         self.vwap_anchor[a:b].tolist(), self.vwap_anchor_ns[a:b].tolist(),
                         self.vwap_bands[a:b].tolist(), strict=True))

    def _price_levels(self, i: int) -> tuple[PriceLevel, ...]:
        a, b = int(self.sr_offsets[i]), int(self.sr_offsets[i + 1])
        if a == b:
            return ()
        # bit patterns of the floats: equal means bit for bit
        key = (float(self.divisor[i]).hex(), self.sr_raw[a:b].view(np.int64).tobytes(),
               tuple(self.sr_kind[a:b].tolist()), self.sr_touches[a:b].tobytes(),
               self.sr_last_ns[a:b].tobytes())
        made = self._levels.get(key)
        if made is None:
            made = self._levels[key] = tuple(
                PriceLevel(price=price, kind=kind, touches=touches,
                           last_touch=utc_datetime(last))
                for price, kind, touches, last in zip(
                    self.sr_price[a:b].tolist(), self.sr_kind[a:b].tolist(),
                    self.sr_touches[a:b].tolist(), self.sr_last_ns[a:b].tolist(),
                    strict=True))
        return made


_FIELDS = tuple(f.name for f in dataclasses.fields(KeyLevelsSnapshot))
_FIELD_SET = frozenset(_FIELDS)


class ColumnSnapshot(KeyLevelsSnapshot):
    """A KeyLevelsSnapshot of one row of ``LevelColumns``: its fields are filled from the
    row when one is first read (until then they are unset slots, whose read lands in
    ``__getattr__``), so a batch whose checks read the columns makes no objects. It equals,
    hashes, prints and pickles as the KeyLevelsSnapshot of the same fields."""

    __slots__ = ("columns", "row")
    columns: LevelColumns
    row: int

    @classmethod
    def of(cls, columns: LevelColumns, row: int) -> ColumnSnapshot:
        """Return the snapshot of ``columns``' row ``row`` (fields made when first read)."""
        return cls.many(columns, [row])[0]

    @classmethod
    def many(cls, columns: LevelColumns, rows: Sequence[int]) -> list[ColumnSnapshot]:
        """Return the snapshots of ``columns``' ``rows``."""
        new, set_columns, set_row = object.__new__, _SET_COLUMNS, _SET_ROW
        out = []
        for row in rows:
            made = new(cls)
            set_columns(made, columns)  # the slots' own setters: the class is frozen
            set_row(made, row)
            out.append(made)
        return out

    def __getattr__(self, name: str) -> Any:
        if name not in _FIELD_SET:
            raise AttributeError(name)
        filled = self.columns.snapshot(self.row)
        for key in _FIELDS:
            object.__setattr__(self, key, getattr(filled, key))
        return getattr(filled, name)

    def plain(self) -> KeyLevelsSnapshot:
        """Return the KeyLevelsSnapshot holding the same fields."""
        return KeyLevelsSnapshot(**{key: getattr(self, key) for key in _FIELDS})

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, KeyLevelsSnapshot):
            return NotImplemented
        # as the dataclass compares: field tuples (an object equals itself, NaN included)
        return (tuple(getattr(self, key) for key in _FIELDS)
                == tuple(getattr(other, key) for key in _FIELDS))

    def __hash__(self) -> int:
        return hash(self.plain())

    def __repr__(self) -> str:
        return repr(self.plain())

    def __reduce_ex__(self, protocol: Any) -> Any:
        return _snapshot_of, ({key: getattr(self, key) for key in _FIELDS},)


def _snapshot_of(fields: dict[str, Any]) -> KeyLevelsSnapshot:
    """Return the KeyLevelsSnapshot of ``fields`` (a ColumnSnapshot pickles and copies as
    one)."""
    return KeyLevelsSnapshot(**fields)


def by_columns(snapshots: Sequence[Any]
               ) -> tuple[list[tuple[LevelColumns, np.ndarray, np.ndarray]], np.ndarray]:
    """Return the ColumnSnapshots among ``snapshots`` by their columns, as (columns, their
    places in ``snapshots``, their rows of the columns), and the places of the others."""
    kinds = list(map(type, snapshots))
    if kinds and all(kind is ColumnSnapshot for kind in kinds):
        held = list(map(_COLUMNS_OF, snapshots))
        first = held[0]
        if all(columns is first for columns in held):  # one batch's pieces: the usual case
            rows = np.fromiter(map(_ROW_OF, snapshots), dtype=np.int64, count=len(snapshots))
            return [(first, np.arange(len(snapshots)), rows)], np.zeros(0, dtype=np.int64)
    groups: dict[int, tuple[LevelColumns, list[int], list[int]]] = {}
    others: list[int] = []
    for j, (snap, kind) in enumerate(zip(snapshots, kinds, strict=True)):
        if kind is ColumnSnapshot:
            found = groups.setdefault(id(snap.columns), (snap.columns, [], []))
            found[1].append(j)
            found[2].append(snap.row)
        else:
            others.append(j)
    return ([(columns, np.asarray(where, dtype=np.int64), np.asarray(rows, dtype=np.int64))
             for columns, where, rows in groups.values()], np.asarray(others, dtype=np.int64))


_SET_COLUMNS = vars(ColumnSnapshot)["columns"].__set__  # the slots' member descriptors
_SET_ROW = vars(ColumnSnapshot)["row"].__set__
_COLUMNS_OF = attrgetter("columns")
_ROW_OF = attrgetter("row")


def anchored_vwaps(snapshots: Sequence[Any], anchor: str) -> tuple[np.ndarray, np.ndarray]:
    """Return per snapshot its first anchored VWAP named ``anchor`` and that VWAP's upper
    1-sd band (NaN where it has none, or is not a KeyLevelsSnapshot); ColumnSnapshots read
    from their columns."""
    n = len(snapshots)
    vwap, upper = np.full(n, np.nan), np.full(n, np.nan)
    held, others = by_columns(snapshots)
    for j in others.tolist():
        snap = snapshots[j]
        if isinstance(snap, KeyLevelsSnapshot):
            found = next((v for v in snap.anchored_vwaps if v.anchor == anchor), None)
            if found is not None:
                vwap[j], upper[j] = found.vwap, found.upper_1
    for columns, where, at in held:
        # the first VWAP named ``anchor`` of each row: its stored order
        named = np.flatnonzero(columns.vwap_anchor_is(anchor))
        owner = np.searchsorted(columns.vwap_offsets, named, side="right") - 1
        first = np.full(len(columns) + 1, -1, dtype=np.int64)
        first[owner[::-1]] = named[::-1]
        picked = first[at]
        found = picked >= 0
        vwap[where[found]] = columns.vwap_bands[picked[found], 0]
        upper[where[found]] = columns.vwap_bands[picked[found], 1]
    return vwap, upper
