"""The ``levels`` piece of a batch as columns, its snapshots made only when asked.

The levels provider's batch form reads the snapshots of a batch's distinct stored bars
column by column (``buddy.levels.provider.snapshot_columns``) into a ``LevelColumns``: every
price already on its row's as-of basis, times as int64 UTC nanoseconds; the few snapshots
computed on demand (no stored row, or the user's anchors) follow the stored rows as objects.
The piece is a ``buddy.context.piece_columns.PieceColumn`` over it: per row the number of
its distinct snapshot, and ``LevelColumns.make`` builds the KeyLevelsSnapshot of a number
when someone asks (``BatchContext.pack``, a module without a column form, a test). The
level checks read the columns (``level_pieces``; ``buddy.levels.consolidate``,
``anchored_vwaps``), so a replay makes no snapshot objects: they were most of the piece's
cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from buddy.context.piece_columns import PieceColumn
from buddy.context.pieces import AnchoredVWAP, KeyLevelsSnapshot, PriceLevel

if TYPE_CHECKING:
    from buddy.batch.context import BatchContext

__all__ = ["LevelColumns", "LevelPieces", "anchored_vwaps", "as_utc", "level_pieces",
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
    """The distinct key-levels snapshots of a batch: first its distinct stored bars as
    columns (stored row i is snapshot i; every price divided by its row's split divisor, NaN
    for a NULL; times int64 UTC ns), then ``computed`` (snapshots computed on demand, as
    objects). Stored rows whose values the row form reads otherwise (a NULL inside a nested
    level) are not ``usable``: ``row_form`` holds their snapshots as the row form made
    them, and the checks read those from the objects."""

    symbol: list[str]
    timeframe: list[str]
    bar_ns: np.ndarray  # int64
    version: list[str]
    divisor: np.ndarray  # float64
    fixed: np.ndarray  # (n, 5): FIXED_PRICES
    pivots: dict[str, tuple[list[str], np.ndarray, np.ndarray]]  # method: names, prices, present
    vwap_offsets: np.ndarray  # (n + 1,): row i's VWAPs are [offsets[i], offsets[i + 1])
    vwap_anchor_number: np.ndarray  # int64: the anchor's place in vwap_anchor_names (-1: NULL)
    vwap_anchor_names: np.ndarray  # object: the distinct anchors
    vwap_anchor_ns: np.ndarray  # int64
    vwap_bands: np.ndarray  # (m, 5): VWAP_BANDS
    sr_offsets: np.ndarray  # (n + 1,): row i's clusters are [offsets[i], offsets[i + 1])
    sr_raw: np.ndarray  # the stored prices (before the divisor)
    sr_price: np.ndarray
    sr_kind_number: np.ndarray  # int64: the kind's place in sr_kind_names (-1: NULL)
    sr_kind_names: np.ndarray  # object: the distinct kinds
    sr_touches: np.ndarray  # int64
    sr_last_ns: np.ndarray  # int64
    usable: np.ndarray  # bool
    row_form: dict[int, KeyLevelsSnapshot] = field(default_factory=dict)  # the unusable rows
    computed: tuple[KeyLevelsSnapshot, ...] = ()
    #: support/resistance tuples made so far, by (divisor, stored list): rows holding the
    #: same list on one basis share one tuple of PriceLevels
    _levels: dict[Any, tuple[PriceLevel, ...]] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        """Stored rows (the computed snapshots follow them)."""
        return len(self.bar_ns)

    @property
    def count(self) -> int:
        """Distinct snapshots: the stored rows, then the computed ones."""
        return len(self.bar_ns) + len(self.computed)

    def sources(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the numbers of the snapshots read from the columns (the usable stored
        rows) and of those read as objects (``make``: the other stored rows, then the
        computed snapshots)."""
        return np.flatnonzero(self.usable), np.concatenate(
            [np.flatnonzero(~self.usable), np.arange(len(self), self.count, dtype=np.int64)])

    def make(self, j: int) -> KeyLevelsSnapshot:
        """Return snapshot ``j`` as the scalar provider gives it (a usable row's is built
        from the columns on every call: ``PieceColumn`` keeps the one it asks for)."""
        if j >= len(self):
            return self.computed[j - len(self)]
        made = self.row_form.get(j)
        return self.snapshot(j) if made is None else made

    def vwap_anchor_is(self, anchor: str) -> np.ndarray:
        """Return per stored VWAP whether it is anchored at ``anchor``."""
        found = np.flatnonzero(self.vwap_anchor_names == anchor)
        if not len(found):
            return np.zeros(len(self.vwap_anchor_number), dtype=bool)
        return self.vwap_anchor_number == found[0]

    def snapshot(self, i: int) -> KeyLevelsSnapshot:
        """Return stored row i's snapshot as the row form makes it (a usable row's fields)."""
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
                         _named(self.vwap_anchor_names, self.vwap_anchor_number[a:b]),
                         self.vwap_anchor_ns[a:b].tolist(),
                         self.vwap_bands[a:b].tolist(), strict=True))

    def _price_levels(self, i: int) -> tuple[PriceLevel, ...]:
        a, b = int(self.sr_offsets[i]), int(self.sr_offsets[i + 1])
        if a == b:
            return ()
        # bit patterns of the floats: equal means bit for bit
        kinds = _named(self.sr_kind_names, self.sr_kind_number[a:b])
        key = (float(self.divisor[i]).hex(), self.sr_raw[a:b].view(np.int64).tobytes(),
               tuple(kinds), self.sr_touches[a:b].tobytes(),
               self.sr_last_ns[a:b].tobytes())
        made = self._levels.get(key)
        if made is None:
            made = self._levels[key] = tuple(
                PriceLevel(price=price, kind=kind, touches=touches,
                           last_touch=utc_datetime(last))
                for price, kind, touches, last in zip(
                    self.sr_price[a:b].tolist(), kinds,
                    self.sr_touches[a:b].tolist(), self.sr_last_ns[a:b].tolist(),
                    strict=True))
        return made


