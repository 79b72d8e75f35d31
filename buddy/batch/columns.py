"""Column helpers shared by the column forms: distinct keys, ISO times in UTC, object arrays
and UTC nanoseconds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd


def distinct(*columns: Any) -> tuple[np.ndarray, np.ndarray]:
    """Return (the first position of each distinct combination of ``columns``' values, in
    order of appearance; each position's combination number). NaN and None count as a value."""
    key = np.zeros(len(columns[0]), dtype=np.int64)
    for column in columns:
        codes, uniques = pd.factorize(column)
        key, _ = pd.factorize(key * (len(uniques) + 1) + codes + 1)
    count = int(key.max()) + 1 if len(key) else 0
    first = np.zeros(count, dtype=np.int64)
    first[key[::-1]] = np.arange(len(key))[::-1]
    return first, key


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
