"""Key levels of one series, bar by bar: what a trader marks on the chart before entering.

``compute_key_levels(bars, anchors, actions=...)`` returns one row per bar, in the columns of
the ``key_levels`` table (``computed_at`` is stamped by the job, at the edge). Every value in
the row of bar t uses bars with ``ts_close`` at or before t's only, so recomputing on
``bars[bars.ts <= t]`` gives the same row bit for bit (the look-ahead tests prove it on real
data). ``compute_key_levels_naive`` is a deliberately plain per-bar loop over the same
definitions; the tests and the benchmark prove both return identical frames.

The levels (the row of bar t holds the levels as of bar t's close: what a trader sees once
bar t has closed, for the session that follows it)
    prior_day_*        high, low and close of the day before the session in force once bar t
                       has closed. Daily bars: bar t itself (the session after it is the next
                       one); weekly bars: bar t's week. Intraday bars: while bar t's session is
                       still trading (the forming session), the previous trading session
                       present in the data (the calendar session in the ``session`` column,
                       so FX days roll at 17:00 New York); once bar t closes at or after its
                       session's close (``calendar``: the instrument's trading calendar), bar
                       t's own session, up to bar t. Without a calendar an intraday bar is
                       taken to leave its session forming.
    pivots_json        pivots from those prior-day values: classic (P, R1-R3, S1-S3),
                       Fibonacci (P +- 0.382/0.618/1.000 x range) and Camarilla (C +- range x
                       1.1/12, /6, /4, /2 as R1-R4 and S1-S4). Null without a prior day.
    rolling_range_*    highest high and lowest low of the last ``ROLLING_RANGE_BARS`` bars,
                       bar t included (null before that many bars exist).
    anchored_vwap_levels_json
                       volume-weighted average of the typical price (H+L+C)/3 from an anchor
                       bar to bar t, with bands at +-1 and +-2 volume-weighted standard
                       deviations. Anchors: the session (intraday), the calendar week (intraday
                       and daily) and month of the bar's session; the most recent CONFIRMED
                       swing high and swing low; and user anchors ('user:<name>', anchored at
                       the first bar closing after the anchor time). An anchor with no volume
                       yet, or fewer than ``min_avwap_bars`` bars (default ``AVWAP_MIN_BARS``)
                       from its anchor bar to bar t, is left out: a VWAP of one bar is that
                       bar's typical price with no band, not a level.
    support_resistance_json
                       clusters of the last ``SR_SWING_POINTS`` confirmed swing points (highs
                       and lows together, in confirmation order). Points are sorted by price and
                       grouped greedily: a point more than ``SR_TOLERANCE_ATR`` x ATR above the
                       first point of its cluster starts a new one (so a cluster spans at most
                       that tolerance). A cluster is a level when it holds at least
                       ``SR_MIN_TOUCHES`` points; its price is the mean of its points,
                       ``touches`` their number, ``last_touch`` the open time of the latest
                       swing bar among them, and its kind 'resistance' when the level is at or
                       above bar t's close, else 'support'. The ``SR_LEVELS_PER_SIDE`` nearest
                       levels on each side of the close are kept. ATR is the mean true range of
                       the ``ATR_BARS`` bars ending at the confirmation bar that last changed
                       the set.

Swings and their confirmation lag
    Bar k is a swing high when its high is above the highs of the ``SWING_BARS`` bars before it
    and at least the highs of the ``SWING_BARS`` bars after it (swing lows mirror this). That is
    known only when bar k + ``SWING_BARS`` has closed, so a swing appears in rows from
    k + ``SWING_BARS`` on, never earlier (an anchored VWAP from it still starts at bar k).

Splits
    Bars are as traded. Levels are computed on a continuous series: every price of bar i is
    multiplied (volume divided) by the product of the ratios of ALL splits with ex_date on or
    before bar i's session, i.e. put on the basis before any recorded split. That product uses
    only splits already in effect at bar i, and does not depend on where the history starts, so
    a truncated or partial read scales every bar exactly as the full history does. Each row's
    levels are then divided by bar t's own product: they are stored on bar t's as-traded
    basis, like ``ta_features``; readers rescale them to their as-of basis.

Units and precision: every level is a price in the instrument's quote currency on bar t's
basis, rounded to ``PRICE_DIGITS`` significant digits (far finer than any tick; it keeps the
stored JSON short); ``touches`` is a count of swing points. Nested times are UTC.

Exactness: sums run in bar order in both implementations (running sums per anchor row, never
differences of a global cumulative sum), so the vectorised and the naive frames are equal bit
for bit, and a row depends only on bars up to its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, SupportsFloat

import numpy as np
import pandas as pd
import pyarrow as pa
from numpy.lib.stride_tricks import sliding_window_view

from buddy.data.calendars import TradingCalendar, get_calendar
from buddy.timeframes import Timeframe

__all__ = [
    "ATR_BARS",
    "AVWAP_MIN_BARS",
    "KEY_LEVELS_COLUMNS",
    "LEVELS_VERSION",
    "PIVOT_NAMES",
    "ROLLING_RANGE_BARS",
    "SR_LEVELS_PER_SIDE",
    "SR_MIN_TOUCHES",
    "SR_SWING_POINTS",
    "SR_TOLERANCE_ATR",
    "SWING_BARS",
    "LevelAnchor",
    "compute_key_levels",
    "compute_key_levels_naive",
    "levels_table",
    "period_anchor_names",
    "same_levels",
    "split_multiplier",
    "user_anchor_vwaps",
]

#: Bumped whenever a definition below changes a stored value (stored rows of another version
#: are recomputed by the job and ignored by the provider).
LEVELS_VERSION = "2.0.0"
ROLLING_RANGE_BARS = 20  # bars in the rolling range, bar t included
SWING_BARS = 5  # bars on each side of a swing point = its confirmation lag, in bars
ATR_BARS = 14  # bars in the mean true range that scales the S/R cluster tolerance
SR_SWING_POINTS = 40  # most recent confirmed swing points clustered into S/R levels
SR_TOLERANCE_ATR = 0.5  # widest S/R cluster, in ATR
SR_MIN_TOUCHES = 2  # swing points a cluster needs to count as a level
SR_LEVELS_PER_SIDE = 3  # support levels kept below the close, and resistance levels above it
PRICE_DIGITS = 10  # significant digits every stored level is rounded to
VWAP_BAND_SIGMAS = (1.0, 2.0)
AVWAP_MIN_BARS = 5  # bars from its anchor (both included) before an anchored VWAP is a level

PIVOT_NAMES: dict[str, tuple[str, ...]] = {
    "classic": ("P", "R1", "R2", "R3", "S1", "S2", "S3"),
    "fibonacci": ("P", "R1", "R2", "R3", "S1", "S2", "S3"),
    "camarilla": ("R1", "R2", "R3", "R4", "S1", "S2", "S3", "S4"),
}

#: The key_levels columns compute_key_levels returns (the table adds computed_at).
KEY_LEVELS_COLUMNS: tuple[str, ...] = (
    "symbol", "timeframe", "ts", "prior_day_high", "prior_day_low", "prior_day_close",
    "pivots_json", "anchored_vwap_levels_json", "rolling_range_high", "rolling_range_low",
    "support_resistance_json", "version",
)

_TS_TYPE = pa.timestamp("us", tz="UTC")
_F64 = pa.float64()
PIVOTS_TYPE = pa.struct([pa.field(method, pa.struct([pa.field(n, _F64) for n in names]))
                         for method, names in PIVOT_NAMES.items()])
AVWAP_STRUCT = pa.struct([pa.field("anchor", pa.string()), pa.field("anchor_ts", _TS_TYPE),
                          pa.field("vwap", _F64), pa.field("upper_1", _F64),
                          pa.field("lower_1", _F64), pa.field("upper_2", _F64),
                          pa.field("lower_2", _F64)])
SR_STRUCT = pa.struct([pa.field("price", _F64), pa.field("kind", pa.string()),
                       pa.field("touches", pa.int32()), pa.field("last_touch", _TS_TYPE)])
AVWAP_TYPE = pa.list_(AVWAP_STRUCT)
SR_TYPE = pa.list_(SR_STRUCT)


@dataclass(frozen=True, slots=True)
class LevelAnchor:
    """A user's anchor for an anchored VWAP, e.g. an earnings release."""

    name: str
    anchor_ts: datetime  # timezone-aware; the VWAP starts at the first bar closing after it


