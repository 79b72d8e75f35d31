"""The demo trader: a seeded, documented history of fills simulated on the bundled REAL bars.

No package ships a real broker's fills, so ``make demo`` trades a simulated trader, ``demo``,
through the real bars of the daily stocks (AAPL, MSFT, IBM, GOOG) and EURUSD 1h, and then
sends its fills through the same path a trader's own export takes: broker files (IBKR Flex
CSV for the stocks, MT5 deals CSV for EURUSD), the importer, the trades grouping, the reviews
and the journal. What the trader meant and did wrong is stored apart as ground truth
(``buddy.store.demo_truth``) so that later work can measure its detectors against it.

Setups (each decided at a bar's close from bars closed by then, nothing later)
    Indicators are computed on a split-continuous series (every bar put on the first bar's
    basis by the splits with ex_date on or before it, so only splits already in effect are
    used) and brought back to the bar's own basis: ATR(14) (Wilder, as TA-Lib seeds it),
    EMA(20), EMA(50), SMA(20) and the 20-bar standard deviation.

    - ``breakout_long``: the first close above the highest high of the 20 bars before.
      Stop 1.0 ATR below the entry, target 2R, time stop 10 bars (stocks) or 8 (EURUSD).
    - ``pullback_long``: an up-trend (EMA20 > EMA50, close > EMA50) whose bar dipped to within
      0.25 ATR of the EMA20 and closed above it, below the close 3 bars earlier. Stop 1.5
      ATR, target 2R, half off at 1R with the stop then moved to the entry (the demo user's
      'swing_2r' exit template), time stop 10 bars (stocks) or 12 (EURUSD).
    - ``mean_reversion_short``: the close 2 standard deviations or more above its SMA(20)
      and above the previous close. Stop 1.5 ATR above, target 1.5R, time stop 5 / 6 bars.
    - ``reversal``: some time-stopped trades (about 1 in 4 whose last close sits on the
      wrong side of the EMA20) are closed and reversed in ONE fill (IBKR 'C;O', MT5
      'inout'); the new trade has a 1 ATR stop, a 1.5R target and half the time stop.
    - ``impulse`` (EURUSD only, on the injected days below): a trade in the direction of the
      last closed bar, stop 0.6 ATR, target 1R, time stop 1 bar, with no intent logged.

    A signal is taken with a probability per setup (a deterministic coin: a hash of the
    seed, the symbol and the bar's close time, so a shorter history takes the same trades
    up to its end); one position per symbol at a time (a signal while a trade is open is
    skipped); positions spanning a split are closed at the last close before its ex-date,
    and no trade opens on that close (a split is announced weeks ahead, so knowing the next
    ex-date is not looking ahead; only splits in the store by ``as_of`` are used).

Entries, exits and fills
    Entry: the signal bar's close, at its close time. Size: the risk budget (1% of the
    account's 100,000 USD) over the stop distance, rounded down to the lot. Exits on the
    bars after the entry: the stop is checked before the target within a bar (the
    conservative order when a bar touches both); a gap through a level fills at the bar's
    open, one minute after it opens; an intrabar level fills at the level at the bar's middle;
    the time stop fills at the close of its last bar. A trade still open at the data's end
    stays open (it becomes a position). Commissions: IBKR fixed (0.005 USD a share, at least
    1 USD, at most 1% of the value) and 3.5 USD per 100,000 EUR on MT5.

Behaviours injected on known dates (the seed picks the dates, the data does not)
    - ``size_up_after_loss``: in "tilt" windows the first trade after a loss, entered within
      3 days (stocks) or 6 hours (EURUSD) of it, is twice the budget size.
    - ``stop_moved``: in tilt windows, a trade whose planned stop is touched has its stop
      moved 1R further away; it exits at the moved stop, its target or its time stop, so the
      loss can go past the planned stop.
    - ``overtrading_day`` (EURUSD): on 4 days the trader takes an impulse trade at every
      hourly close from 06:00 to 20:00 UTC whenever flat: 7-9 trades against a usual 1.
    - ``late_session`` (EURUSD): on 4 other days the trader trades at the 06:00 and 07:00 UTC
      closes and still enters at 18:00-20:00 UTC (the New York afternoon, after 12 hours or
      more at the screen).

The CLEAN trader (``behaviours=False``, user ``demo-clean``): the same seed and generator
with nothing injected, to count the behaviour detectors' false alarms.

Intents: about 9 in 10 planned trades (every setup but ``impulse``) log their plan first, as
a trade intent at the entry bar's close, with the traded size.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import talib

from buddy.store import Store
from buddy.store.demo_truth import (
    demo_behavior_truth,
    demo_trade_truth,
    demo_truth_loaded,
    link_truth_to_trades,
    replace_demo_truth,
)
from buddy.store.trades import count_trades

__all__ = [
    "CLEAN_USER",
    "DEFAULT_SEED",
    "DEMO_SERIES",
    "GENERATOR_VERSION",
    "SETUPS",
    "DemoHistory",
    "SetupRule",
    "behaviour_calendar",
    "demo_review_and_summary",
    "load_demo_history",
    "simulate_history",
]

GENERATOR_VERSION = 1
DEFAULT_SEED = 20240613

#: (symbol, timeframe) traded by the demo trader.
DEMO_SERIES: tuple[tuple[str, str], ...] = (
    ("AAPL", "1d"), ("MSFT", "1d"), ("IBM", "1d"), ("GOOG", "1d"), ("EURUSD", "1h"))

#: The demo account: equity (USD) and the risk budget per trade (fraction of equity).
EQUITY = 100_000.0
RISK_FRACTION = 0.01


@dataclass(frozen=True, slots=True, kw_only=True)
class SetupRule:
    """How one setup places and manages a trade: stop in ATR(14), target in R, time stop in
    bars, partial exit (fraction at ``partial_at_r`` R, then the stop to the entry), and the
    chance (0-1] that the trader takes a signal."""

    name: str
    direction: int  # +1 long, -1 short
    stop_atr: float
    target_r: float
    horizon: int
    take: float
    partial_at_r: float | None = None
    partial_fraction: float = 0.5


def _rules(horizons: tuple[int, int, int]) -> dict[str, SetupRule]:
    return {
        "breakout_long": SetupRule(name="breakout_long", direction=1, stop_atr=1.0,
                                   target_r=2.0, horizon=horizons[0], take=0.45),
        "pullback_long": SetupRule(name="pullback_long", direction=1, stop_atr=1.5,
                                   target_r=2.0, horizon=horizons[1], take=0.6,
                                   partial_at_r=1.0),
        "mean_reversion_short": SetupRule(name="mean_reversion_short", direction=-1,
                                          stop_atr=1.5, target_r=1.5, horizon=horizons[2],
                                          take=0.6),
    }


#: Setup rules by timeframe, in priority order when two fire on one bar.
SETUPS: dict[str, dict[str, SetupRule]] = {"1d": _rules((10, 10, 5)), "1h": _rules((8, 12, 6))}
REVERSAL_TAKE = 0.25
IMPULSE = SetupRule(name="impulse", direction=0, stop_atr=0.6, target_r=1.0, horizon=1, take=1.0)
INTENT_SHARE = 0.9
#: "Right after a loss": the next entry within this many hours of the losing exit.
SIZE_UP_WITHIN_H = {"1d": 72.0, "1h": 6.0}
SIZE_UP_FACTOR = 2.0
STOP_MOVED_BY_R = 1.0
OVERTRADING_HOURS = tuple(range(6, 21))  # UTC hours of the bar closes that trigger entries
LATE_SESSION_HOURS = (6, 7, 18, 19, 20)
#: From this UTC hour an entry is "late" (14:00 New York in summer, after 12 hours on)
LATE_FROM_HOUR = 18

_STOCK_COMMISSION = (0.005, 1.0, 0.01)  # USD a share, minimum USD, maximum share of value
_FX_COMMISSION_PER_100K = 3.5


# ---------------------------------------------------------------------------- behaviour dates
@dataclass(frozen=True, slots=True)
class BehaviourCalendar:
    """The dates the seed chose: tilt windows (half-open [start, end) UTC) and EURUSD days."""

    tilt_windows: tuple[tuple[pd.Timestamp, pd.Timestamp], ...]
    overtrading_days: tuple[pd.Timestamp, ...]  # session dates
    late_session_days: tuple[pd.Timestamp, ...]

    def in_tilt(self, ts: np.ndarray) -> np.ndarray:
        """Return which UTC times (int64 ns) fall in a tilt window."""
        out = np.zeros(len(ts), dtype=bool)
        for start, end in self.tilt_windows:
            out |= (ts >= start.value) & (ts < end.value)
        return out


def behaviour_calendar(seed: int) -> BehaviourCalendar:
    """Return the injected behaviours' dates for ``seed``: one 60-day tilt window in each of
    2002, 2005, 2008 and 2011 and two in 2017; 4 overtrading and 4 late-session weekdays in
    2017 (EURUSD). Chosen from the seed alone, never from the data."""
    rng = np.random.default_rng([seed, 1])
    windows = []
    for year, count in ((2002, 1), (2005, 1), (2008, 1), (2011, 1), (2017, 2)):
        span = 300 // count
        for k in range(count):
            start = (pd.Timestamp(f"{year}-01-15", tz="UTC")
                     + pd.Timedelta(days=int(k * span + rng.integers(0, span - 60))))
            windows.append((start, start + pd.Timedelta(days=60)))
    weekdays = pd.bdate_range("2017-02-01", "2017-11-30", tz="UTC")
    days = rng.choice(len(weekdays), size=8, replace=False)
    chosen = [weekdays[i] for i in days]
    return BehaviourCalendar(tuple(windows), tuple(sorted(chosen[:4])),
                             tuple(sorted(chosen[4:])))


#: No behaviour injected: the clean trader's calendar.
NO_BEHAVIOURS = BehaviourCalendar((), (), ())
#: The clean trader's user id (``load_demo_history(..., behaviours=False)``).
CLEAN_USER = "demo-clean"


# ---------------------------------------------------------------------------- the result
@dataclass(frozen=True, slots=True)
class DemoHistory:
    """What the simulation produced.

    ``fills``: one row per execution (fill_key, trade_key, symbol, timeframe, ts UTC, side
    'buy'|'sell', qty units > 0, price, commission USD >= 0, open_close 'O'|'C'|'C;O',
    fill_kind entry|partial|exit|reverse, closing_qty: the units it closes, realised: their
    gross pnl in USD), by time. ``trades``: the demo_trade_truth rows.
    ``behaviours``: the demo_behavior_truth rows. ``intents``: trade_intents rows.
    """

    user_id: str
    seed: int
    fills: pd.DataFrame
    trades: pd.DataFrame
    behaviours: pd.DataFrame
    intents: pd.DataFrame


# ---------------------------------------------------------------------------- deterministic coins
_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return (z ^ (z >> np.uint64(31))) & _MASK64


def _salt(*parts: object) -> np.uint64:
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return np.uint64(int.from_bytes(digest[:8], "little"))


def coins(seed: int, purpose: str, symbol: str, ts_ns: np.ndarray) -> np.ndarray:
    """Return a uniform [0, 1) number per time: a hash of (seed, purpose, symbol, time), so a
    decision at a bar never depends on which other bars are in the run."""
    mixed = _splitmix(ts_ns.astype(np.int64).view(np.uint64) ^ _salt(seed, purpose, symbol))
    return (mixed >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def stable_key(*parts: object) -> str:
    """Return a 20-hex-character id from ``parts``."""
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:20]


# ---------------------------------------------------------------------------- the series
@dataclass(frozen=True, slots=True)
class _Series:
    symbol: str
    timeframe: str
    tick: float
    lot: float
    ts: np.ndarray  # bar open, int64 ns UTC
    ts_close: np.ndarray
    session: np.ndarray  # datetime64[D]
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    atr: np.ndarray  # on each bar's own basis
    ema20: np.ndarray
    ema50: np.ndarray
    sma20: np.ndarray
    std20: np.ndarray
    prior_high20: np.ndarray
    split_before: np.ndarray  # bar index: a trade must be flat by this bar's close (or n)

    def __len__(self) -> int:
        return len(self.close)


def _read_series(store: Store, symbol: str, timeframe: str, as_of: datetime | None
                 ) -> _Series | None:
    """Read one series closed by ``as_of`` and its splits in effect by then; compute the
    indicators on the split-continuous prices. None when no bar has closed by ``as_of``."""
    bars = store.bars(symbol, timeframe, as_of=as_of)
    if bars.empty:
        return None
    instrument = store.instrument(symbol)
    assert instrument is not None
    splits = store.corporate_actions(symbol)
    splits = splits[splits["action"] == "split"]
    session = bars["session"].to_numpy().astype("datetime64[D]")
    if as_of is not None:
        last_day = np.datetime64(pd.Timestamp(as_of).tz_convert("UTC").date(), "D")
        splits = splits[splits["ex_date"].to_numpy().astype("datetime64[D]") <= last_day]
    ex_days = splits["ex_date"].to_numpy().astype("datetime64[D]")
    ratios = splits["ratio"].to_numpy(dtype=np.float64)
    later = ex_days > session[0]
    order = np.argsort(ex_days[later], kind="stable")
    prefix = np.r_[1.0, np.cumprod(ratios[later][order])]
    basis = prefix[np.searchsorted(ex_days[later][order], session, side="right")]
    o, h, lo, c = (bars[k].to_numpy(dtype=np.float64) for k in ("open", "high", "low", "close"))
    ch, cl, cc = h * basis, lo * basis, c * basis
    prior_high = pd.Series(ch).shift(1).rolling(20, min_periods=20).max().to_numpy()
    # the first bar on or after each ex-date: positions are closed at the close before it
    n = len(c)
    split_at = np.searchsorted(session, np.sort(ex_days[later]), side="left")
    next_split = np.full(n, n, dtype=np.int64)
    for at in split_at[::-1]:
        next_split[:at] = at
    return _Series(
        symbol=symbol, timeframe=timeframe, tick=float(instrument["tick_size"]),
        lot=float(instrument["lot_size"]),
        ts=_ns(bars["ts"]), ts_close=_ns(bars["ts_close"]),
        session=session, open=o, high=h, low=lo, close=c,
        atr=talib.ATR(ch, cl, cc, timeperiod=14) / basis,
        ema20=talib.EMA(cc, timeperiod=20) / basis, ema50=talib.EMA(cc, timeperiod=50) / basis,
        sma20=talib.SMA(cc, timeperiod=20) / basis,
        std20=talib.STDDEV(cc, timeperiod=20, nbdev=1) / basis,
        prior_high20=prior_high / basis, split_before=next_split)


def _ns(column: pd.Series) -> np.ndarray:
    return pd.DatetimeIndex(column).tz_convert("UTC").as_unit("ns").asi8


def _previous(values: np.ndarray, k: int = 1) -> np.ndarray:
    out = np.full(len(values), np.nan)
    out[k:] = values[:-k]
    return out


def _signals(s: _Series, seed: int, cal: BehaviourCalendar) -> tuple[np.ndarray, np.ndarray]:
    """Return per bar the setup index taken there (-1: none) and the impulse flags (EURUSD's
    injected days), from bars closed by each bar's close."""
    c, atr = s.close, s.atr
    ok = np.isfinite(atr) & (atr > 0) & np.isfinite(s.ema50)
    prior_high_before = _previous(s.prior_high20)
    breakout = ok & (c > s.prior_high20) & ~(_previous(c) > prior_high_before)
    trend_up = (s.ema20 > s.ema50) & (c > s.ema50)
    pullback = ok & trend_up & (s.low <= s.ema20 + 0.25 * atr) & (c > s.ema20) & (
        c < _previous(c, 3))
    z = (c - s.sma20) / s.std20
    reversion = ok & (z >= 2.0) & (c > _previous(c))
    rules = list(SETUPS[s.timeframe].values())
    setup = np.full(len(c), -1, dtype=np.int64)
    for k, (mask, rule) in reversed(list(enumerate(zip((breakout, pullback, reversion), rules,
                                                       strict=True)))):
        take = mask & (coins(seed, rule.name, s.symbol, s.ts_close) < rule.take)
        setup[take] = k
    impulse = np.zeros(len(c), dtype=bool)
    if s.timeframe == "1h":
        close_time = pd.to_datetime(s.ts_close, utc=True)
        day = close_time.normalize().asi8
        hour = close_time.hour.to_numpy()
        over = np.isin(day, [d.value for d in cal.overtrading_days]) & np.isin(
            hour, OVERTRADING_HOURS)
        late = np.isin(day, [d.value for d in cal.late_session_days]) & np.isin(
            hour, LATE_SESSION_HOURS)
        impulse = ok & (over | late)
    return setup, impulse


