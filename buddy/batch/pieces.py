"""Piece providers over many intents: the batch form of ``buddy.context.builder``'s providers.

A scalar provider ``provider(PieceRequest) -> (piece, reason)`` may carry a batch form as
its attribute ``batch``: ``provider.batch(BatchPieceRequest) -> (pieces, reasons)``, two
object arrays with one entry per row, equal row by row to what the scalar provider returns
for that row's request (tests/batch prove it per provider). Rows that share a snapshot may
share one piece object. Without a batch form, or when it raises anything but a BuddyError,
the scalar provider runs row by row, and a row whose provider raises gets the reason the
builder would give ("the <piece> provider failed: ...").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from buddy.batch.columns import distinct, objects
from buddy.context.builder import PieceProvider, PieceRequest
from buddy.context.pack import Instrument, MarketData
from buddy.errors import BuddyError
from buddy.store import Store
from buddy.timeframes import Timeframe


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchPieceRequest:
    """What a batch provider is given: N rows of requests.

    ``intents`` has at least user_id, symbol, timeframe and as_of (tz-aware UTC) per row;
    ``instrument`` the Instrument fields per row; ``market`` the MARKET_COLUMNS per row (see
    ``buddy.batch.context``); ``market_data(i)`` rebuilds row i's MarketData (None without
    market) for a provider that needs the bars themselves. ``store`` is read-only.
    """

    store: Store
    intents: pd.DataFrame
    instrument: pd.DataFrame
    market: pd.DataFrame
    market_data: Callable[[int], MarketData | None]

    def __len__(self) -> int:
        return len(self.intents)

    def request(self, i: int) -> PieceRequest:
        """Return row i as the scalar provider's PieceRequest."""
        row = self.intents.iloc[i]
        return PieceRequest(
            store=self.store, user_id=str(row["user_id"]),
            instrument=Instrument.from_row(self.instrument.iloc[i].to_dict()),
            timeframe=Timeframe.parse(row["timeframe"]),
            as_of=pd.Timestamp(row["as_of"]).to_pydatetime(), market=self.market_data(i))


def provide(name: str, provider: PieceProvider, request: BatchPieceRequest
            ) -> tuple[np.ndarray, np.ndarray]:
    """Return (pieces, reasons) of ``name`` for every row: the batch form when the provider
    has one, else (or when it fails) the scalar provider row by row."""
    batch = getattr(provider, "batch", None)
    if batch is not None:
        try:
            pieces, reasons = batch(request)
            pieces, reasons = objects(pieces), objects(reasons)
            if len(pieces) != len(request) or len(reasons) != len(request):
                raise ValueError(f"{name}.batch returned {len(pieces)} pieces for "
                                 f"{len(request)} rows")
            reasons[[p is None and r is None for p, r in zip(pieces, reasons, strict=True)]
                    ] = "provider returned nothing"
            reasons[[p is not None for p in pieces]] = None
            return pieces, reasons
        except BuddyError:
            raise
        except Exception:
            pass
    pieces = np.empty(len(request), dtype=object)
    reasons = np.empty(len(request), dtype=object)
    for i in range(len(request)):
        try:
            piece, reason = provider(request.request(i))
        except BuddyError:
            raise
        except Exception as exc:  # as ContextPackBuilder._build
            piece, reason = None, f"the {name} provider failed: {type(exc).__name__}: {exc}"
        pieces[i] = piece
        reasons[i] = None if piece is not None else (reason or "provider returned nothing")
    return pieces, reasons


# ---------------------------------------------------------------- helpers of batch forms
def as_of_ns(values: Any) -> np.ndarray:
    """Return tz-aware as_of values as UTC int64 nanoseconds floored to the microsecond: the
    instant the scalar path sees (``PieceRequest.as_of`` is a datetime)."""
    ns = pd.DatetimeIndex(values).tz_convert("UTC").as_unit("ns").asi8
    return ns // 1000 * 1000


def as_of_datetime(ns: int) -> datetime:
    """Return an ``as_of_ns`` value as the UTC datetime a PieceRequest carries."""
    return pd.Timestamp(int(ns), tz="UTC").to_pydatetime()



def per_distinct(values: Any, convert: Callable[[Any], Any], dtype: Any = object
                 ) -> np.ndarray:
    """Return ``convert(value)`` per row of ``values``, calling it once per distinct value."""
    codes, uniques = pd.factorize(np.asarray(values, dtype=object))
    converted = np.empty(len(uniques), dtype=dtype)
    for u, value in enumerate(uniques):
        converted[u] = convert(value)
    return converted[codes]


def last_closed(ts: np.ndarray, ts_close: np.ndarray, as_of: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """Return, per as_of, the position of the bar with the latest ``ts`` among those with
    ``ts_close <= as_of`` (-1 when none) and how many bars had closed by then.

    One series: ``ts`` ascending and unique, all int64 ns. This is the SQL ``max(ts) ...
    WHERE ts_close <= as_of`` by ``searchsorted``, exact even if ts_close were not ascending.
    """
    closed = np.zeros(len(as_of), dtype=np.int64)
    if not len(ts):
        return np.full(len(as_of), -1, dtype=np.int64), closed
    order = np.argsort(ts_close, kind="stable")
    latest = np.maximum.accumulate(order)  # positions follow ts
    closed = np.searchsorted(ts_close[order], as_of, side="right").astype(np.int64)
    position = np.where(closed > 0, latest[np.maximum(closed - 1, 0)], -1)
    return position.astype(np.int64), closed


def groups(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (group code per row, first row of each group) of the rows of an (N, k) key
    matrix, codes in order of first appearance (hash-based: no sort of N rows)."""
    keys = np.asarray(keys)
    if not len(keys):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    first, code = distinct(*keys.T)
    return code.astype(np.int64), first


def spread(made: Sequence[tuple[Any, str | None]], codes: np.ndarray, rows: np.ndarray,
           pieces: np.ndarray, reasons: np.ndarray) -> None:
    """Write group u's (piece, reason) ``made[u]`` to ``rows`` (group ``codes``): the rows of
    a group share the objects."""
    shared_pieces = np.empty(len(made), dtype=object)
    shared_reasons = np.empty(len(made), dtype=object)
    for u, (piece, reason) in enumerate(made):
        shared_pieces[u], shared_reasons[u] = piece, reason
    pieces[rows] = shared_pieces[codes]
    reasons[rows] = shared_reasons[codes]