def period_anchor_names(timeframe: Timeframe | str) -> tuple[str, ...]:
    """Return the calendar anchors used on ``timeframe``: session (intraday), week, month."""
    frame = Timeframe.parse(timeframe)
    if frame.is_intraday:
        return ("session", "week", "month")
    return ("week", "month") if frame is Timeframe.D1 else ("month",)


# ---------------------------------------------------------------------------- shared pieces
def split_multiplier(sessions: np.ndarray, actions: pd.DataFrame | None) -> np.ndarray:
    """Return, per session (datetime64[D]), the product of the ratios of every split with
    ex_date on or before it: the factor that puts an as-traded price on the pre-split basis."""
    out = np.ones(len(sessions), dtype=np.float64)
    if actions is None or actions.empty:
        return out
    splits = actions[actions["action"] == "split"] if "action" in actions.columns else actions
    if splits.empty:
        return out
    ex = pd.DatetimeIndex(splits["ex_date"]).tz_localize(None).normalize()
    ex_days = ex.to_numpy().astype("datetime64[D]")
    order = np.argsort(ex_days, kind="stable")
    products = np.concatenate([[1.0], np.cumprod(
        splits["ratio"].to_numpy(dtype=np.float64)[order])])
    return products[np.searchsorted(ex_days[order], sessions, side="right")]


def _pivots(high: Any, low: Any, close: Any) -> dict[str, dict[str, Any]]:
    pivot = (high + low + close) / 3.0
    span = high - low
    return {
        "classic": {"P": pivot, "R1": 2.0 * pivot - low, "R2": pivot + span,
                    "R3": high + 2.0 * (pivot - low), "S1": 2.0 * pivot - high,
                    "S2": pivot - span, "S3": low - 2.0 * (high - pivot)},
        "fibonacci": {"P": pivot, "R1": pivot + 0.382 * span, "R2": pivot + 0.618 * span,
                      "R3": pivot + span, "S1": pivot - 0.382 * span,
                      "S2": pivot - 0.618 * span, "S3": pivot - span},
        "camarilla": {"R1": close + span * 1.1 / 12.0, "R2": close + span * 1.1 / 6.0,
                      "R3": close + span * 1.1 / 4.0, "R4": close + span * 1.1 / 2.0,
                      "S1": close - span * 1.1 / 12.0, "S2": close - span * 1.1 / 6.0,
                      "S3": close - span * 1.1 / 4.0, "S4": close - span * 1.1 / 2.0},
    }


