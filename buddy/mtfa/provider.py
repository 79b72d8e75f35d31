"""The ContextPack's ``mtfa`` piece, read point-in-time from bars and TA features.

For each timeframe of the instrument's stack the provider reads the LAST CLOSED bar
(``ts_close <= as_of``) and its feature row. A higher-timeframe bar still forming at as_of
(this week's 1w bar on a Wednesday, today's 1d bar at noon) has ``ts_close > as_of`` and is
never read: on a Wednesday the 1w read is last week's bar.

The piece is all or nothing: when any stack timeframe has no closed bar, no feature row or
undefined indicators on its last closed bar, or a last closed bar older than
``MAX_STALE_BARS`` bar lengths plus ``STALE_GRACE`` (weekends and holidays), the piece is None
and the reason names every such timeframe. A partial stack would score alignment on fewer
timeframes than it claims to.

``MTFAProvider`` (the instance ``mtfa_provider``) implements
``buddy.context.providers.PieceProvider``. Its batch form gives the pieces of many requests:
each symbol's stack comes from the whole bars and features tables read once per process
(``buddy.store.mtfa.stack_series``, numpy columns), each row's last closed bar per timeframe
is found with ``searchsorted``, and rows with the same last closed bars share one snapshot
(the pieces are a ``PieceColumn`` over the snapshots made: per row the number of its own).
When a stack timeframe has no bar at all no row can read cleanly: only the reasons are
built, each timeframe's problem once per bar that does not read (or per age of a stale
bar), each reason once per distinct as_of and problems.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from buddy.batch.columns import objects
from buddy.batch.pieces import (
    as_of_datetime,
    as_of_ns,
    groups,
    last_closed,
    row_groups,
)
from buddy.context.piece_columns import PieceColumn
from buddy.context.pieces import MTFASnapshot
from buddy.context.providers import BatchPieceRequest, BatchPieces, PieceRequest
from buddy.mtfa.compute import (
    DEFAULT_TREND_RULE,
    REQUIRED_FEATURES,
    ClosedBarReading,
    TrendRule,
    mtfa_snapshot,
    reading_problem,
    stack_for,
)
from buddy.store import Store
from buddy.store.mtfa import BarTrends, last_closed_bars, stack_series
from buddy.timeframes import Timeframe

#: A last closed bar older than this many bar lengths (plus the grace) is stale.
MAX_STALE_BARS = 3
#: Calendar time allowed on top of MAX_STALE_BARS for weekends and holidays.
STALE_GRACE = pd.Timedelta(days=4)


@dataclass(frozen=True, slots=True)
class MTFAProvider:
    """The ``mtfa`` piece's provider: the instrument's timeframe stack, last closed bars."""

    def __call__(self, request: PieceRequest) -> tuple[MTFASnapshot | None, str | None]:
        """Return the MTFA snapshot of ``request.instrument`` at ``request.as_of``, or None
        and which stack timeframes are missing and why."""
        inst = request.instrument
        return read_mtfa(request.store, inst.symbol, stack_for(inst.asset_class,
                                                               inst.trading_calendar),
                         request.as_of)

    def batch(self, request: BatchPieceRequest) -> BatchPieces:
        """Return (pieces, reasons) per row: ``mtfa_batch``."""
        return mtfa_batch(request)


def read_mtfa(store: Store, symbol: str, stack: tuple[Timeframe, ...], as_of: datetime,
              rule: TrendRule = DEFAULT_TREND_RULE) -> tuple[MTFASnapshot | None, str | None]:
    """Return the MTFA snapshot of ``symbol`` over ``stack`` from bars closed at ``as_of``."""
    rows = last_closed_bars(store, symbol, [str(tf) for tf in stack], as_of)
    by_tf = {Timeframe.parse(r["timeframe"]): r for r in rows.to_dict("records")}
    return stack_reading(symbol, stack, as_of, by_tf, rule)


def stack_reading(symbol: str, stack: tuple[Timeframe, ...], as_of: datetime,
                  by_tf: Mapping[Timeframe, Mapping[str, Any]],
                  rule: TrendRule = DEFAULT_TREND_RULE
                  ) -> tuple[MTFASnapshot | None, str | None]:
    """Return the MTFA snapshot, or None and why, from each stack timeframe's last closed
    bar: ``by_tf`` maps a timeframe to its ``last_closed_bars`` row (absent: no bar)."""
    as_of_ts = pd.Timestamp(as_of)
    readings, problems = [], []
    for tf in stack:
        row = by_tf.get(tf)
        if row is None:
            problems.append(_no_bar(tf))
            continue
        reading, problem = bar_reading(symbol, tf, row)
        if reading is None:
            problems.append(str(problem))
            continue
        problem = _staleness(tf, as_of_ts, row["ts_close"])
        if problem is not None:
            problems.append(problem)
            continue
        readings.append(reading)
    if problems:
        return None, _incomplete(symbol, stack, problems)
    return mtfa_snapshot(readings, rule), None


def bar_reading(symbol: str, tf: Timeframe, row: Mapping[str, Any]
                ) -> tuple[ClosedBarReading | None, str | None]:
    """Return the reading of one timeframe's last closed bar (a ``last_closed_bars`` row),
    or None and the problem that keeps it from reading (staleness aside)."""
    bar_ts = pd.Timestamp(row["ts"])
    bar_day = f"{_day_text(bar_ts)}, {int(row['n_closed'])} closed bars"
    if not row["has_features"]:
        return None, (f"{tf}: no feature row for the last closed bar ({bar_day}); run "
                      f"`buddy jobs features --symbols {symbol} --timeframes {tf}`")
    reading = ClosedBarReading(
        timeframe=tf, bar_ts=bar_ts.to_pydatetime(),
        close=float(row["close"]), **{k: _float(row[k]) for k in REQUIRED_FEATURES})
    problem = reading_problem(reading)
    if problem is not None:
        return None, f"{tf}: {problem} ({bar_day})"
    return reading, None


def _day_text(ts: pd.Timestamp) -> str:
    """Return ``f"{ts:%Y-%m-%d}"`` (its date in its zone) without strftime's cost."""
    day = ts.date()
    return day.isoformat() if day.year >= 1000 else f"{ts:%Y-%m-%d}"