def _named(names: np.ndarray, numbers: np.ndarray) -> list[Any]:
    """Return the names of ``numbers`` (-1: None, a NULL)."""
    return [None if j < 0 else names[j] for j in numbers.tolist()]


LevelPieces = LevelColumns | Sequence[Any]
"""A batch's distinct levels pieces: the provider's ``LevelColumns`` (rows number them, -1:
none), or objects (KeyLevelsSnapshots; None or another type: none)."""


def level_pieces(ctx: BatchContext) -> tuple[np.ndarray, LevelPieces]:
    """Return per row of ``ctx`` the number of its distinct levels piece, and those pieces:
    the provider's LevelColumns when the piece is kept as columns (-1: no piece), else the
    distinct objects (``BatchContext.distinct_pieces``)."""
    pieces = ctx.piece("levels")
    if isinstance(pieces, PieceColumn) and isinstance(pieces.columns, LevelColumns):
        return pieces.code, pieces.columns
    return ctx.distinct_pieces("levels")


def anchored_vwaps(pieces: LevelPieces, code: np.ndarray, anchor: str
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Return per row (``code``: its piece of ``pieces``) the first anchored VWAP named
    ``anchor`` and that VWAP's upper 1-sd band (NaN where it has none, or no
    KeyLevelsSnapshot); LevelColumns' stored rows are read from the columns."""
    code = np.asarray(code, dtype=np.int64)
    if not isinstance(pieces, LevelColumns):
        vwap, upper = _object_vwaps(pieces, anchor)
        return vwap[code], upper[code]
    # one slot more than the snapshots: a row without one (-1) reads the last, NaN
    vwap, upper = np.full(pieces.count + 1, np.nan), np.full(pieces.count + 1, np.nan)
    from_columns, as_objects = pieces.sources()
    vwap[as_objects], upper[as_objects] = _object_vwaps(
        [pieces.make(j) for j in as_objects.tolist()], anchor)
    # the first VWAP named ``anchor`` of each stored row: its stored order
    named = np.flatnonzero(pieces.vwap_anchor_is(anchor))
    owner = np.searchsorted(pieces.vwap_offsets, named, side="right") - 1
    first = np.full(len(pieces) + 1, -1, dtype=np.int64)
    first[owner[::-1]] = named[::-1]
    picked = first[from_columns]
    found = picked >= 0
    vwap[from_columns[found]] = pieces.vwap_bands[picked[found], 0]
    upper[from_columns[found]] = pieces.vwap_bands[picked[found], 1]
    at = np.where(code < 0, pieces.count, code)
    return vwap[at], upper[at]


def _object_vwaps(snapshots: Sequence[Any], anchor: str) -> tuple[np.ndarray, np.ndarray]:
    """Return ``anchored_vwaps`` of each of ``snapshots`` (objects), read from its fields."""
    vwap, upper = np.full(len(snapshots), np.nan), np.full(len(snapshots), np.nan)
    for j, snap in enumerate(snapshots):
        if isinstance(snap, KeyLevelsSnapshot):
            found = next((v for v in snap.anchored_vwaps if v.anchor == anchor), None)
            if found is not None:
                vwap[j], upper[j] = found.vwap, found.upper_1
    return vwap, upper
