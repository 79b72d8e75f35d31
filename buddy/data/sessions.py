"""Session structure of bar windows, over columns.

Bars carry a ``session`` (the trading session they belong to); a window of bars (row i:
bars ``start[i]:stop[i]`` of one concatenated frame, as ``buddy.batch.context.Windows``
holds them) is read as a sequence of sessions. Windows of one frame may overlap, so the
structure is found once over the whole frame (``SessionRuns``: runs of consecutive bars of
one session) and each window takes its runs, the first one cut at the window's first bar.

Times are UTC int64 nanoseconds (``ts``: a bar's open, ``ts_close``: the moment it was
complete). Every function here assumes windows in time order with no missing session;
``disordered`` finds the windows that are not (callers leave those rows unchecked).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

#: No time (numpy's NaT as int64).
NAT = np.iinfo(np.int64).min
WEEK_NS = 7 * 86_400_000_000_000
#: Matrix cells one chunk of the (window x session) computations may hold.
_CHUNK_CELLS = 2_000_000


def session_codes(values: Any) -> np.ndarray:
    """Return each bar's session as an int64 code ordered as the session values (-1: none)."""
    array = getattr(values, "array", values)
    if isinstance(array, pd.arrays.DatetimeArray):  # the store's: factorize the integers
        codes, uniques = pd.factorize(array.asi8, sort=True)
        if len(uniques) and uniques[0] == NAT:  # NaT sorts first: make it -1
            codes = codes - 1
        return np.asarray(codes, dtype=np.int64)
    codes, _ = pd.factorize(values, sort=True)
    return np.asarray(codes, dtype=np.int64)