def _no_bar(tf: Timeframe) -> str:
    return f"{tf}: no bar closed at or before as_of"


def _staleness(tf: Timeframe, as_of_ts: pd.Timestamp, ts_close: Any) -> str | None:
    age = as_of_ts - pd.Timestamp(ts_close)
    if age > stale_after(tf):
        return f"{tf}: the last closed bar closed {age} before as_of (stale)"
    return None


def _incomplete(symbol: str, stack: tuple[Timeframe, ...], problems: list[str]) -> str:
    """Return the reason of a stack that does not read: its timeframes' problems. The
    as_of is the intent's own (on its report): rows whose problems are the same say the
    same words, and a batch stores them once."""
    stack_text = "/".join(str(tf) for tf in stack)
    return f"MTFA stack {stack_text} of {symbol} incomplete: " + "; ".join(problems)


def stale_after(tf: Timeframe) -> pd.Timedelta:
    """Return the age beyond which the last closed bar of ``tf`` is stale."""
    return MAX_STALE_BARS * tf.nominal + STALE_GRACE


def _float(value: object) -> float:
    if type(value) is float:  # the common case, NaN included
        return value
    return math.nan if value is None or pd.isna(value) else float(value)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- batch form

def mtfa_batch(request: BatchPieceRequest) -> BatchPieces:
    """Batch form of ``mtfa_provider``: (pieces, reasons) per row, one read per process.

    A row whose every stack timeframe reads cleanly gets the snapshot shared by the rows with
    the same last closed bars; the reason of any other row is ``stack_reading``'s, built once
    per (symbol, as_of) (per distinct problems when a timeframe has no bar).
    """
    n = len(request)
    pieces = _Snapshots(n)
    reasons = np.empty(n, dtype=object)  # None on every row until set
    inst = request.instrument
    t = as_of_ns(request.intents["as_of"])
    keyed = [(str(symbol), stack_for(str(asset_class), str(calendar)),
              np.asarray(rows, dtype=np.int64))
             for (symbol, asset_class, calendar), rows in row_groups(
                 inst["symbol"].to_numpy(object), inst["asset_class"].to_numpy(object),
                 inst["trading_calendar"].to_numpy(object)).items()]
    for symbol, stack, rows in keyed:  # each symbol's stack, from the whole tables
        series = stack_series(request.store, symbol, [str(tf) for tf in stack],
                              as_of_datetime(int(t[rows].max())))
        _stack_rows(symbol, stack, {tf: series[str(tf)] for tf in stack}, rows, t[rows],
                    pieces, reasons)
    made = pieces.made
    return PieceColumn(pieces.code, len(made), made.__getitem__), reasons


class _Snapshots:
    """The snapshots of a batch: per row the number of its snapshot in ``made`` (-1:
    none); rows with the same last closed bars share one."""

    def __init__(self, n: int) -> None:
        self.code = np.full(n, -1, dtype=np.int64)
        self.made: list[MTFASnapshot] = []

    def spread(self, made: Sequence[tuple[MTFASnapshot | None, str | None]],
               codes: np.ndarray, rows: np.ndarray, reasons: np.ndarray) -> None:
        """Give ``rows`` (group ``codes``) their group's (snapshot, reason) ``made[u]``."""
        number = np.full(len(made), -1, dtype=np.int64)
        why = np.empty(len(made), dtype=object)
        for u, (piece, reason) in enumerate(made):
            why[u] = reason
            if piece is not None:
                number[u] = len(self.made)
                self.made.append(piece)
        self.code[rows] = number[codes]
        reasons[rows] = why[codes]


