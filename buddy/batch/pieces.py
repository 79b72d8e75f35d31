"""Piece providers over many intents: ``provide`` and the helpers of the batch forms.

Every provider has a batch form (``buddy.context.providers.PieceProvider.batch``):
``provider.batch(BatchPieceRequest) -> (pieces, reasons)``, two object arrays with one entry
per row, equal row by row to what the scalar provider returns for that row's request
(tests/batch prove it per provider). Rows that share a snapshot may share one piece object.
When the batch form raises anything but a BuddyError, the scalar provider runs row by row,
and a row whose provider raises gets the reason the builder would give ("the <piece>
provider failed: ...").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from buddy.batch.columns import distinct, integer_groups, objects
from buddy.context.piece_columns import PieceColumn
from buddy.context.providers import (
    BatchPieceRequest,
    BatchPieces,
    PieceProvider,
    PieceRequest,
    rows_of,
)
from buddy.errors import BuddyError

__all__ = ["BatchPieceRequest", "PieceRequest", "as_of_datetime", "as_of_ns", "groups",
           "last_closed", "per_distinct", "provide", "row_groups", "spread"]


def provide(name: str, provider: PieceProvider[Any], request: BatchPieceRequest
            ) -> BatchPieces:
    """Return (pieces, reasons) of ``name`` for every row: the provider's batch form, or
    (when it fails) its scalar form row by row."""
    try:
        given, why = provider.batch(request)
        # one object per row even when a batch form hands back tuples or a list; a
        # PieceColumn stays columns (its objects are built when asked)
        pieces = given if isinstance(given, PieceColumn) else _object_column(given)
        reasons = _object_column(why)
        if len(pieces) != len(request) or len(reasons) != len(request):
            raise ValueError(f"{name}.batch returned {len(pieces)} pieces for "
                             f"{len(request)} rows")
        present = pieces.present() if isinstance(pieces, PieceColumn) else np.array(
            [p is not None for p in pieces], dtype=bool)
        absent = np.flatnonzero(~present)
        unsaid = absent[np.array([r is None for r in reasons[absent].tolist()], dtype=bool)
                        ] if len(absent) else absent
        reasons[unsaid] = "provider returned nothing"
        reasons[present] = None
        return pieces, reasons
    except BuddyError:
        raise
    except Exception:  # the scalar form below is the answer of record
        pass
    return rows_of(name, provider, request)


def _object_column(values: Any) -> np.ndarray:
    """Return ``values`` as a 1-D object array of our own (an object array is copied as it
    is, without a Python step per row)."""
    if isinstance(values, np.ndarray) and values.dtype == object and values.ndim == 1:
        return values.copy()
    return objects(list(values))


# ---------------------------------------------------------------- helpers of batch forms
def as_of_ns(values: Any) -> np.ndarray:
    """Return tz-aware as_of values as UTC int64 nanoseconds floored to the microsecond: the
    instant the scalar path sees (``PieceRequest.as_of`` is a datetime)."""
    ns = pd.DatetimeIndex(values).tz_convert("UTC").as_unit("ns").asi8
    return ns // 1000 * 1000


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def as_of_datetime(ns: int) -> datetime:
    """Return an ``as_of_ns`` value as the UTC datetime a PieceRequest carries (what
    ``pd.Timestamp(ns, tz="UTC").to_pydatetime()`` gives, at a fifth of its cost: it runs
    once per distinct snapshot of every piece)."""
    return _EPOCH + timedelta(microseconds=int(ns) // 1000)


def per_distinct(values: Any, convert: Callable[[Any], Any], dtype: Any = object
                 ) -> np.ndarray:
    """Return ``convert(value)`` per row of ``values``, calling it once per distinct value."""
    # a column is factorized as it is (a text column is not converted row by row first)
    codes, uniques = pd.factorize(values if isinstance(values, pd.Series) else np.asarray(
        values, dtype=object))
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
    if (ts_close[1:] >= ts_close[:-1]).all():  # closes ascend with ts: no reordering
        closed = np.searchsorted(ts_close, as_of, side="right").astype(np.int64)
        return closed - 1, closed  # -1 where none closed
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
    first, code = integer_groups(keys) if keys.dtype.kind in "iu" else distinct(*keys.T)
    return code.astype(np.int64), first


def row_groups(*columns: np.ndarray) -> dict[tuple[Any, ...], np.ndarray]:
    """Return the rows (ascending) of each distinct combination of ``columns``' values, in
    order of first appearance; a combination with a missing value is left out. What
    ``DataFrame.groupby(..., sort=False).indices`` gives, without building a frame (which
    would convert object columns of text into Arrow strings first)."""
    if not len(columns[0]):
        return {}
    first, code = distinct(*columns)
    order = np.argsort(code, kind="stable")
    cuts = np.searchsorted(code[order], np.arange(len(first) + 1))
    out = {}
    for g, row in enumerate(first.tolist()):
        key = tuple(column[row] for column in columns)
        if not any(pd.isna(value) for value in key):
            out[key] = order[cuts[g]:cuts[g + 1]]
    return out


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