def count_in(flags: np.ndarray, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """Return the number of True ``flags`` in ``[start, stop)`` per window."""
    total = np.zeros(len(flags) + 1, dtype=np.int64)
    np.cumsum(flags, out=total[1:])
    return total[stop] - total[start]


def disordered(ts: np.ndarray, ts_close: np.ndarray, session: np.ndarray,
               start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """Return the windows a session reading cannot trust: a missing time or session, or
    opens, closes or sessions going back."""
    pairs_end = np.maximum(stop - 1, start)  # pair j is bars (j, j + 1)
    bad = count_in((ts == NAT) | (ts_close == NAT) | (session < 0), start, stop) > 0
    back = (ts[1:] <= ts[:-1]) | (ts_close[1:] < ts_close[:-1]) | (session[1:] < session[:-1])
    return bad | (count_in(back, start, pairs_end) > 0)


@dataclass(frozen=True, slots=True)
class SessionRuns:
    """The concatenated bars cut into runs of one session: run r is bars
    ``first[r]:first[r + 1]``; ``run_of[j]`` is bar j's run. A run also ends where time does
    not ascend (where two windows meet in the frame)."""

    run_of: np.ndarray
    first: np.ndarray

    @classmethod
    def of(cls, ts: np.ndarray, session: np.ndarray) -> SessionRuns:
        """Return the runs of bars with opens ``ts`` and session codes ``session``."""
        new = np.ones(len(ts), dtype=bool)
        new[1:] = (session[1:] != session[:-1]) | (ts[1:] <= ts[:-1])
        return cls(run_of=np.cumsum(new) - 1, first=np.flatnonzero(new))

    def __len__(self) -> int:
        return len(self.first)

    @property
    def end(self) -> np.ndarray:
        """One past each run's last bar."""
        return np.append(self.first[1:], len(self.run_of))

    def counted(self, start: np.ndarray, stop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return per window (the first run starting after its first bar, the sessions it
        holds): runs ``a - 1`` (cut at ``start``) to ``a + count - 2`` are its sessions."""
        a = self.run_of[start] + 1
        return a, self.run_of[stop - 1] + 2 - a


@dataclass(frozen=True, slots=True)
class WindowSessions:
    """Per window: its sessions, the last one's open and estimated close, and the next open.

    ``opened``: the first bar of the last session; ``closes``: ``opened`` plus the median
    length (first open to last close) of the earlier sessions; ``next_open``: the first
    session open of the window, moved a week on, at or after ``closes`` (NAT: none). Only
    windows with ``count >= 2`` have an estimate.
    """

    count: np.ndarray
    opened: np.ndarray  # ns
    closes: np.ndarray  # ns
    next_open: np.ndarray  # ns, NAT where none


def window_sessions(ts: np.ndarray, ts_close: np.ndarray, runs: SessionRuns,
                    start: np.ndarray, stop: np.ndarray) -> WindowSessions:
    """Return the session structure of the windows ``[start, stop)`` (see WindowSessions).

    The session in force is the last bar's; it opened at that session's first bar in the
    window and lasts the median length of the earlier sessions in the window (the first
    one counted from the window's first bar), so an early close or a missing first bar
    shifts the estimate. Nanoseconds throughout.
    """
    first, end = runs.first, runs.end
    n_runs = len(runs)
    a, count = runs.counted(start, stop)
    last = a + count - 2  # the last session's run
    several = count >= 2
    opened = np.where(several, ts[first[np.maximum(last, 0)]], ts[start])
    length = ts_close[end - 1] - ts[first]
    first_length = ts_close[first[np.minimum(a, n_runs - 1)] - 1] - ts[start]

    median = np.zeros(len(start), dtype=np.int64)
    windows = np.flatnonzero(several)
    earlier = count[windows] - 1
    for part in _chunks(len(windows), int(earlier.max()) if len(windows) else 0):
        at, m = windows[part], earlier[part]
        column = np.arange(int(m.max()))[None, :]
        table = length[np.clip(a[at, None] + column - 1, 0, n_runs - 1)].astype(np.float64)
        table[:, 0] = first_length[at]
        table[column >= m[:, None]] = np.inf
        table.sort(axis=1)
        row = np.arange(len(at))
        median[at] = np.rint((table[row, (m - 1) // 2] + table[row, m // 2]) / 2.0)
    closes = opened + median

    # the first session open a week on at or after the estimated close; opens ascend
    after = closes - WEEK_NS
    first_ok = ts[start] >= after
    lo, hi = a.copy(), a + count - 1
    while (searching := lo < hi).any():
        mid = (lo + hi) // 2
        early = ts[first[np.minimum(mid, n_runs - 1)]] < after
        lo = np.where(searching & early, mid + 1, lo)
        hi = np.where(searching & ~early, mid, hi)
    has_next = several & (first_ok | (lo < a + count - 1))
    next_open = np.where(first_ok, ts[start], ts[first[np.minimum(lo, n_runs - 1)]])
    return WindowSessions(count=count, opened=opened, closes=closes,
                          next_open=np.where(has_next, next_open + WEEK_NS, NAT))


def same_offset_mean(values: np.ndarray, ts: np.ndarray, runs: SessionRuns,
                     start: np.ndarray, stop: np.ndarray, lookback: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Return per window the mean of ``values`` (NaN skipped) over the bars at the last bar's
    offset from its session's open in the earlier sessions, the last ``lookback`` of them, and
    their number (sessions). Intraday volume follows the clock: this is its reference."""
    first = runs.first
    n_runs = len(runs)
    run_of = runs.run_of
    a, count = runs.counted(start, stop)
    several = count >= 2
    # bars by (offset from their run's open, run): hash the offsets, sort the few distinct
    # ones, then a stable sort by offset alone keeps runs ascending (radix on small codes)
    seen, distinct = pd.factorize(ts - ts[first[run_of]])
    by_value = np.argsort(distinct)
    offsets = np.asarray(distinct)[by_value]
    rank = np.empty(len(by_value), dtype=np.int64)
    rank[by_value] = np.arange(len(by_value))
    offset_code = rank[seen]
    order = np.argsort(offset_code.astype(np.int16) if len(offsets) < 2 ** 15 else offset_code,
                       kind="stable")
    key = offset_code * n_runs + run_of
    keys = key[order]
    last_bar = stop - 1
    code = key[last_bar] // n_runs
    # the full earlier sessions (runs a .. last - 1) holding a bar at that offset
    lo = np.searchsorted(keys, code * n_runs + a)
    full = np.where(several, np.searchsorted(keys, code * n_runs + a + count - 2) - lo, 0)
    # the window's first session is cut at its first bar: its offsets count from there
    offset = ts[last_bar] - ts[first[run_of[last_bar]]]
    first_offset = offset + ts[start] - ts[first[a - 1]]
    first_code = np.minimum(np.searchsorted(offsets, first_offset), len(offsets) - 1)
    first_key = first_code * n_runs + a - 1
    at_first = np.minimum(np.searchsorted(keys, first_key), len(keys) - 1)
    use_first = (several & (offsets[first_code] == first_offset) & (keys[at_first] == first_key)
                 & (full < lookback))
    taken = np.minimum(full, lookback)
    same = taken + use_first
    hi = lo + full
    mean = np.full(len(start), np.nan)
    for part in _chunks(len(start), lookback):
        j = np.arange(lookback)[None, :]
        shift = use_first[part, None].astype(np.int64)
        position = hi[part, None] - taken[part, None] + j - shift
        bar = order[np.clip(position, 0, len(order) - 1)]
        bar = np.where((j == 0) & (shift == 1), order[at_first[part], None], bar)
        picked = values[bar]
        valid = (j < same[part, None]) & ~np.isnan(picked)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean[part] = np.where(valid, picked, 0.0).sum(axis=1) / valid.sum(axis=1)
    return mean, same


def session_totals(values: np.ndarray, runs: SessionRuns, start: np.ndarray,
                   stop: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Return per window the sums of ``values`` (NaN as 0) over each of its last ``k``
    sessions, oldest first, as an (N, k) matrix, and which cells hold a session (the first
    session counted from the window's first bar, the last up to its last bar)."""
    clean = np.where(np.isnan(values), 0.0, values)
    # running sums that restart with each session: a session's total never loses digits to
    # the sums of the (possibly far larger) series before it in the frame
    running = np.zeros(len(values) + 1)
    running[1:] = pd.Series(clean).groupby(runs.run_of, sort=False).cumsum().to_numpy()
    first, end = runs.first, runs.end
    a, count = runs.counted(start, stop)
    run = (a + count - 2)[:, None] - k + 1 + np.arange(k)[None, :]
    valid = run >= (a - 1)[:, None]
    run = np.where(valid, run, 0)
    lo = np.maximum(start[:, None], first[run])
    hi = np.minimum(stop[:, None], end[run])
    before = np.where(lo > first[run], running[lo], 0.0)  # the session's sum up to lo
    return np.where(valid & (hi > lo), running[hi] - before, 0.0), valid


def _chunks(n: int, width: int) -> list[slice]:
    step = max(1, _CHUNK_CELLS // max(1, width))
    return [slice(i, min(n, i + step)) for i in range(0, n, step)]