def _vwap_from_sums(ref: Any, s0: Any, s1: Any, s2: Any) -> tuple[Any, Any]:
    mean = s1 / s0
    variance = s2 / s0 - mean * mean
    return ref + mean, np.sqrt(np.maximum(variance, 0.0))


_POW10 = 10.0 ** np.arange(-40, 41)
_LOG10_2 = 0.30102999566398120


def _price(values: Any) -> np.ndarray:
    """Return ``values`` rounded to about PRICE_DIGITS significant digits.

    Only exact operations and one rounding are used (no log10 or pow, whose vectorised and
    scalar implementations may differ in the last bit), so arrays and scalars round alike.
    """
    x = np.asarray(values, dtype=np.float64)
    _, exp2 = np.frexp(x)
    exp10 = np.floor((exp2 - 1) * _LOG10_2).astype(np.int64)
    scale = _POW10[np.clip(PRICE_DIGITS - 1 - exp10, -40, 40) + 40]
    with np.errstate(invalid="ignore", over="ignore"):
        rounded = np.round(x * scale) / scale
    return np.where(np.isfinite(rounded), rounded, x)


def _bands(vwap_c: Any, sd_c: Any, multiplier: Any) -> tuple[np.ndarray, ...]:
    vwap = vwap_c / multiplier
    sd = sd_c / multiplier
    low_band, high_band = VWAP_BAND_SIGMAS
    return tuple(_price(v) for v in (vwap, vwap + low_band * sd, vwap - low_band * sd,
                                     vwap + high_band * sd, vwap - high_band * sd))