# ---------------------------------------------------------------------------- one trade's path
@dataclass(slots=True)
class _Trade:
    key: str
    symbol: str
    timeframe: str
    setup: str
    direction: int
    entry_bar: int
    entry_ts: int
    entry: float
    stop: float
    target: float
    horizon: int
    partial_at: float | None
    partial_fraction: float
    exits: list[tuple[int, int, float, str]] = field(default_factory=list)
    # (bar, ts ns, price, kind) with kind partial | stop | breakeven | target | time |
    # moved_stop | before_split | reversed
    exit_bar: int = -1
    stop_touched_bar: int = -1  # first bar the planned stop was touched (-1: never)
    moved_stop: float | None = None
    reversal_of: str | None = None
    qty: float = 0.0
    planned_qty: float = 0.0


def _to_tick(price: float, tick: float, how: str = "nearest") -> float:
    steps = price / tick
    steps = {"nearest": round(steps), "down": math.floor(steps + 1e-9),
             "up": math.ceil(steps - 1e-9)}[how]
    return float(round(steps * tick, 10))


def _place(s: _Series, i: int, rule: SetupRule, direction: int, key: str, setup: str
           ) -> _Trade | None:
    entry = _to_tick(s.close[i], s.tick)
    risk = rule.stop_atr * s.atr[i]
    stop = _to_tick(entry - direction * risk, s.tick, "down" if direction > 0 else "up")
    risk = direction * (entry - stop)
    if not risk >= s.tick or stop <= 0:
        return None
    target = _to_tick(entry + direction * rule.target_r * risk, s.tick)
    partial = (None if rule.partial_at_r is None else
               _to_tick(entry + direction * rule.partial_at_r * risk, s.tick))
    return _Trade(key=key, symbol=s.symbol, timeframe=s.timeframe, setup=setup,
                  direction=direction, entry_bar=i, entry_ts=int(s.ts_close[i]), entry=entry,
                  stop=stop, target=target, horizon=rule.horizon, partial_at=partial,
                  partial_fraction=rule.partial_fraction)