def _stack_rows(symbol: str, stack: tuple[Timeframe, ...], bars: Mapping[Timeframe, BarTrends],
                rows: np.ndarray, t: np.ndarray, pieces: _Snapshots, reasons: np.ndarray
                ) -> None:
    """Fill ``pieces`` and ``reasons`` at ``rows`` (as_of ``t``, ns) of one symbol's stack
    from each timeframe's ``stack_series`` bars."""
    position = np.empty((len(rows), len(stack)), dtype=np.int64)
    closed = np.empty_like(position)
    for k, tf in enumerate(stack):
        position[:, k], closed[:, k] = last_closed(bars[tf].ts, bars[tf].ts_close, t)
    if any(not len(bars[tf]) for tf in stack):
        # a timeframe without a single bar: no row can read cleanly, only reasons are built
        _reasons_only(symbol, stack, bars, position, closed, rows, t, reasons)
        return
    clean = np.ones(len(rows), dtype=bool)
    for k, tf in enumerate(stack):
        series = bars[tf]
        at = np.maximum(position[:, k], 0)
        fresh = t - series.ts_close[at] <= stale_after(tf).value
        clean &= (position[:, k] >= 0) & _readable(series)[at] & fresh
    records = {tf: _records(bars[tf], position[:, k]) for k, tf in enumerate(stack)}
    # a clean row's snapshot depends on its last closed bars only; any other row's reason
    # on its as_of too (a bar's age)
    for subset, key in ((np.flatnonzero(clean), position), (np.flatnonzero(~clean), t[:, None])):
        if not len(subset):
            continue
        codes, first = groups(key[subset])
        pieces.spread([stack_reading(symbol, stack, as_of_datetime(int(t[j])),
                                     _by_tf(stack, records, position[j], closed[j]))
                       for j in subset[first]], codes, rows[subset], reasons)


def _readable(series: BarTrends) -> np.ndarray:
    """Return per bar whether ``bar_reading`` reads it (feature row, defined indicators,
    positive ATR)."""
    readable = series.has_features.copy()
    for values in (series.close, *(series.features[c] for c in REQUIRED_FEATURES)):
        readable &= np.isfinite(values)
    return readable & (series.features["atr_14"] > 0)


def _reasons_only(symbol: str, stack: tuple[Timeframe, ...],
                  bars: Mapping[Timeframe, BarTrends], position: np.ndarray,
                  closed: np.ndarray, rows: np.ndarray, t: np.ndarray, reasons: np.ndarray
                  ) -> None:
    """Give every row its ``stack_reading`` reason (each has a timeframe without bars) at
    ``rows`` of ``reasons``.

    Each timeframe's problem is worded once per distinct cause: a bar that does not read
    once per (bar, closed count), a stale bar once per age; a row's problems are then codes
    into those words, and each distinct set of problems is joined into a reason once, which
    its rows share.
    """
    problem_words: list[str] = []
    code_of: dict[str, int] = {}

    def code(problem: str | None) -> int:
        if problem is None:
            return -1
        if problem not in code_of:
            code_of[problem] = len(problem_words)
            problem_words.append(problem)
        return code_of[problem]

    problems = np.full((len(rows), len(stack)), -1, dtype=np.int64)
    for k, tf in enumerate(stack):
        series = bars[tf]
        if not len(series):
            problems[:, k] = code(_no_bar(tf))
            continue
        at = np.maximum(position[:, k], 0)
        reads = (position[:, k] >= 0) & _readable(series)[at]
        age = t - series.ts_close[at]
        stale = np.flatnonzero(reads & (age > stale_after(tf).value))
        other = np.flatnonzero(~reads)  # no bar, or a bar that does not read: its problem
        if len(other):
            codes, first = groups(np.column_stack([position[other, k], closed[other, k]]))
            made = np.array([code(_no_bar(tf)) if position[j, k] < 0 else code(bar_reading(
                symbol, tf, {**series.record(int(position[j, k])),
                             "n_closed": int(closed[j, k])})[1]) for j in other[first]],
                dtype=np.int64)
            problems[other, k] = made[codes]
        if len(stale):  # the words depend on the age only
            codes, first = groups(age[stale, None])
            made = np.array([code(_staleness(tf, pd.Timestamp(as_of_datetime(int(t[j]))),
                                             series.record(int(position[j, k]))["ts_close"]))
                             for j in stale[first]], dtype=np.int64)
            problems[stale, k] = made[codes]
    # each distinct set of problems joined once
    combo, combo_first = groups(problems)
    reasons[rows] = objects([_incomplete(
        symbol, stack, [problem_words[c] for c in problems[j].tolist() if c >= 0])
        for j in combo_first.tolist()])[combo]


def _records(series: BarTrends, position: np.ndarray) -> dict[int, dict[str, Any]]:
    """Return the bars at the distinct ``position`` (>= 0) as ``last_closed_bars`` rows."""
    return {p: series.record(p) for p in np.unique(position[position >= 0]).tolist()}


def _by_tf(stack: tuple[Timeframe, ...], records: Mapping[Timeframe, dict[int, dict[str, Any]]],
           position: np.ndarray, closed: np.ndarray) -> dict[Timeframe, dict[str, Any]]:
    """Return one row's bars (-1: none) as ``stack_reading``'s by_tf."""
    return {tf: {**records[tf][int(position[k])], "n_closed": int(closed[k])}
            for k, tf in enumerate(stack) if position[k] >= 0}


mtfa_provider = MTFAProvider()