def _true_range(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    prev = np.concatenate([close[:1], close[:-1]])
    tr = np.maximum(high, prev) - np.minimum(low, prev)
    if len(tr):
        tr[0] = high[0] - low[0]
    return tr


@dataclass(frozen=True, slots=True)
class _Series:
    """One series on the continuous (pre-split) basis, with its calendar keys."""

    symbol: str
    timeframe: Timeframe
    ts: np.ndarray  # int64 us, bar open
    ts_close: np.ndarray  # int64 us
    session: np.ndarray  # datetime64[D]
    multiplier: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    typical: np.ndarray
    weight: np.ndarray  # volume on the continuous basis
    ends_session: np.ndarray  # bool: the bar closes at or after its session's close

    @property
    def n(self) -> int:
        return len(self.ts)

    def period_keys(self, anchor: str) -> np.ndarray:
        if anchor == "session":
            return self.session.astype(np.int64)
        if anchor == "week":
            days = self.session.astype(np.int64)
            return days - (days + 3) % 7  # the Monday of the session's week
        return self.session.astype("datetime64[M]").astype(np.int64)

    def day_groups(self) -> np.ndarray:
        """Return the 'day' each bar belongs to for prior-day levels (index, ascending)."""
        if not self.timeframe.is_intraday:
            return np.arange(self.n)
        keys = self.session.astype(np.int64)
        return np.concatenate([[0], np.cumsum(keys[1:] != keys[:-1])]) if self.n else keys

    def anchor_index(self, anchor_ts: datetime) -> int:
        """Return the first bar closing after ``anchor_ts`` (n when none has yet)."""
        at = pd.Timestamp(anchor_ts)
        if at.tzinfo is None:
            raise ValueError(f"anchor_ts: must be timezone-aware (got {anchor_ts!r})")
        at_us = at.tz_convert("UTC").value // 1000  # .value is in nanoseconds
        return int(np.searchsorted(self.ts_close, at_us, side="right"))


def _ends_session(timeframe: Timeframe, session: np.ndarray, ts_close: np.ndarray,
                  calendar: TradingCalendar | str | None) -> np.ndarray:
    """Return per bar whether its session is over once it has closed: always on daily and
    weekly bars; intraday, when it closes at or after the calendar's close of its session
    (never without a calendar: the session is taken to be still forming)."""
    if not timeframe.is_intraday:
        return np.ones(len(session), dtype=bool)
    if calendar is None or not len(session):
        return np.zeros(len(session), dtype=bool)
    cal = get_calendar(calendar) if isinstance(calendar, str) else calendar
    days, inverse = np.unique(session, return_inverse=True)
    closes = pd.DatetimeIndex(cal.session_open_close(days.astype("datetime64[s]"))["close"])
    close_us = np.where(closes.isna(), np.iinfo(np.int64).max,
                        closes.as_unit("us").asi8)[inverse.reshape(-1)]
    return ts_close >= close_us


def _prepare(bars: pd.DataFrame, actions: pd.DataFrame | None,
             calendar: TradingCalendar | str | None = None) -> _Series:
    bars = bars.sort_values("ts", kind="stable")
    symbols = bars["symbol"].astype("str").unique() if len(bars) else np.array(["?"])
    timeframes = bars["timeframe"].astype("str").unique() if len(bars) else np.array(["1d"])
    if len(symbols) != 1 or len(timeframes) != 1:
        raise ValueError("bars: must hold one symbol and one timeframe (got "
                         f"{sorted(symbols)} x {sorted(timeframes)})")
    symbol = str(symbols[0])
    if actions is not None and "symbol" in actions.columns:
        actions = actions[actions["symbol"] == symbol]
    ts = pd.DatetimeIndex(bars["ts"]).tz_convert("UTC").as_unit("us").asi8
    ts_close = pd.DatetimeIndex(bars["ts_close"]).tz_convert("UTC").as_unit("us").asi8
    session = pd.DatetimeIndex(bars["session"]).tz_localize(None).normalize().to_numpy(
    ).astype("datetime64[D]") if len(bars) else np.array([], dtype="datetime64[D]")
    multiplier = split_multiplier(session, actions)
    high = bars["high"].to_numpy(dtype=np.float64) * multiplier
    low = bars["low"].to_numpy(dtype=np.float64) * multiplier
    close = bars["close"].to_numpy(dtype=np.float64) * multiplier
    timeframe = Timeframe.parse(timeframes[0])
    return _Series(symbol=symbol, timeframe=timeframe, ts=ts,
                   ts_close=ts_close, session=session, multiplier=multiplier, high=high,
                   low=low, close=close, typical=(high + low + close) / 3.0,
                   weight=bars["volume"].to_numpy(dtype=np.float64) / multiplier,
                   ends_session=_ends_session(timeframe, session, ts_close, calendar))


def _normalise_anchors(anchors: Iterable[LevelAnchor | tuple[str, datetime]]
                       ) -> list[LevelAnchor]:
    out = []
    for anchor in anchors:
        if not isinstance(anchor, LevelAnchor):
            name, at = anchor
            anchor = LevelAnchor(str(name), at)
        out.append(anchor)
    names = [a.name for a in out]
    if len(set(names)) != len(names):
        raise ValueError(f"anchors: names must be unique (got {names})")
    return out


# ---------------------------------------------------------------------------- vectorised
def _swings(s: _Series) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return the swing points in confirmation order (a high before a low confirmed on the
    same bar): confirmation rows, prices, swing bars and kinds (0 high, 1 low)."""
    n = SWING_BARS
    if s.n < 2 * n + 1:
        empty = np.array([], dtype=np.int64)
        return empty, empty.astype(np.float64), empty, empty
    highs = sliding_window_view(s.high, 2 * n + 1)
    lows = sliding_window_view(s.low, 2 * n + 1)
    centre_h, centre_l = highs[:, n], lows[:, n]
    is_high = (centre_h > highs[:, :n].max(axis=1)) & (centre_h >= highs[:, n + 1:].max(axis=1))
    is_low = (centre_l < lows[:, :n].min(axis=1)) & (centre_l <= lows[:, n + 1:].min(axis=1))
    bar_h = np.flatnonzero(is_high) + n
    bar_l = np.flatnonzero(is_low) + n
    bars = np.concatenate([bar_h, bar_l])
    kind = np.concatenate([np.zeros(len(bar_h), np.int64), np.ones(len(bar_l), np.int64)])
    order = np.lexsort((kind, bars))
    bars, kind = bars[order], kind[order]
    prices = np.where(kind == 0, s.high[bars], s.low[bars])
    return bars + n, prices, bars, kind


def _latest_swing(confirm: np.ndarray, bar: np.ndarray, n_rows: int) -> np.ndarray:
    """Return, per row, the swing bar of the latest point confirmed at or before it (-1)."""
    pos = np.searchsorted(confirm, np.arange(n_rows), side="right") - 1
    return np.where(pos >= 0, bar[np.maximum(pos, 0)] if len(bar) else -1, -1)


def _anchored(anchor_of_row: np.ndarray, s: _Series) -> tuple[np.ndarray, np.ndarray]:
    """Return VWAP and volume-weighted SD (continuous basis) from each row's anchor bar to
    the row (NaN without an anchor or volume). Sums run in bar order, one row per anchor."""
    vwap = np.full(s.n, np.nan)
    sd = np.full(s.n, np.nan)
    rows = np.flatnonzero(anchor_of_row >= 0)
    if not len(rows):
        return vwap, sd
    anchors, inverse = np.unique(anchor_of_row[rows], return_inverse=True)
    ends = np.zeros(len(anchors), dtype=np.int64)
    np.maximum.at(ends, inverse, rows)
    width = int((ends - anchors).max()) + 1
    cols = anchors[:, None] + np.arange(width)[None, :]
    inside = cols <= ends[:, None]
    cols = np.minimum(cols, s.n - 1)
    ref = s.typical[anchors]
    dev = np.where(inside, s.typical[cols] - ref[:, None], 0.0)
    weight = np.where(inside, s.weight[cols], 0.0)
    wdev = weight * dev
    at = (inverse, rows - anchors[inverse])
    s0 = np.cumsum(weight, axis=1)[at]
    s1 = np.cumsum(wdev, axis=1)[at]
    s2 = np.cumsum(wdev * dev, axis=1)[at]
    with np.errstate(invalid="ignore", divide="ignore"):
        v, d = _vwap_from_sums(ref[inverse], s0, s1, s2)
    ok = s0 > 0
    vwap[rows[ok]] = v[ok]
    sd[rows[ok]] = d[ok]
    return vwap, sd


def _period_anchor_rows(keys: np.ndarray) -> np.ndarray:
    if not len(keys):
        return keys.astype(np.int64)
    starts = np.concatenate([[True], keys[1:] != keys[:-1]])
    return np.maximum.accumulate(np.where(starts, np.arange(len(keys)), 0))


def _sr_events(s: _Series, confirm: np.ndarray, prices: np.ndarray, bar: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return the rows where the swing set changed, the number of levels at each, and the
    levels of all of them concatenated (mean price on the continuous basis, touches, latest
    swing bar), each row's levels ascending by price."""
    events = np.unique(confirm)
    events = events[events >= ATR_BARS - 1]
    if not len(events):
        empty = np.zeros(0, dtype=np.int64)
        return events, empty, np.zeros(0), empty, empty
    tr = _true_range(s.high, s.low, s.close)
    atr = np.cumsum(sliding_window_view(tr, ATR_BARS)[events - (ATR_BARS - 1)], axis=1)[:, -1]
    tol = SR_TOLERANCE_ATR * (atr / ATR_BARS)
    count = np.searchsorted(confirm, events, side="right")
    first = np.maximum(count - SR_SWING_POINTS, 0)
    m = SR_SWING_POINTS
    idx = first[:, None] + np.arange(m)[None, :]
    valid = idx < count[:, None]
    idx = np.minimum(idx, len(prices) - 1)
    p = np.where(valid, prices[idx], np.inf)
    order = np.argsort(p, axis=1, kind="stable")
    p = np.take_along_axis(p, order, axis=1)
    swing_bar = np.take_along_axis(bar[idx], order, axis=1)
    valid = np.take_along_axis(valid, order, axis=1)
    cluster = np.zeros_like(idx)
    start = p[:, 0].copy()
    for j in range(1, m):
        with np.errstate(invalid="ignore"):
            new = p[:, j] - start > tol
        start = np.where(new, p[:, j], start)
        cluster[:, j] = cluster[:, j - 1] + new
    key = (np.arange(len(events))[:, None] * m + cluster)[valid]
    size = len(events) * m
    touches = np.bincount(key, minlength=size)
    sums = np.bincount(key, weights=p[valid], minlength=size)
    last = np.full(size, -1, dtype=np.int64)
    np.maximum.at(last, key, swing_bar[valid])
    keep = touches >= SR_MIN_TOUCHES
    mean = sums[keep] / touches[keep]
    per_event = keep.reshape(len(events), m).sum(axis=1)
    return events, per_event, mean, touches[keep], last[keep]


def compute_key_levels(bars: pd.DataFrame, anchors: Iterable[LevelAnchor | tuple[str, datetime]]
                       = (), *, actions: pd.DataFrame | None = None,
                       calendar: TradingCalendar | str | None = None,
                       min_avwap_bars: int = AVWAP_MIN_BARS) -> pd.DataFrame:
    """Return one key_levels row per bar of one (symbol, timeframe) series (vectorised).

    ``bars`` are canonical as-traded bars; ``actions`` the symbol's corporate actions (only
    splits on or before each bar's session are used); ``anchors`` user anchors (name and
    timezone-aware time); ``calendar`` the instrument's trading calendar (intraday: tells when
    a bar ends its session); ``min_avwap_bars`` the fewest bars an anchored VWAP spans.
    Prices are on each bar's own as-traded basis.
    """
    s = _prepare(bars, actions, calendar)
    user = _normalise_anchors(anchors)
    n = s.n
    with np.errstate(invalid="ignore"):
        pd_high, pd_low, pd_close, has_prev = _prior_day(s)
        pivots = _pivots(pd_high, pd_low, pd_close)
        # rolling range
        range_high = np.full(n, np.nan)
        range_low = np.full(n, np.nan)
        if n >= ROLLING_RANGE_BARS:
            tail = slice(ROLLING_RANGE_BARS - 1, None)
            range_high[tail] = sliding_window_view(s.high, ROLLING_RANGE_BARS).max(axis=1)
            range_low[tail] = sliding_window_view(s.low, ROLLING_RANGE_BARS).min(axis=1)
            range_high[tail] /= s.multiplier[tail]
            range_low[tail] /= s.multiplier[tail]
    confirm, prices, swing_bar, kind = _swings(s)
    # anchored VWAPs: one column per anchor
    names: list[str] = []
    anchor_rows: list[np.ndarray] = []
    for name in period_anchor_names(s.timeframe):
        names.append(name)
        anchor_rows.append(_period_anchor_rows(s.period_keys(name)))
    for code, label in ((0, "swing_high"), (1, "swing_low")):
        mine = kind == code
        names.append(label)
        anchor_rows.append(_latest_swing(confirm[mine], swing_bar[mine], n))
    for anchor in user:
        names.append(f"user:{anchor.name}")
        first = s.anchor_index(anchor.anchor_ts)
        anchor_rows.append(np.where(np.arange(n) >= first, first, -1))
    vwap_cols = [_anchored(rows, s) for rows in anchor_rows]
    avwaps = _avwap_column(s, names, anchor_rows, vwap_cols, min_avwap_bars)
    sr = _sr_column(s, *_sr_events(s, confirm, prices, swing_bar))
    return _frame(s, pd_high, pd_low, pd_close, _pivot_column(pivots, has_prev), avwaps,
                  range_high, range_low, sr)


def _prior_day(s: _Series) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return per row the prior day's high, low and close on the row's basis, and whether
    there is one: the row's own day up to the row where the bar ends its session, else the
    day before the row's."""
    n = s.n
    if not n:
        empty = np.zeros(0)
        return empty, empty, empty, np.zeros(0, dtype=bool)
    group = s.day_groups()
    starts = np.flatnonzero(np.concatenate([[True], group[1:] != group[:-1]]))
    g_high = np.maximum.reduceat(s.high, starts)
    g_low = np.minimum.reduceat(s.low, starts)
    g_close = s.close[np.concatenate([starts[1:] - 1, [n - 1]])]
    # the day so far: running extremes that restart with each day (point-in-time even when
    # a later bar of the day exists)
    so_far_high = pd.Series(s.high).groupby(group).cummax().to_numpy()
    so_far_low = pd.Series(s.low).groupby(group).cummin().to_numpy()
    prev = group - 1
    pick = np.maximum(prev, 0)
    own = s.ends_session
    has = own | (prev >= 0)
    high = np.where(own, so_far_high, g_high[pick])
    low = np.where(own, so_far_low, g_low[pick])
    close = np.where(own, s.close, g_close[pick])
    m = s.multiplier
    return (np.where(has, high / m, np.nan), np.where(has, low / m, np.nan),
            np.where(has, close / m, np.nan), has)


def _pivot_column(pivots: dict[str, dict[str, np.ndarray]], valid: np.ndarray) -> pa.Array:
    mask = pa.array(~valid)
    methods = []
    for method, names in PIVOT_NAMES.items():
        children = [pa.array(_price(pivots[method][name]), _F64, mask=~valid)
                    for name in names]
        methods.append(pa.StructArray.from_arrays(children, names=list(names), mask=mask))
    return pa.StructArray.from_arrays(methods, names=list(PIVOT_NAMES), mask=mask)


def _avwap_column(s: _Series, names: list[str], anchor_rows: list[np.ndarray],
                  vwap_cols: list[tuple[np.ndarray, np.ndarray]], min_bars: int) -> pa.Array:
    n, k = s.n, len(names)
    if not k or not n:
        return pa.array([[] for _ in range(n)], AVWAP_TYPE)
    vwap_c = np.stack([v for v, _ in vwap_cols], axis=1)
    sd_c = np.stack([d for _, d in vwap_cols], axis=1)
    anchor = np.stack(anchor_rows, axis=1)
    spans = np.arange(n)[:, None] - anchor + 1
    present = np.isfinite(vwap_c) & (anchor >= 0) & (spans >= min_bars)
    bands = _bands(vwap_c[present], sd_c[present],
                   np.broadcast_to(s.multiplier[:, None], (n, k))[present])
    label = np.broadcast_to(np.arange(k, dtype=np.int32)[None, :], (n, k))[present]
    anchor_ts = s.ts[anchor[present]]
    offsets = np.concatenate([[0], np.cumsum(present.sum(axis=1))]).astype(np.int32)
    children = [_labels(label, names), pa.array(anchor_ts, pa.int64()).cast(_TS_TYPE),
                *(pa.array(b, _F64) for b in bands)]
    values = pa.StructArray.from_arrays(children, fields=list(AVWAP_STRUCT))
    return pa.ListArray.from_arrays(pa.array(offsets), values, type=AVWAP_TYPE)


def _labels(codes: np.ndarray, names: Sequence[str]) -> pa.Array:
    return pa.DictionaryArray.from_arrays(pa.array(codes, pa.int32()), pa.array(
        list(names), pa.string())).cast(pa.string())


def _sr_column(s: _Series, events: np.ndarray, per_event: np.ndarray, mean: np.ndarray,
               touches: np.ndarray, last: np.ndarray) -> pa.Array:
    n = s.n
    event_of_row = np.searchsorted(events, np.arange(n), side="right") - 1
    length = (np.where(event_of_row >= 0, per_event[np.maximum(event_of_row, 0)], 0)
              if len(events) else np.zeros(n, dtype=np.int64))
    offsets = np.concatenate([[0], np.cumsum(length)])
    event_start = np.concatenate([[0], np.cumsum(per_event)[:-1]]).astype(np.int64)
    row = np.repeat(np.arange(n), length)
    within = np.arange(offsets[-1]) - offsets[:-1][row]
    item = event_start[event_of_row[row]] + within
    level_c = mean[item]
    resistance = level_c >= s.close[row]
    below = np.bincount(row[~resistance], minlength=n)[row]
    keep = np.where(resistance, within < below + SR_LEVELS_PER_SIDE,
                    within >= below - SR_LEVELS_PER_SIDE)
    row, item, level_c, resistance = row[keep], item[keep], level_c[keep], resistance[keep]
    offsets = np.concatenate([[0], np.cumsum(np.bincount(row, minlength=n))]).astype(np.int32)
    children = [pa.array(_price(level_c / s.multiplier[row]), _F64),
                _labels(resistance.astype(np.int32), ("support", "resistance")),
                pa.array(touches[item].astype(np.int32), pa.int32()),
                pa.array(s.ts[last[item]], pa.int64()).cast(_TS_TYPE)]
    values = pa.StructArray.from_arrays(children, fields=list(SR_STRUCT))
    return pa.ListArray.from_arrays(pa.array(offsets), values, type=SR_TYPE)


def _frame(s: _Series, pd_high: np.ndarray, pd_low: np.ndarray, pd_close: np.ndarray,
           pivots: pa.Array, avwaps: pa.Array, range_high: np.ndarray, range_low: np.ndarray,
           sr: pa.Array) -> pd.DataFrame:
    def arrow(values: pa.Array) -> pd.Series:
        return pd.Series(pd.arrays.ArrowExtensionArray(values))

    def text(value: str) -> pd.Series:
        return pd.Series(np.full(s.n, value, dtype=object), dtype="str")

    return pd.DataFrame({
        "symbol": text(s.symbol),
        "timeframe": text(s.timeframe.value),
        "ts": pd.Series(s.ts.astype("datetime64[us]")).dt.tz_localize("UTC"),
        "prior_day_high": _price(pd_high),
        "prior_day_low": _price(pd_low),
        "prior_day_close": _price(pd_close),
        "pivots_json": arrow(pivots),
        "anchored_vwap_levels_json": arrow(avwaps),
        "rolling_range_high": _price(range_high),
        "rolling_range_low": _price(range_low),
        "support_resistance_json": arrow(sr),
        "version": text(LEVELS_VERSION),
    }, copy=False)


def user_anchor_vwaps(bars: pd.DataFrame, anchors: Iterable[LevelAnchor | tuple[str, datetime]],
                      *, actions: pd.DataFrame | None = None,
                      min_avwap_bars: int = AVWAP_MIN_BARS) -> list[dict[str, Any]]:
    """Return the anchored VWAP entries of the user ``anchors`` at the LAST bar of ``bars``.

    ``bars`` need only start at (or before) the earliest anchor's first bar: sums run from each
    anchor's own bar, so the values equal those of ``compute_key_levels`` on the full history.
    """
    s = _prepare(bars, actions)
    out = []
    for anchor in _normalise_anchors(anchors):
        first = s.anchor_index(anchor.anchor_ts)
        if first >= s.n or s.n - first < min_avwap_bars:
            continue
        rows = np.full(s.n, -1, dtype=np.int64)
        rows[-1] = first
        vwap_c, sd_c = _anchored(rows, s)
        if not np.isfinite(vwap_c[-1]):
            continue
        values = _bands(vwap_c[-1], sd_c[-1], s.multiplier[-1])
        out.append(_avwap_entry(f"user:{anchor.name}", s.ts[first], values))
    return out


def _avwap_entry(anchor: str, anchor_us: int, values: Sequence[SupportsFloat]
                 ) -> dict[str, Any]:
    vwap, upper_1, lower_1, upper_2, lower_2 = (float(v) for v in values)
    return {"anchor": anchor, "anchor_ts": pd.Timestamp(int(anchor_us), unit="us", tz="UTC"
                                                        ).to_pydatetime(),
            "vwap": vwap, "upper_1": upper_1, "lower_1": lower_1, "upper_2": upper_2,
            "lower_2": lower_2}


# ---------------------------------------------------------------------------- naive
def compute_key_levels_naive(bars: pd.DataFrame,
                             anchors: Iterable[LevelAnchor | tuple[str, datetime]] = (), *,
                             actions: pd.DataFrame | None = None,
                             calendar: TradingCalendar | str | None = None,
                             min_avwap_bars: int = AVWAP_MIN_BARS) -> pd.DataFrame:
    """Return the same frame as ``compute_key_levels`` with a plain per-bar loop.

    For every bar t it takes the history up to t and recomputes each level from scratch with
    pandas: the reference the vectorised version is tested and benchmarked against.
    """
    s = _prepare(bars, actions, calendar)
    user = _normalise_anchors(anchors)
    history = pd.DataFrame({"high": s.high, "low": s.low, "close": s.close,
                            "typical": s.typical, "weight": s.weight,
                            "session": s.session.astype(np.int64)})
    pivot_rows: list[dict[str, dict[str, float]] | None] = []
    avwap_rows: list[list[dict[str, Any]]] = []
    sr_rows: list[list[dict[str, Any]]] = []
    pd_high, pd_low, pd_close = (np.full(s.n, np.nan) for _ in range(3))
    range_high, range_low = np.full(s.n, np.nan), np.full(s.n, np.nan)
    period_names = period_anchor_names(s.timeframe)
    for t in range(s.n):
        hist = history.iloc[: t + 1]
        m_t = s.multiplier[t]
        # prior day: the row's own day so far once its bar ends the session, else the one before
        if s.ends_session[t]:
            today = hist[hist["session"] == hist["session"].iloc[-1]] \
                if s.timeframe.is_intraday else hist.iloc[-1:]
            pd_high[t] = today["high"].max() / m_t
            pd_low[t] = today["low"].min() / m_t
            pd_close[t] = today["close"].iloc[-1] / m_t
        elif s.timeframe.is_intraday:
            earlier = hist[hist["session"] < hist["session"].iloc[-1]]
            if len(earlier):
                day = earlier[earlier["session"] == earlier["session"].iloc[-1]]
                pd_high[t] = day["high"].max() / m_t
                pd_low[t] = day["low"].min() / m_t
                pd_close[t] = day["close"].iloc[-1] / m_t
        if np.isnan(pd_high[t]):
            pivot_rows.append(None)
        else:
            pivot_rows.append({method: {k: float(_price(v)) for k, v in levels.items()} for
                               method, levels in _pivots(pd_high[t], pd_low[t],
                                                         pd_close[t]).items()})
        # rolling range
        if t + 1 >= ROLLING_RANGE_BARS:
            range_high[t] = hist["high"].iloc[-ROLLING_RANGE_BARS:].max() / m_t
            range_low[t] = hist["low"].iloc[-ROLLING_RANGE_BARS:].min() / m_t
        points = _naive_swings(hist)
        # anchored VWAPs
        entries = []
        for name in period_names:
            keys = s.period_keys(name)[: t + 1]
            start = int(np.flatnonzero(keys == keys[-1])[0])
            entries.append((name, start))
        for label, kind in (("swing_high", "high"), ("swing_low", "low")):
            mine = [p for p in points if p["kind"] == kind]
            if mine:
                entries.append((label, mine[-1]["bar"]))
        for anchor in user:
            first = s.anchor_index(anchor.anchor_ts)
            if first <= t:
                entries.append((f"user:{anchor.name}", first))
        row = []
        for label, start in entries:
            if t - start + 1 < min_avwap_bars:
                continue
            window = hist.iloc[start:]
            dev = window["typical"].to_numpy() - s.typical[start]
            weight = window["weight"].to_numpy()
            s0 = np.cumsum(weight)[-1]
            if not s0 > 0:
                continue
            vwap_c, sd_c = _vwap_from_sums(s.typical[start], s0, np.cumsum(weight * dev)[-1],
                                           np.cumsum(weight * dev * dev)[-1])
            row.append(_avwap_entry(label, s.ts[start], _bands(vwap_c, sd_c, m_t)))
        avwap_rows.append(row)
        sr_rows.append(_naive_support_resistance(s, hist, points, t))
    frame = _frame(s, pd_high, pd_low, pd_close, pa.array(pivot_rows, PIVOTS_TYPE),
                   pa.array(avwap_rows, AVWAP_TYPE), range_high, range_low,
                   pa.array(sr_rows, SR_TYPE))
    return frame


def _naive_swings(hist: pd.DataFrame) -> list[dict[str, Any]]:
    n = SWING_BARS
    out = []
    for column, kind in (("high", "high"), ("low", "low")):
        values = hist[column]
        sign = 1.0 if kind == "high" else -1.0
        signed = values * sign
        left = signed.rolling(n).max().shift(1)
        right = signed[::-1].rolling(n).max()[::-1].shift(-1)
        hit = (signed > left) & (signed >= right)
        for k in np.flatnonzero(hit.to_numpy()):
            out.append({"bar": int(k), "confirm": int(k) + n, "kind": kind,
                        "price": float(values.iloc[k])})
    out.sort(key=lambda p: (p["confirm"], p["kind"] != "high"))
    return out


def _naive_support_resistance(s: _Series, hist: pd.DataFrame, points: list[dict[str, Any]],
                              t: int) -> list[dict[str, Any]]:
    if not points or points[-1]["confirm"] < ATR_BARS - 1:
        return []
    event = points[-1]["confirm"]
    tr = _true_range(hist["high"].to_numpy(), hist["low"].to_numpy(),
                     hist["close"].to_numpy())
    atr = np.cumsum(tr[event - ATR_BARS + 1: event + 1])[-1] / ATR_BARS
    tolerance = SR_TOLERANCE_ATR * atr
    recent = sorted(points[-SR_SWING_POINTS:], key=lambda p: p["price"])
    clusters: list[list[dict[str, Any]]] = []
    for point in recent:
        if clusters and not point["price"] - clusters[-1][0]["price"] > tolerance:
            clusters[-1].append(point)
        else:
            clusters.append([point])
    supports: list[dict[str, Any]] = []
    resistances: list[dict[str, Any]] = []
    for members in clusters:
        if len(members) < SR_MIN_TOUCHES:
            continue
        total = 0.0
        for point in members:
            total += point["price"]
        level_c = total / len(members)
        level = {"price": float(_price(level_c / s.multiplier[t])),
                 "kind": "resistance" if level_c >= hist["close"].iloc[-1] else "support",
                 "touches": len(members),
                 "last_touch": pd.Timestamp(int(s.ts[max(p["bar"] for p in members)]),
                                            unit="us", tz="UTC").to_pydatetime()}
        (resistances if level["kind"] == "resistance" else supports).append(level)
    return supports[max(0, len(supports) - SR_LEVELS_PER_SIDE):] + \
        resistances[:SR_LEVELS_PER_SIDE]


# ---------------------------------------------------------------------------- arrow
def levels_table(frame: pd.DataFrame) -> pa.Table:
    """Return a key-levels frame as an Arrow table (NaN levels become nulls), the form the
    store writes: DuckDB encodes the nested columns as JSON on insert."""
    columns = {}
    for name in frame.columns:
        values = frame[name].array
        if isinstance(frame[name].dtype, pd.ArrowDtype):
            columns[name] = pa.chunked_array(values.__arrow_array__())
        elif frame[name].dtype == np.float64:
            columns[name] = pa.array(frame[name].to_numpy(), pa.float64(), from_pandas=True)
        elif isinstance(frame[name].dtype, pd.DatetimeTZDtype):
            columns[name] = pa.array(frame[name].dt.tz_convert(None).to_numpy(
                dtype="datetime64[us]"), _TS_TYPE)
        else:
            columns[name] = pa.array(values)
    return pa.table(columns)


def same_levels(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    """Return True when two key-level frames hold identical values, bit for bit."""
    if list(a.columns) != list(b.columns) or len(a) != len(b):
        return False
    left, right = levels_table(a), levels_table(b)
    return left.equals(right) or left.to_pylist() == right.to_pylist()