def _first(mask: np.ndarray, start: int = 0) -> int:
    hits = np.flatnonzero(mask[start:])
    return int(hits[0]) + start if len(hits) else len(mask)


def _level_fill(s: _Series, j: int, level: float, direction_of_move: int) -> tuple[int, float]:
    """Return (ts, price) of a fill at ``level`` in bar j: at the open (plus a minute) when
    the bar gapped through it, else at the level in the bar's middle."""
    gapped = (s.open[j] - level) * direction_of_move >= 0
    if gapped:
        return int(s.ts[j]) + 60_000_000_000, _to_tick(s.open[j], s.tick)
    return int(s.ts[j] + (s.ts_close[j] - s.ts[j]) // 2), level


def _run_exits(s: _Series, t: _Trade, move_stop_on_touch: bool) -> None:
    """Walk the trade through the bars after its entry (numpy over its window)."""
    d = t.direction
    first = t.entry_bar + 1
    last_allowed = min(t.entry_bar + t.horizon, s.split_before[t.entry_bar] - 1, len(s) - 1)
    if last_allowed < first:  # the entry is the data's last bar: still open
        t.exit_bar = -1
        return
    w = slice(first, last_allowed + 1)
    hi, lo = s.high[w], s.low[w]
    adverse = lo if d > 0 else hi
    favour = hi if d > 0 else lo

    def touched(level: float, prices: np.ndarray, sign: int) -> np.ndarray:
        # sign +1: price at or beyond the level in the trade's favour, -1: against it
        return (prices - level) * d * sign >= 0

    k_stop = _first(touched(t.stop, adverse, -1))
    k_target = _first(touched(t.target, favour, 1))
    n_w = last_allowed - first + 1
    k_part = n_w if t.partial_at is None else _first(touched(t.partial_at, favour, 1))
    stop_level, stop_kind = t.stop, "stop"
    if k_part < k_stop and k_part < n_w:
        j = first + k_part
        ts, price = _level_fill(s, j, t.partial_at, d)  # type: ignore[arg-type]
        t.exits.append((j, ts, price, "partial"))
        stop_level, stop_kind = t.entry, "breakeven"
        k_stop = _first(touched(t.entry, adverse, -1), k_part + 1)
        if k_target < k_part:
            k_target = _first(touched(t.target, favour, 1), k_part)
    if stop_kind == "stop" and k_stop < n_w and k_stop <= k_target:
        t.stop_touched_bar = first + k_stop
        if move_stop_on_touch:
            moved = _to_tick(t.stop - d * STOP_MOVED_BY_R * abs(t.entry - t.stop), s.tick)
            if moved > 0:
                t.moved_stop = moved
                stop_level, stop_kind = moved, "moved_stop"
                k_stop = _first(touched(moved, adverse, -1), k_stop)
                k_target = _first(touched(t.target, favour, 1), k_stop + 1)
    if k_stop < n_w and k_stop <= k_target:
        j = first + k_stop
        ts, price = _level_fill(s, j, stop_level, -d)
        t.exits.append((j, ts, price, stop_kind))
        t.exit_bar = j
    elif k_target < n_w:
        j = first + k_target
        ts, price = _level_fill(s, j, t.target, d)
        if t.exits and t.exits[-1][0] == j and ts <= t.exits[-1][1]:
            ts = t.exits[-1][1] + 60_000_000_000
        t.exits.append((j, ts, price, "target"))
        t.exit_bar = j
    elif last_allowed == t.entry_bar + t.horizon:
        j = last_allowed
        t.exits.append((j, int(s.ts_close[j]), _to_tick(s.close[j], s.tick), "time"))
        t.exit_bar = j
    elif s.split_before[t.entry_bar] < len(s) and last_allowed == s.split_before[t.entry_bar] - 1:
        j = last_allowed
        t.exits.append((j, int(s.ts_close[j]), _to_tick(s.close[j], s.tick),
                        "before_split"))
        t.exit_bar = j
    else:
        t.exit_bar = -1  # still open at the data's end


def _simulate_series(s: _Series, seed: int, cal: BehaviourCalendar) -> list[_Trade]:
    """Return the series' trades, one position at a time, in entry order."""
    setup, impulse = _signals(s, seed, cal)
    rules = list(SETUPS[s.timeframe].values())
    tilt = cal.in_tilt(s.ts_close)
    reverse_coin = coins(seed, "reversal", s.symbol, s.ts_close)
    candidates = np.flatnonzero((setup >= 0) | impulse)
    trades: list[_Trade] = []
    free_from = 0  # first bar whose close may open a new trade
    for i in candidates:
        if i < free_from or s.split_before[i] <= i + 1:
            continue
        if impulse[i]:
            direction = 1 if s.close[i] >= s.open[i] else -1
            rule, name = IMPULSE, "impulse"
        else:
            rule = rules[setup[i]]
            direction, name = rule.direction, rule.name
        key = stable_key(seed, s.symbol, int(s.ts_close[i]), name)
        trade = _place(s, int(i), rule, direction, key, name)
        if trade is None:
            continue
        _run_exits(s, trade, move_stop_on_touch=bool(tilt[trade.entry_bar]))
        trades.append(trade)
        if trade.exit_bar < 0:
            break
        free_from = trade.exit_bar + 1
        j = trade.exit_bar
        wrong_side = (s.close[j] - s.ema20[j]) * trade.direction < 0
        if (trade.exits[-1][3] == "time" and wrong_side and reverse_coin[j] < REVERSAL_TAKE
                and s.split_before[j] > j + 1 and np.isfinite(s.atr[j])):
            base = SETUPS[s.timeframe]["breakout_long"]
            rule = SetupRule(name="reversal", direction=-trade.direction, stop_atr=1.0,
                             target_r=1.5, horizon=max(2, base.horizon // 2), take=1.0)
            flip = _place(s, j, rule, -trade.direction,
                          stable_key(seed, s.symbol, int(s.ts_close[j]), "reversal"),
                          "reversal")
            if flip is None:
                continue
            flip.reversal_of = trade.key
            trade.exits[-1] = (j, int(s.ts_close[j]), flip.entry, "reversed")
            _run_exits(s, flip, move_stop_on_touch=bool(tilt[j]))
            trades.append(flip)
            if flip.exit_bar < 0:
                break
            free_from = flip.exit_bar + 1
    return trades


# ---------------------------------------------------------------------------- sizes
def _size(risk_per_unit: np.ndarray, lot: np.ndarray) -> np.ndarray:
    budget = EQUITY * RISK_FRACTION
    return np.floor(budget / risk_per_unit / lot + 1e-9) * lot


def _assign_sizes(trades: list[_Trade], lots: dict[str, float], cal: BehaviourCalendar
                  ) -> list[dict[str, Any]]:
    """Size every trade from the budget, doubling the first one after a loss in a tilt window
    (decided from trades closed before its entry); return the size-up behaviour rows."""
    if not trades:
        return []
    order = sorted(range(len(trades)), key=lambda k: (trades[k].entry_ts, trades[k].symbol))
    trades[:] = [trades[k] for k in order]
    entry_ts = np.array([t.entry_ts for t in trades], dtype=np.int64)
    risk = np.array([abs(t.entry - t.stop) for t in trades])
    lot = np.array([lots[t.symbol] for t in trades])
    planned = _size(risk, lot)
    qty = planned.copy()
    tilt = cal.in_tilt(entry_ts)
    by_key = {t.key: k for k, t in enumerate(trades)}
    # a reversal carries the reversed position's size: it is the same fill
    for k, t in enumerate(trades):
        if t.reversal_of is not None:
            qty[k] = planned[k] = qty[by_key[t.reversal_of]]
    closed = [(t.exits[-1][1], k) for k, t in enumerate(trades)
              if t.exit_bar >= 0 and t.exits[-1][3] != "reversed"]
    closed.sort()
    close_ts = np.array([c[0] for c in closed], dtype=np.int64)
    close_idx = np.array([c[1] for c in closed], dtype=np.int64)
    rows: list[dict[str, Any]] = []
    for k, t in enumerate(trades):
        if t.reversal_of is not None:
            qty[k] = planned[k] = qty[by_key[t.reversal_of]]
            continue
        if not tilt[k] or t.setup == "impulse":
            continue
        at = int(np.searchsorted(close_ts, t.entry_ts, side="left")) - 1
        if at < 0:
            continue
        loser = trades[int(close_idx[at])]
        within = SIZE_UP_WITHIN_H[t.timeframe] * 3_600e9
        between = entry_ts[(entry_ts > close_ts[at]) & (entry_ts < t.entry_ts)]
        if _pnl_per_unit(loser) >= 0 or t.entry_ts - close_ts[at] > within or len(between):
            continue
        qty[k] = _size(risk[k:k + 1], lot[k:k + 1])[0] * SIZE_UP_FACTOR
        rows.append({"kind": "size_up_after_loss", "ts": t.entry_ts, "symbol": t.symbol,
                     "trade_key": t.key, "timeframe": t.timeframe,
                     "detail": {"size_ratio": SIZE_UP_FACTOR, "after_trade_key": loser.key,
                                "hours_after_loss": round((t.entry_ts - close_ts[at]) / 3.6e12,
                                                          2)}})
    for k, t in enumerate(trades):
        t.qty, t.planned_qty = float(qty[k]), float(planned[k])
    return rows


def _pnl_per_unit(t: _Trade) -> float:
    """Return the trade's gross pnl per unit entered (a partial weighs its fraction)."""
    left, pnl = 1.0, 0.0
    for _, _, price, kind in t.exits:
        part = t.partial_fraction if kind == "partial" else left
        pnl += t.direction * (price - t.entry) * part
        left -= part
    return pnl


# ---------------------------------------------------------------------------- frames
def _commission(symbol: str, qty: float, price: float) -> float:
    if symbol == "EURUSD":
        return round(_FX_COMMISSION_PER_100K * qty / 100_000, 2)
    per_share, minimum, cap = _STOCK_COMMISSION
    return round(min(max(per_share * qty, minimum), cap * qty * price), 2)


def _fill_rows(trades: Sequence[_Trade]
               ) -> tuple[list[dict[str, Any]], dict[str, list[tuple[float, float]]]]:
    """Return the fills of ``trades`` and each trade's closing parts (qty, price)."""
    rows: list[dict[str, Any]] = []
    closes: dict[str, list[tuple[float, float]]] = {}
    reversed_by = {t.reversal_of: t for t in trades if t.reversal_of is not None}

    def add(t: _Trade, ts: int, side_sign: int, qty: float, price: float, open_close: str,
            kind: str, closing: float = 0.0) -> None:
        rows.append({"fill_key": stable_key(t.key, kind, ts), "trade_key": t.key,
                     "symbol": t.symbol, "timeframe": t.timeframe, "ts": ts,
                     "side": "buy" if side_sign > 0 else "sell", "qty": qty, "price": price,
                     "commission": _commission(t.symbol, qty, price),
                     "open_close": open_close, "fill_kind": kind, "closing_qty": closing,
                     "realised": t.direction * (price - t.entry) * closing})

    for t in trades:
        if t.reversal_of is None:
            add(t, t.entry_ts, t.direction, t.qty, t.entry, "O", "entry")
        left = t.qty
        for _, ts, price, kind in t.exits:
            if kind == "partial":
                part = math.floor(t.qty * t.partial_fraction / _lot_of(t)) * _lot_of(t)
                if part <= 0 or part >= t.qty:
                    continue
                add(t, ts, -t.direction, part, price, "C", "partial", part)
                closes.setdefault(t.key, []).append((part, price))
                left -= part
            elif kind == "reversed":
                flip = reversed_by[t.key]
                add(t, ts, -t.direction, left + flip.qty, price, "C;O", "reverse", left)
                closes.setdefault(t.key, []).append((left, price))
            else:
                add(t, ts, -t.direction, left, price, "C", "exit", left)
                closes.setdefault(t.key, []).append((left, price))
    return rows, closes


def _lot_of(t: _Trade) -> float:
    return 1000.0 if t.symbol == "EURUSD" else 1.0


def _trade_truth(trades: Sequence[_Trade], closes: dict[str, list[tuple[float, float]]],
                 user_id: str, seed: int, intent_of: dict[str, str],
                 behaviours: pd.DataFrame) -> pd.DataFrame:
    """Return the demo_trade_truth rows; ``closes`` holds each trade's closing (qty, price)."""
    kinds: dict[str, set[str]] = {}
    for key, kind in zip(behaviours["trade_key"], behaviours["kind"], strict=True):
        if key is not None:
            kinds.setdefault(key, set()).add(kind)
    out = []
    for t in trades:
        parts = np.array(closes.get(t.key, []), dtype=np.float64).reshape(-1, 2)
        is_open = t.exit_bar < 0
        closed = parts[:, 0].sum()
        avg_exit = float(parts[:, 0] @ parts[:, 1] / closed) if closed > 0 else None
        pnl = None if is_open else float(t.direction * (parts[:, 1] - t.entry) @ parts[:, 0])
        risk = abs(t.entry - t.stop) * t.qty
        out.append({
            "user_id": user_id, "trade_key": t.key, "trade_id": None, "symbol": t.symbol,
            "timeframe": t.timeframe, "side": "long" if t.direction > 0 else "short",
            "setup": t.setup, "entry_ts": t.entry_ts, "entry_price": t.entry,
            "planned_stop": t.stop, "planned_target": t.target,
            "planned_qty": t.planned_qty, "qty": t.qty,
            "exit_ts": None if is_open else t.exits[-1][1], "avg_exit": avg_exit,
            "exit_reason": "open" if is_open else t.exits[-1][3],
            "partial_exit": len(parts) > 1 and any(k == "partial" for *_, k in t.exits),
            "pnl": pnl, "pnl_r": None if pnl is None or risk <= 0 else pnl / risk,
            "intent_id": intent_of.get(t.key), "reversal_of": t.reversal_of,
            "behaviours_json": json.dumps(sorted(kinds.get(t.key, set()))),
            "seed": seed, "generator_version": GENERATOR_VERSION})
    frame = pd.DataFrame(out)
    for column in ("entry_ts", "exit_ts"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def _session_date(ts: pd.Series, timeframe: str) -> pd.Series:
    """Return each UTC time's trading session: New York's calendar day for stocks; the FX
    session rolls at 17:00 New York time."""
    local = ts.dt.tz_convert("America/New_York")
    if timeframe == "1h":
        local = local + pd.Timedelta(hours=7)
    return local.dt.date


def simulate_history(store: Store, *, user_id: str = "demo", seed: int = DEFAULT_SEED,
                     as_of: datetime | None = None,
                     series: Sequence[tuple[str, str]] = DEMO_SERIES,
                     behaviours: bool = True) -> DemoHistory:
    """Simulate the demo trader on the store's real bars closed by ``as_of`` (all when None).

    ``behaviours`` False: the CLEAN trader: the same generator, seed and trades with no
    behaviour injected (no tilt windows, overtrading or late-session days), for measuring
    the behaviour detectors' false alarms.

    Deterministic: the same store, seed and as_of give the same fills, ids included; a
    shorter ``as_of`` gives the same entries up to it (nothing is decided from later bars).
    A series with no bar closed by ``as_of`` is left out; none at all is a ValueError.
    """
    cal = behaviour_calendar(seed) if behaviours else NO_BEHAVIOURS
    trades: list[_Trade] = []
    lots: dict[str, float] = {}
    frames: dict[str, _Series] = {}
    with store.reading():
        for symbol, timeframe in series:
            read = _read_series(store, symbol, timeframe, as_of)
            if read is not None:
                frames[symbol] = read
    if not frames:
        raise ValueError(f"series: none of {[f'{s} {tf}' for s, tf in series]} has a bar "
                         f"closed by {as_of} in {store.path}; load the sample data first")
    for s in frames.values():
        lots[s.symbol] = s.lot
        trades.extend(_simulate_series(s, seed, cal))
    behaviour_rows = _assign_sizes(trades, lots, cal)
    trades = [t for t in trades if t.qty > 0]
    for t in trades:
        if t.moved_stop is not None:
            behaviour_rows.append({
                "kind": "stop_moved", "ts": int(frames[t.symbol].ts_close[t.stop_touched_bar]),
                "symbol": t.symbol, "trade_key": t.key, "timeframe": t.timeframe,
                "detail": {"planned_stop": t.stop, "moved_stop": t.moved_stop,
                           "moved_by_r": STOP_MOVED_BY_R}})
    fill_rows, closes = _fill_rows(trades)
    fills = pd.DataFrame(fill_rows)
    fills["ts"] = pd.to_datetime(fills["ts"], utc=True)
    fills = fills.sort_values(["ts", "symbol", "fill_key"], kind="stable").reset_index(drop=True)
    behaviour_rows.extend(_day_behaviours(trades, cal))
    behaviours = _behaviour_frame(behaviour_rows, user_id, seed)
    intents, intent_of = _intents(trades, user_id, seed)
    truth = _trade_truth(trades, closes, user_id, seed, intent_of, behaviours)
    return DemoHistory(user_id=user_id, seed=seed, fills=fills, trades=truth,
                       behaviours=behaviours, intents=intents)


def _day_behaviours(trades: Sequence[_Trade], cal: BehaviourCalendar) -> list[dict[str, Any]]:
    """Return one row per injected EURUSD day: how many trades it had, and its late trades."""
    rows: list[dict[str, Any]] = []
    fx = [t for t in trades if t.timeframe == "1h"]
    if not fx:
        return rows
    days = pd.to_datetime(np.array([t.entry_ts for t in fx]), utc=True)
    per_day = pd.Series(1, index=days.normalize()).groupby(level=0).size()
    usual = float(per_day.median())
    for day in cal.overtrading_days:
        n = int(per_day.get(day, 0))
        if n:
            rows.append({"kind": "overtrading_day", "ts": day.value, "symbol": "EURUSD",
                         "trade_key": None, "timeframe": "1h",
                         "detail": {"trades": n, "usual_trades_per_day": usual}})
    for day in cal.late_session_days:
        own = [t for t, d in zip(fx, days.normalize(), strict=True) if d == day]
        if not own:
            continue
        first_h = min(pd.Timestamp(t.entry_ts, tz="UTC").hour for t in own)
        for t in own:
            hour = pd.Timestamp(t.entry_ts, tz="UTC").hour
            if t.setup == "impulse" and hour >= LATE_FROM_HOUR:
                rows.append({"kind": "late_session", "ts": t.entry_ts, "symbol": t.symbol,
                             "trade_key": t.key, "timeframe": "1h",
                             "detail": {"entry_hour_utc": hour,
                                        "hours_since_first_trade": hour - first_h}})
    return rows


def _behaviour_frame(rows: Sequence[dict[str, Any]], user_id: str, seed: int) -> pd.DataFrame:
    if not rows:
        return pd.DataFrame(columns=["user_id", "behavior_id", "kind", "ts", "session_date",
                                     "symbol", "trade_key", "detail_json", "seed",
                                     "generator_version"])
    frame = pd.DataFrame(rows)
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    sessions = [(_session_date(pd.Series([ts]), tf).iloc[0] if kind != "overtrading_day"
                 else ts.date())
                for ts, tf, kind in zip(frame["ts"], frame["timeframe"], frame["kind"],
                                        strict=True)]
    out = pd.DataFrame({
        "user_id": user_id,
        "behavior_id": [stable_key(seed, k, ts.value, key) for k, ts, key in
                        zip(frame["kind"], frame["ts"], frame["trade_key"], strict=True)],
        "kind": frame["kind"], "ts": frame["ts"], "session_date": pd.to_datetime(sessions),
        "symbol": frame["symbol"], "trade_key": frame["trade_key"].astype(object),
        "detail_json": [json.dumps(d, sort_keys=True) for d in frame["detail"]],
        "seed": seed, "generator_version": GENERATOR_VERSION})
    out["trade_key"] = out["trade_key"].where(out["trade_key"].notna(), None)
    return out.sort_values(["ts", "kind"], kind="stable").reset_index(drop=True)


def _intents(trades: Sequence[_Trade], user_id: str, seed: int
             ) -> tuple[pd.DataFrame, dict[str, str]]:
    """Return the trade_intents rows logged before most planned trades, and trade -> intent."""
    rows, intent_of = [], {}
    for t in trades:
        if t.setup == "impulse":
            continue
        coin = coins(seed, "intent", t.symbol, np.array([t.entry_ts]))[0]
        if coin >= INTENT_SHARE:
            continue
        intent_id = stable_key("demo-intent", user_id, seed, t.key)
        intent_of[t.key] = intent_id
        rows.append({
            "intent_id": intent_id, "user_id": user_id, "symbol": t.symbol,
            "side": "long" if t.direction > 0 else "short", "timeframe": t.timeframe,
            "proposed_entry": t.entry, "proposed_stop": t.stop, "proposed_target": t.target,
            "proposed_size": t.qty, "proposed_risk_amount": round(abs(t.entry - t.stop) * t.qty,
                                                                  2),
            "holding_horizon": t.horizon, "order_type": "market",
            "exit_template": "swing_2r" if t.setup == "pullback_long" else None,
            "as_of": pd.Timestamp(t.entry_ts, tz="UTC"), "status": "submitted"})
    frame = pd.DataFrame(rows)
    if len(frame):
        frame["holding_horizon"] = frame["holding_horizon"].astype("int32")
    return frame, intent_of


# ---------------------------------------------------------------------------- broker files
#: The demo's accounts as the brokers name them.
IBKR_ACCOUNT = "U7654321"
MT5_SERVER_TZ = "Europe/Athens"  # a GMT+2/+3 server clock, the commonest among FX brokers

IBKR_COLUMNS: tuple[str, ...] = (
    "ClientAccountID", "CurrencyPrimary", "AssetClass", "Symbol", "DateTime",
    "TransactionType", "Exchange", "Quantity", "TradePrice", "IBCommission",
    "IBCommissionCurrency", "Taxes", "Buy/Sell", "OpenCloseIndicator", "IBExecID",
    "IBOrderID", "TradeID", "LevelOfDetail")
MT5_COLUMNS: tuple[str, ...] = (
    "Time", "Deal", "Symbol", "Type", "Direction", "Volume", "Price", "Order", "Commission",
    "Fee", "Swap", "Profit", "Balance", "Comment")


def write_ibkr_flex_csv(fills: pd.DataFrame, path: Path, exchanges: dict[str, str]) -> Path:
    """Write stock ``fills`` as an IBKR Flex query trades CSV (one header row, times
    exchange-local New York without an offset, sells negative, commissions negative)."""
    local = fills["ts"].dt.tz_convert("America/New_York")
    sign = np.where(fills["side"] == "buy", 1.0, -1.0)
    frame = pd.DataFrame({
        "ClientAccountID": IBKR_ACCOUNT, "CurrencyPrimary": "USD", "AssetClass": "STK",
        "Symbol": fills["symbol"], "DateTime": local.dt.strftime("%Y%m%d;%H%M%S"),
        "TransactionType": "ExchTrade", "Exchange": fills["symbol"].map(exchanges),
        "Quantity": (sign * fills["qty"]).map(lambda q: f"{q:g}"),
        "TradePrice": fills["price"].map(lambda p: f"{p:.2f}"),
        "IBCommission": (-fills["commission"]).map(lambda c: f"{c:.2f}"),
        "IBCommissionCurrency": "USD", "Taxes": "0",
        "Buy/Sell": fills["side"].str.upper(), "OpenCloseIndicator": fills["open_close"],
        "IBExecID": "0000e0d5." + fills["fill_key"].str[:8] + "." + fills["fill_key"].str[8:16],
        "IBOrderID": [str(100_000_000 + i) for i in range(len(fills))],
        "TradeID": [str(500_000_000 + i) for i in range(len(fills))],
        "LevelOfDetail": "EXECUTION"})
    path.parent.mkdir(parents=True, exist_ok=True)
    frame[list(IBKR_COLUMNS)].to_csv(path, index=False)
    return path


def write_mt5_deals_csv(fills: pd.DataFrame, path: Path) -> Path:
    """Write FX ``fills`` as a MetaTrader 5 Deals CSV: server-clock times (``MT5_SERVER_TZ``),
    volume in lots of 100,000, direction in/out/inout, commission negative, a running
    balance from the demo account's equity."""
    local = fills["ts"].dt.tz_convert(MT5_SERVER_TZ)
    closing = fills["open_close"] != "O"
    profit = np.where(closing, fills["realised"], 0.0)
    balance = EQUITY + np.cumsum(profit - fills["commission"].to_numpy())
    frame = pd.DataFrame({
        "Time": local.dt.strftime("%Y.%m.%d %H:%M:%S"),
        "Deal": [str(40_000_000 + i) for i in range(len(fills))],
        "Symbol": fills["symbol"], "Type": fills["side"],
        "Direction": fills["open_close"].map({"O": "in", "C": "out", "C;O": "inout"}),
        "Volume": (fills["qty"] / 100_000).map(lambda v: f"{v:.2f}"),
        "Price": fills["price"].map(lambda p: f"{p:.5f}"),
        "Order": [str(60_000_000 + i) for i in range(len(fills))],
        "Commission": (-fills["commission"]).map(lambda c: f"{c:.2f}"),
        "Fee": "0.00", "Swap": "0.00", "Profit": [f"{p:.2f}" for p in profit],
        "Balance": [f"{b:.2f}" for b in balance], "Comment": fills["fill_kind"]})
    path.parent.mkdir(parents=True, exist_ok=True)
    frame[list(MT5_COLUMNS)].to_csv(path, index=False)
    return path


def broker_files(history: DemoHistory, folder: Path, exchanges: dict[str, str]
                 ) -> dict[str, Path]:
    """Write the history's broker files into ``folder``; return format -> path."""
    fills = history.fills
    stocks = fills[fills["timeframe"] == "1d"].reset_index(drop=True)
    fx = fills[fills["timeframe"] == "1h"].reset_index(drop=True)
    return {"ibkr-csv": write_ibkr_flex_csv(stocks, folder / "demo_ibkr_flex_trades.csv",
                                            exchanges),
            "mt5": write_mt5_deals_csv(fx, folder / "demo_mt5_deals.csv")}


# ---------------------------------------------------------------------------- the demo's load
@dataclass(frozen=True, slots=True)
class DemoLoad:
    """What ``load_demo_history`` did: counts and the seconds it took."""

    user_id: str
    simulated_trades: int
    fills: int
    intents: int
    behaviours: int
    files: dict[str, Path]
    trades: int
    linked_truth: int
    reviews: int
    journal_notes: int
    seconds: float
    skipped: bool = False

    def __str__(self) -> str:
        if self.skipped:
            return (f"demo trader {self.user_id!r}: history already loaded "
                    f"({self.trades} trades)")
        files = ", ".join(f"{fmt} {path.name}" for fmt, path in self.files.items())
        return (f"demo trader {self.user_id!r}: {self.simulated_trades} simulated round "
                f"trips on real bars, {self.fills} fills in broker files ({files}), "
                f"{self.intents} intents; imported and grouped into {self.trades} trades "
                f"({self.linked_truth} matched to the ground truth), {self.reviews} reviews, "
                f"{self.journal_notes} journal notes, {self.behaviours} injected behaviours "
                f"on record; {self.seconds:.1f} s")


def load_demo_history(store: Store, *, user_id: str = "demo", seed: int = DEFAULT_SEED,
                      folder: Path | None = None, force: bool = False,
                      series: Sequence[tuple[str, str]] = DEMO_SERIES,
                      behaviours: bool = True) -> DemoLoad:
    """Simulate the demo trader, write its broker files, and take them through the import,
    the trades grouping, the reviews and the journal; store the ground truth apart.

    Skipped (``skipped`` True) when the same seed and generator version are already loaded,
    unless ``force``. ``folder`` holds the broker files (default: beside the database);
    ``series`` narrows the history (tests); ``behaviours`` False loads the clean trader
    (``simulate_history``; give it its own ``user_id``, e.g. CLEAN_USER).
    """
    from buddy.trades.importer import import_fills
    from buddy.trades.service import rebuild_trades

    started = time.perf_counter()
    if not force:
        loaded = demo_truth_loaded(store, user_id, seed, GENERATOR_VERSION)
        if loaded is not None:
            return DemoLoad(user_id=user_id, simulated_trades=0, fills=0, intents=0,
                            behaviours=0, files={}, trades=loaded, linked_truth=loaded,
                            reviews=0, journal_notes=0, seconds=0.0, skipped=True)
    history = simulate_history(store, user_id=user_id, seed=seed, series=series,
                               behaviours=behaviours)
    tickers = store.tickers()
    exchanges = dict(zip(tickers["symbol"], tickers["exchange"], strict=True))
    folder = folder or store.path.parent / "demo_broker_files"
    files = broker_files(history, folder, exchanges)
    replace_demo_truth(store, user_id, history.trades, history.behaviours, history.intents)
    import_fills(store, files["ibkr-csv"], user_id=user_id, fmt="ibkr-csv")
    import_fills(store, files["mt5"], user_id=user_id, fmt="mt5", tz=MT5_SERVER_TZ)
    rebuild_trades(store, user_id)
    linked = link_truth_to_trades(store, user_id)
    reviews = _run_reviews(store, user_id)
    notes = _journal_notes(store, user_id, history)
    trades = count_trades(store, user_id)
    return DemoLoad(user_id=user_id, simulated_trades=len(history.trades),
                    fills=len(history.fills), intents=len(history.intents),
                    behaviours=len(history.behaviours), files=files, trades=trades,
                    linked_truth=linked, reviews=reviews, journal_notes=notes,
                    seconds=time.perf_counter() - started)


def _run_reviews(store: Store, user_id: str) -> int:
    from buddy.jobs.reviews import run_reviews_job

    return run_reviews_job(store, user_id=user_id).n_reviewed


#: The demo trader's journal notes: (behaviour kind whose trade gets the note, text, tags).
DEMO_NOTES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("stop_moved", "Price hit my stop and I moved it down instead of taking the loss. "
     "It kept going. The stop was the plan; honour it.", ("stop", "discipline")),
    ("overtrading_day", "Traded every hour today after the first loss, no plan written for "
     "any of them. Stop after two unplanned trades.", ("overtrading", "tilt")),
)


def _noted_trades(store: Store, user_id: str) -> list[tuple[str, str, tuple[str, ...]]]:
    """Return (trade_id, note, tags) for the demo notes: the first stop-moved trade that
    lost past its planned stop, and the first trade of the first overtrading day."""
    truth = demo_trade_truth(store, user_id)
    behaviours = demo_behavior_truth(store, user_id)
    out = []
    for kind, text, tags in DEMO_NOTES:
        if kind == "stop_moved":
            rows = truth[(truth["exit_reason"] == "moved_stop") & truth["trade_id"].notna()]
        else:
            days = behaviours.loc[behaviours["kind"] == kind, "ts"]
            if days.empty:
                continue
            day = days.min().normalize()
            rows = truth[(truth["entry_ts"].dt.normalize() == day) & truth["trade_id"].notna()]
        if len(rows):
            out.append((str(rows.iloc[0]["trade_id"]), text, tags))
    return out


def _journal_notes(store: Store, user_id: str, history: DemoHistory) -> int:
    """Write the demo trader's journal notes (DEMO_NOTES) once; return the notes written."""
    from buddy.store.trades import add_journal_note, read_journal

    written = 0
    existing = set(read_journal(store, user_id)["journal_id"])
    for trade_id, text, tags in _noted_trades(store, user_id):
        journal_id = stable_key("demo-note", user_id, history.seed, trade_id)
        if journal_id in existing:
            continue
        add_journal_note(store, journal_id=journal_id, user_id=user_id, trade_id=trade_id,
                         intent_id=None, note=text, tags=tags)
        written += 1
    return written


def demo_review_and_summary(store: Store, user_id: str = "demo") -> tuple[str, str]:
    """Return the text of one post-trade review (the demo's first trade that lost past its
    moved stop) and of the weekly summary of its first overtrading day's week."""
    from buddy.store.trades import read_reviews, read_trades
    from buddy.trades.review import render_review
    from buddy.trades.summary import load_summary, render_summary

    noted = _noted_trades(store, user_id)
    review_text = "no reviewed demo trade to show"
    if noted:
        trade_id = noted[0][0]
        trades = read_trades(store, user_id, trade_ids=[trade_id])
        reviews = read_reviews(store, user_id, trade_ids=[trade_id])
        if len(trades) and len(reviews):
            review_text = render_review(trades.iloc[0].to_dict(), reviews.iloc[-1].to_dict())
    behaviours = demo_behavior_truth(store, user_id)
    days = behaviours.loc[behaviours["kind"] == "overtrading_day", "ts"]
    day = (days.min() if len(days) else demo_trade_truth(store, user_id)["entry_ts"].max())
    summary = load_summary(store, user_id, "week", day.date())
    return review_text, render_summary(summary)
