"""Column helpers shared by the column forms: distinct keys, ISO times in UTC, object arrays
and UTC nanoseconds."""

from __future__ import annotations

import ctypes
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd


def factorize_objects(values: Any) -> tuple[np.ndarray, np.ndarray]:
    """Return ``pd.factorize`` of an object column: (each value's code, -1 for None and NaN;
    the distinct values in order of appearance, as objects).

    By object first, then by value: a column of a few distinct texts over many rows (module
    statuses and severities, codes; made with ``repeated`` or taken from a few objects)
    holds the same few objects again and again, and their addresses factorize as integers
    about 8x faster than texts hash and compare (a live object's address is its own). The
    distinct objects are then factorized by value, so equal texts held by different objects
    still share a code."""
    objects = np.ascontiguousarray(values, dtype=object)
    n = len(objects)
    if n < _BY_OBJECT_FROM:
        return pd.factorize(objects)
    # the array's element pointers as integers (a view, read while ``objects`` holds them)
    pointers = np.ctypeslib.as_array(
        ctypes.cast(objects.ctypes.data, ctypes.POINTER(ctypes.c_ssize_t)), shape=(n,))
    by_object, found = pd.factorize(pointers)
    if len(found) > n // 2:  # mostly distinct objects: by value at once
        return pd.factorize(objects)
    first = np.empty(len(found), dtype=np.int64)
    first[by_object[::-1]] = np.arange(n - 1, -1, -1)  # each object's first row
    by_value, uniques = pd.factorize(objects[first])
    return by_value[by_object], uniques


#: Rows from which ``factorize_objects`` goes by object first.
_BY_OBJECT_FROM = 256


def numbered(values: Any, numbers: Mapping[str, int]) -> np.ndarray:
    """Return each text's number in ``numbers`` (-1 for any other value), looked up once per
    distinct value (a few statuses or severities over many rows)."""
    codes, uniques = factorize_objects(values)
    return np.array([*(numbers.get(u, -1) if isinstance(u, str) else -1
                       for u in uniques.tolist()), -1], dtype=np.int64)[codes]


def distinct(*columns: Any) -> tuple[np.ndarray, np.ndarray]:
    """Return (the first position of each distinct combination of ``columns``' values, in
    order of appearance; each position's combination number). NaN and None count as a value."""
    n = len(columns[0])
    key = np.zeros(n, dtype=np.int64)
    width = 1  # the combinations ``key`` can number so far
    for column in columns:
        codes, uniques = (factorize_objects(column) if isinstance(column, np.ndarray)
                          and column.dtype == object else pd.factorize(column))
        base = len(uniques) + 1  # code -1 (NaN, None) is a value too
        if width * base >= _WIDEST:  # renumber the combinations seen so far first
            key, seen = pd.factorize(key)
            width = len(seen)
        key = key * base + (codes + 1)
        width *= base
    return _numbered(key, width)


def integer_groups(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return ``distinct`` over the columns of an (N, k) integer matrix: (the first row of
    each distinct row, in order of appearance; each row's number), the columns combined by
    their ranges into one key where it fits in int64 (one hash pass, not two per column)."""
    keys = np.asarray(keys)
    if not len(keys):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    low, high = keys.min(axis=0), keys.max(axis=0)
    spans = [int(h) - int(lo) + 1 for lo, h in zip(low.tolist(), high.tolist(), strict=True)]
    if math.prod(spans) >= _WIDEST:  # the columns wider than the rows by their codes
        wide = [j for j, span in enumerate(spans) if span > len(keys)]
        keys = keys.copy()
        for j in wide:
            codes, uniques = pd.factorize(keys[:, j])
            keys[:, j], low[j], spans[j] = codes, 0, len(uniques)
        if math.prod(spans) >= _WIDEST:
            return distinct(*keys.T)
    key = keys[:, 0] - low[0]
    for j in range(1, keys.shape[1]):
        key = key * spans[j] + (keys[:, j] - low[j])
    return _numbered(key.astype(np.int64, copy=False), math.prod(spans))


#: Combined keys stay below this (int64 with room for one more step).
_WIDEST = 1 << 62


def _numbered(key: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (first position of each distinct ``key`` (ints in [0, width)), in order of
    appearance; the number of each position's key)."""
    n = len(key)
    if width <= max(n, _DIRECT):  # by address: a few passes, no hash table
        at = np.full(width, n, dtype=np.int64)
        at[key[::-1]] = np.arange(n - 1, -1, -1, dtype=np.int64)
        first = np.sort(at[at < n])
        number = np.empty(width, dtype=np.int64)
        number[key[first]] = np.arange(len(first), dtype=np.int64)
        return first, number[key]
    code, uniques = pd.factorize(key)
    first = np.zeros(len(uniques), dtype=np.int64)
    first[code[::-1]] = np.arange(n)[::-1]
    return first, code.astype(np.int64, copy=False)


#: Keys below this are numbered by address whatever the row count (cheaper than a hash).
_DIRECT = 1 << 14


def iso_utc(times: Any) -> np.ndarray:
    """Return each time as ISO 8601 in UTC (``2012-06-01T20:00:00+00:00``; the fraction of a
    second only where there is one; NaT -> None)."""
    index = pd.DatetimeIndex(times)
    index = index.tz_convert("UTC") if index.tz is not None else index.tz_localize("UTC")
    ns = index.as_unit("ns").asi8
    wall = ns.view("datetime64[ns]")
    out = np.datetime_as_string(wall, unit="s").astype(object) + "+00:00"
    fraction = ns % 1_000_000_000 != 0
    if fraction.any():
        out[fraction] = np.datetime_as_string(wall[fraction], unit="us").astype(object) + (
            "+00:00")
    out[index.isna()] = None
    return out


def repeated(value: Any, n: int) -> np.ndarray:
    """Return an object array of ``n`` references to ``value`` (a tuple stays one element;
    ``np.full`` would convert a text to a new object per element, at ~100x the cost)."""
    out = np.empty(n, dtype=object)
    out.fill(value)
    return out


def choose(where: Any, then: Any, otherwise: Any) -> np.ndarray:
    """Return an object array of ``then`` where ``where`` else ``otherwise``: references to
    the two values (``np.where`` over texts makes a new text object per row, which
    ``factorize_objects`` then cannot tell apart by object)."""
    return np.array([otherwise, then], dtype=object)[np.asarray(where, dtype=bool).view(np.uint8)]


def objects(values: Sequence[Any]) -> np.ndarray:
    """Return a 1-D object array of ``values``, element by element (a tuple stays one
    element; numpy would otherwise split it into another dimension)."""
    out = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):
        out[i] = value
    return out


def utc_ns(values: Any) -> np.ndarray:
    """Return tz-aware times (a column, an index, a list) as UTC int64 nanoseconds."""
    return pd.DatetimeIndex(values).tz_convert("UTC").as_unit("ns").asi8
