"""Column helpers the modules' batch forms share: distinct keys, evidence encoded once per
distinct key, severity blocks, sides, ISO times and Python's rounding, column-wise."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from buddy.batch.result import FactColumn, IssueBlock, evidence_json
from buddy.domain import Severity, Side


def evidence_once(rows: np.ndarray, keys: Sequence[Any],
                  facts: Callable[[np.ndarray], list[FactColumn]]) -> np.ndarray:
    """Return the evidence JSON of each of ``rows``, built once per distinct combination of
    ``keys`` (arrays aligned with ``rows`` that together determine the facts).

    ``facts(r)`` returns the FactColumns of the rows ``r`` (a subset of ``rows``). Encoding
    evidence costs far more than an array operation, and in a replay many rows share a
    snapshot, a bar or a side, so each distinct evidence string is encoded once.
    """
    first, inverse = distinct(*keys)
    return evidence_json(facts(rows[first]), len(first))[inverse]


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


def severity_blocks(code: str, rows: np.ndarray, where: np.ndarray, severity: Severity,
                    otherwise: Severity, evidence: np.ndarray) -> list[IssueBlock]:
    """Return the issues of ``code`` on ``rows`` as one IssueBlock per severity
    (``severity`` where ``where``, else ``otherwise``).

    A row holds one issue of a code, so the split keeps the emission order; a block of one
    severity spares ``issues_frame`` converting a severity per row.
    """
    where = np.asarray(where, dtype=bool)
    return [IssueBlock(code, rows[mask], value, evidence[mask])
            for mask, value in ((where, severity), (~where, otherwise)) if mask.any()]


def side_values(sign: np.ndarray) -> np.ndarray:
    """Return ``intent.side.value`` per row from the ``sign`` column (+1 long, -1 short):
    cheaper than converting the ``side`` strings of every row."""
    return np.where(sign > 0, Side.LONG.value, Side.SHORT.value).astype(object)


def isoformat(times: pd.Series, *, pandas: bool) -> np.ndarray:
    """Return ``isoformat()`` of each tz-aware time, as ``datetime`` (``pandas=False``: at most
    microseconds) or ``pd.Timestamp`` (nanoseconds when present) writes it.

    UTC times are formatted with numpy (the fraction only where it is non-zero, as both
    ``isoformat``s do); any other zone element by element.
    """
    index = pd.DatetimeIndex(times)
    if index.tz is None or str(index.tz) != "UTC":
        if pandas:
            return np.array([t.isoformat() for t in index], dtype=object)
        return np.array([t.to_pydatetime().isoformat() for t in index], dtype=object)
    ns = index.as_unit("ns").asi8
    wall = ns.view("datetime64[ns]")
    out = np.datetime_as_string(wall, unit="s").astype(object)
    micro = ns % 1_000_000_000 != 0
    if micro.any():
        out[micro] = np.datetime_as_string(wall[micro], unit="us").astype(object)
    nano = (ns % 1000 != 0) if pandas else np.zeros(len(ns), dtype=bool)
    if nano.any():
        out[nano] = np.datetime_as_string(wall[nano], unit="ns").astype(object)
    return out + "+00:00"


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


def py_round(values: np.ndarray, digits: int) -> np.ndarray:
    """Return Python's ``round(float(v), digits)`` of each element (NaN stays NaN).

    ``rint(v * 10**digits) / 10**digits`` is Python's correctly rounded ``round`` unless
    ``v * 10**digits`` lies within a few ulps of a half (where the product's own rounding may
    tip it) or is too large for whole numbers to be exact; those rare elements are rounded by
    Python's ``round`` itself.
    """
    values = np.asarray(values, dtype=np.float64)
    scale = 10.0 ** digits
    with np.errstate(over="ignore", invalid="ignore"):
        scaled = values * scale
        out = np.rint(scaled) / scale
        magnitude = np.abs(scaled)
        off_half = np.abs(scaled - np.floor(scaled) - 0.5)
        doubtful = np.isfinite(values) & (
            (off_half < 1e-6 + 1e-15 * magnitude) | (off_half <= 4 * np.spacing(magnitude))
            | ~(magnitude < 2.0 ** 50))
    redo = np.flatnonzero(doubtful)
    if len(redo):
        out[redo] = [round(v, digits) for v in values[redo].tolist()]
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
