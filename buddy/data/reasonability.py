"""Reasonability of bars at load: the "erroneous order" checks of SEC rule 15c3-5, for bars.

``validate_bars`` checks that each bar is well formed (finite positive prices, consistent OHLC,
on the calendar). These checks ask whether a well-formed bar is believable against its own
series, so that one bar with high = 1e308 or a price keyed in cents cannot poison every ATR,
level and report computed from it later. They run on each (symbol, timeframe) series in time
order, on the split-adjusted basis (``corporate_actions``), and a load that breaks any of them
is refused whole.

Rule codes (the contract; the wording of ``detail`` may change):

- PRICE_OUTSIDE_BOUNDS: open, high, low, close or adj_close outside the absolute range
  [``min_price``, ``max_price``] (default 1e-12 to 1e12: wider than any quoted instrument,
  narrower than the numbers that overflow the statistics).
- VOLUME_OUTSIDE_BOUNDS: volume above ``max_volume`` (default 1e18).
- PRICE_JUMP: the bar's log true range, ln(max(high, prev close) / min(low, prev close)), is
  more than ``jump_multiple`` (default 25) times the reference range: the median log true
  range of the prior ``window`` (default 20) bars, never below ``min_reference_range``.
- PRICE_FAR_FROM_SERIES: the bar's high is more than ``max_price_ratio`` (default 10) times,
  or its low less than 1 / ``max_price_ratio`` of, the median close of the prior ``window``
  bars.
- VOLUME_OUTLIER: volume more than ``volume_multiple`` (default 100) times the median volume
  of the prior ``window`` bars (not judged where that median is 0: no volume to compare with).

The first bars of a series have no prior window: they are judged against the median of the
series' first ``window`` bars (a median, so one bad bar among them does not hide itself);
a series of fewer than ``min_history`` bars gets no relative check. Bars that break
``validate_bars`` (NaN, zero or negative) or the absolute bounds take no part in any reference.

Override for real moves: ``allow`` names sessions (dates) whose bars are exempt from the
relative rules (PRICE_JUMP, PRICE_FAR_FROM_SERIES, VOLUME_OUTLIER) and START a new reference
window, so a true crash or an unlisted split is accepted once its date is named. The absolute
bounds have no override.

Tuning (bundled sample, window 20): the largest PRICE_JUMP multiple in the real data is 15.5
(EURUSD 1h, 2017-09-20 18:00, the FOMC hour), then 12.3 (AAPL 2000-09-29, -52% on a profit
warning); the largest price-to-median ratio x2.7 (AAPL, same day); the largest volume multiple
22.4 (AAPL, same day). The synthetic generator peaks at 10.4, x1.3 and 5.2. The defaults leave
room above these (a real -70% biotech gap on a 3% daily range is about 40x and needs ``allow``);
errors the rules are for sit far beyond them: a 1e308 high is about 70,000x, a price keyed x100
about 230x on a 2% daily range.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import date, datetime
from typing import ClassVar

import numpy as np
import pandas as pd

from buddy.config import Config, param
from buddy.data.calendars import to_session_index
from buddy.data.splits import adjust_bars
from buddy.data.validation import (
    VIOLATIONS_COLUMNS,
    BarsReport,
    BarValidationError,
    violations_frame,
)

__all__ = [
    "REASONABILITY_RULES",
    "ReasonabilityConfig",
    "ReasonabilityReport",
    "allowed_sessions",
    "check_reasonability",
]

REASONABILITY_RULES: dict[str, str] = {
    "PRICE_OUTSIDE_BOUNDS": "price outside the absolute plausible range",
    "VOLUME_OUTSIDE_BOUNDS": "volume above the absolute plausible range",
    "PRICE_JUMP": "true range far beyond the recent median true range",
    "PRICE_FAR_FROM_SERIES": "price far from the recent median close",
    "VOLUME_OUTLIER": "volume far beyond the recent median volume",
}

_PRICE_COLUMNS = ("open", "high", "low", "close")
_HINT = ("; if the move is real (a gap, or a split missing from corporate_actions), allow its "
         "date")


@dataclass(frozen=True, slots=True, kw_only=True)
class ReasonabilityConfig(Config):
    """Limits of the load-time reasonability rules (see the module docstring for each rule)."""

    config_name: ClassVar[str] = "reasonability"

    window: int = param(20, lo=3, hi=10_000, unit="bars",
                        doc="prior bars whose median range, close and volume are the reference")
    min_history: int = param(5, lo=3, hi=10_000, unit="bars",
                             doc="bars a series needs before the relative rules judge it")
    jump_multiple: float = param(25.0, lo=2.0, hi=1e6, unit="x median log true range",
                                 doc="PRICE_JUMP: a bar's log true range above this many "
                                     "reference ranges")
    min_reference_range: float = param(0.001, lo=0.0, hi=1.0, unit="log return",
                                       doc="floor of the reference range (a flat, tradeless "
                                           "stretch must not make every tick a jump)")
    max_price_ratio: float = param(10.0, lo=1.5, hi=1e6, unit="x median close",
                                   doc="PRICE_FAR_FROM_SERIES: high above, or low below 1/, "
                                       "this multiple of the reference close")
    volume_multiple: float = param(100.0, lo=2.0, hi=1e9, unit="x median volume",
                                   doc="VOLUME_OUTLIER: volume above this many reference "
                                       "volumes")
    min_price: float = param(1e-12, lo=0.0, lo_open=True, hi=1.0, unit="price",
                             doc="PRICE_OUTSIDE_BOUNDS: smallest plausible price")
    max_price: float = param(1e12, lo=1.0, hi=1e100, unit="price",
                             doc="PRICE_OUTSIDE_BOUNDS: largest plausible price")
    max_volume: float = param(1e18, lo=1.0, hi=1e100, unit="units",
                              doc="VOLUME_OUTSIDE_BOUNDS: largest plausible volume")


@dataclass(frozen=True, slots=True, kw_only=True)
class ReasonabilityReport:
    """What the reasonability rules found, and how many bars each rule judged."""

    report: BarsReport
    examined: dict[str, int]

    @property
    def ok(self) -> bool:
        """Return True when no rule is broken."""
        return self.report.ok

    def raise_if_invalid(self) -> None:
        """Raise BarValidationError naming the rows, rules and values if any rule is broken."""
        if not self.ok:
            raise BarValidationError(self.report)


def allowed_sessions(values: Collection[date | datetime | str | pd.Timestamp]) -> pd.DatetimeIndex:
    """Return the session dates an ``allow`` option names (ISO dates; a timestamp's date)."""
    stamps: list[pd.Timestamp] = []
    for value in values:
        try:
            stamp = pd.Timestamp(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"allow: not a date (got {value!r}); use YYYY-MM-DD") from exc
        if pd.isna(stamp):
            raise ValueError(f"allow: not a date (got {value!r}); use YYYY-MM-DD")
        if stamp.tzinfo is not None:
            stamp = stamp.tz_localize(None)
        stamps.append(stamp.normalize())
    return to_session_index(pd.DatetimeIndex(stamps))


def _group_median(values: pd.Series, segment: np.ndarray, window: int,
                  min_history: int) -> np.ndarray:
    """Return per row the median of the prior ``window`` values of its segment; rows with too
    little history get the median of their segment's first ``window`` values.

    ``segment`` is non-decreasing (rows in time order within their segment). One rolling
    median runs over all rows; only the rows within ``window`` of a segment's start, whose
    window would reach into the previous segment, are recomputed one by one.
    """
    data = values.to_numpy(dtype=np.float64)
    count = len(data)
    median = np.array(values.shift(1).rolling(window, min_periods=min_history).median(),
                      dtype=np.float64)
    starts = np.flatnonzero(np.r_[True, segment[1:] != segment[:-1]])
    ends = np.r_[starts[1:], count]
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        for i in range(start, min(start + window, end)):
            prior = data[start:i]
            prior = prior[~np.isnan(prior)]
            median[i] = np.median(prior) if len(prior) >= min_history else np.nan
        head = data[start:min(start + window, end)]
        head = head[~np.isnan(head)]
        if len(head) >= min_history:
            rows = slice(start, end)
            median[rows] = np.where(np.isnan(median[rows]), np.median(head), median[rows])
    return median


def check_reasonability(bars: pd.DataFrame, *, corporate_actions: pd.DataFrame | None = None,
                        allow: Collection[date | datetime | str | pd.Timestamp] = (),
                        config: ReasonabilityConfig | None = None,
                        history: pd.DataFrame | None = None) -> ReasonabilityReport:
    """Check canonical, ``validate_bars``-clean ``bars`` against the reasonability rules.

    ``corporate_actions`` (canonical layout, any symbols) puts each series on one split basis
    before the relative rules judge it; ``allow`` names sessions exempt from the relative rules
    (see the module docstring). ``history`` holds bars already stored just before ``bars``
    (same series): they serve as the reference of the first new bars and are never judged.
    Rows are named by 0-based position in ``bars`` with their ``ts``; values are the bars'
    own (as traded). Never raises for broken rules: call ``raise_if_invalid``.
    """
    cfg = config or ReasonabilityConfig()
    judge_from = 0
    if history is not None and len(history):
        shared = [c for c in bars.columns if c in history.columns]
        bars = pd.concat([history[shared], bars[shared]], ignore_index=True)
        judge_from = len(history)
    count = len(bars)
    judged_row = np.arange(count) >= judge_from
    ts = pd.DatetimeIndex(pd.to_datetime(bars["ts"], utc=True))
    raw = {c: pd.to_numeric(bars[c], errors="coerce").to_numpy(dtype=np.float64)
           for c in (*_PRICE_COLUMNS, "volume")}
    parts: list[pd.DataFrame] = []
    examined: dict[str, int] = {}

    with np.errstate(invalid="ignore"):
        usable = np.ones(count, dtype=bool)
        bounded = list(_PRICE_COLUMNS) + (["adj_close"] if "adj_close" in bars.columns else [])
        for column in bounded:
            values = (raw[column] if column in raw else
                      pd.to_numeric(bars[column], errors="coerce").to_numpy(dtype=np.float64))
            finite = np.isfinite(values)
            if column in raw:
                usable &= finite & (values > 0)
            out = finite & (values > 0) & ((values < cfg.min_price) | (values > cfg.max_price))
            if column in raw:
                usable &= ~out
            rows = np.flatnonzero(out & judged_row)
            if len(rows):
                parts.append(violations_frame(
                    rows, ts, "PRICE_OUTSIDE_BOUNDS", column, pd.Series(values[rows]),
                    f"{column} must lie in [{cfg.min_price:g}, {cfg.max_price:g}]"))
        examined["PRICE_OUTSIDE_BOUNDS"] = count - judge_from
        volume = raw["volume"]
        out = np.isfinite(volume) & (volume > cfg.max_volume)
        rows = np.flatnonzero(out & judged_row)
        if len(rows):
            parts.append(violations_frame(rows, ts, "VOLUME_OUTSIDE_BOUNDS", "volume",
                                          pd.Series(volume[rows]),
                                          f"volume must be at most {cfg.max_volume:g}"))
        examined["VOLUME_OUTSIDE_BOUNDS"] = count - judge_from
        _relative_rules(bars, ts, raw, usable & ~out, corporate_actions, allow, cfg, parts,
                        examined, judged_row)

    frame = (pd.concat([p for p in parts if not p.empty], ignore_index=True) if parts
             else violations_frame(np.array([], dtype=np.int64), None, "", "", "", ""))
    if len(frame):
        frame = frame.sort_values(["row", "rule"], kind="stable").reset_index(drop=True)
        frame["row"] = frame["row"] - judge_from
    frame = frame[list(VIOLATIONS_COLUMNS)]
    timeframes = ", ".join(sorted(map(str, pd.unique(bars["timeframe"])))) if count else ""
    report = BarsReport(timeframe=timeframes, calendar="", n_rows=count - judge_from,
                        violations=frame,
                        gaps=pd.DataFrame(columns=["found_bars"]),
                        checked_against="the reasonability rules")
    return ReasonabilityReport(report=report, examined=examined)


def _relative_rules(bars: pd.DataFrame, ts: pd.DatetimeIndex, raw: dict[str, np.ndarray],
                    usable: np.ndarray, corporate_actions: pd.DataFrame | None,
                    allow: Collection[date | datetime | str | pd.Timestamp],
                    cfg: ReasonabilityConfig, parts: list[pd.DataFrame],
                    examined: dict[str, int], judged_row: np.ndarray) -> None:
    count = len(bars)
    for rule in ("PRICE_JUMP", "PRICE_FAR_FROM_SERIES", "VOLUME_OUTLIER"):
        examined[rule] = 0
    if count == 0:
        return
    adjusted = bars
    if corporate_actions is not None and not corporate_actions.empty:
        last = to_session_index(bars["session"]).max()
        adjusted = adjust_bars(bars, corporate_actions, last)
    price = {c: pd.to_numeric(adjusted[c], errors="coerce").to_numpy(dtype=np.float64)
             for c in (*_PRICE_COLUMNS, "volume")}
    sessions = to_session_index(bars["session"])
    allowed = np.asarray(sessions.isin(allowed_sessions(allow)))
    symbol_codes, _ = pd.factorize(bars["symbol"])
    timeframe_codes, timeframes = pd.factorize(bars["timeframe"])
    series_codes = symbol_codes.astype(np.int64) * len(timeframes) + timeframe_codes
    # time order within each series; validate_bars has refused duplicates and disorder
    order = np.lexsort((ts.asi8, series_codes))
    code = series_codes[order]
    new_series = np.r_[True, code[1:] != code[:-1]]
    segment = np.cumsum(new_series | allowed[order])
    ok = usable[order]
    high = np.where(ok, price["high"][order], np.nan)
    low = np.where(ok, price["low"][order], np.nan)
    close = np.where(ok, price["close"][order], np.nan)
    volume = np.where(ok & np.isfinite(price["volume"][order]), price["volume"][order], np.nan)
    # the last usable close of the same series, so one bad bar does not make its neighbour jump
    prev_close = pd.Series(close).groupby(code).transform(lambda s: s.shift(1).ffill())
    prev_close = prev_close.to_numpy(dtype=np.float64)
    top = np.where(np.isfinite(prev_close), np.fmax(high, prev_close), high)
    bottom = np.where(np.isfinite(prev_close), np.fmin(low, prev_close), low)
    log_range = np.log(top / bottom)

    window_text = f"the prior {cfg.window} bars (the first bars: the series' first {cfg.window})"
    reference = _group_median(pd.Series(log_range), segment, cfg.window, cfg.min_history)
    # fmax would turn a missing reference (too little history) into the floor: keep it NaN
    reference = np.where(np.isnan(reference), np.nan,
                         np.fmax(reference, cfg.min_reference_range))
    jump_judged = ok & ~allowed[order] & np.isfinite(reference)
    multiple = log_range / reference
    jumps = jump_judged & (multiple > cfg.jump_multiple)

    ref_close = _group_median(pd.Series(close), segment, cfg.window, cfg.min_history)
    far_judged = ok & ~allowed[order] & np.isfinite(ref_close)
    ratio = np.fmax(high / ref_close, ref_close / low)
    above = high / ref_close >= ref_close / low
    far = far_judged & (ratio > cfg.max_price_ratio)

    # The bar after an erroneous one "jumps" back: judge it against the last close before the
    # erroneous run, and name it only if it jumps from there too.
    erroneous = jumps | far
    after_error = np.r_[False, erroneous[:-1]] & ~new_series & jumps
    if after_error.any():
        clean_close = pd.Series(np.where(erroneous, np.nan, close))
        before_run = clean_close.groupby(code).transform(lambda s: s.shift(1).ffill())
        before_run = before_run.to_numpy(dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            from_before = np.log(np.fmax(high, before_run) / np.fmin(low, before_run))
        jumps &= ~(after_error & (from_before / reference <= cfg.jump_multiple))

    up = ~(high / prev_close < prev_close / low)  # NaN (no previous close) reads as up
    new = judged_row[order]  # history bars are references only
    _add(parts, examined, "PRICE_JUMP", jump_judged & new, jumps & new,
         np.where(up, "high", "low"), order, ts, raw,
         lambda i: (f"log true range {log_range[i]:.4g} is {multiple[i]:.1f} x the median "
                    f"{reference[i]:.4g} of {window_text} (previous close "
                    f"{prev_close[i]:.6g}); limit {cfg.jump_multiple:g} x{_HINT}"))
    _add(parts, examined, "PRICE_FAR_FROM_SERIES", far_judged & new, far & new,
         np.where(above, "high", "low"), order, ts, raw,
         lambda i: (f"{'high' if above[i] else 'low'} is x{ratio[i]:.3g} away from the median "
                    f"close {ref_close[i]:.6g} of {window_text}; limit "
                    f"x{cfg.max_price_ratio:g}{_HINT}"))

    ref_volume = _group_median(pd.Series(volume), segment, cfg.window, cfg.min_history)
    judged = ~allowed[order] & np.isfinite(volume) & (ref_volume > 0)
    vol_multiple = volume / np.where(ref_volume > 0, ref_volume, np.nan)
    _add(parts, examined, "VOLUME_OUTLIER", judged & new,
         judged & new & (vol_multiple > cfg.volume_multiple),
         np.full(count, "volume", dtype=object), order, ts, raw,
         lambda i: (f"volume is {vol_multiple[i]:.1f} x the median {ref_volume[i]:.6g} of "
                    f"{window_text}; limit {cfg.volume_multiple:g} x{_HINT}"))


def _add(parts: list[pd.DataFrame], examined: dict[str, int], rule: str, judged: np.ndarray,
         broken: np.ndarray, columns: np.ndarray, order: np.ndarray, ts: pd.DatetimeIndex,
         raw: dict[str, np.ndarray], detail: Callable[[int], str]) -> None:
    # positions here are in time order; ``order`` maps them back to rows of the bars
    examined[rule] = int(judged.sum())
    at = np.flatnonzero(broken)
    if not len(at):
        return
    rows = order[at]
    column = np.asarray(columns[at], dtype=object)
    values = pd.Series([float(raw[c][r]) for c, r in zip(column, rows, strict=True)])
    frame = violations_frame(rows, ts, rule, "", values, pd.Series([detail(int(i)) for i in at]))
    frame["column"] = pd.Series(column, dtype="str")
    parts.append(frame)
