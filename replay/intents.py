"""Intents to replay: rule-based generators over history, the database's own intents, and a
CSV of past trades. Every source returns a frame with exactly ``INTENT_COLUMNS``.

Generators
    ``generate_intents(store, name, ...)`` runs one generator of ``GENERATORS`` over each
    symbol's whole history at once (numpy over the series, no per-bar loop). A generator only
    decides *where* to trade and *where the stop goes*; the rest is shared and stated once:

    - entry: the signal bar's close, on the tick grid (nearest tick), as a market order; a
      generator registered with another ``order_type`` (``limit_pullback``: 'limit') sets its
      own entry price, also put on the grid (nearest tick). ``as_of`` is the signal bar's
      ``ts_close``, so the intent is what a trader could have placed the moment the bar closed.
    - stop: the generator's level (placed from its entry), rounded onto the grid *away* from
      the entry (a long's stop down, a short's up), so the risk is never understated.
    - target: ``target_r`` times the rounded risk beyond the entry, nearest tick (NaN when the
      config's ``target_r`` is None); a short whose target would be at or below zero is
      dropped.
    - size: ``risk_per_trade`` (quote currency) over the risk per unit (stop distance times the
      contract multiplier), rounded DOWN to the lot size so the budget is never exceeded; a
      signal whose budget buys less than one lot is dropped.
    - horizon: the config's ``holding_horizon`` in bars of the timeframe (the time stop).

Point in time
    A signal at bar t reads only bars and features up to t. Prices at t are the bar's own, as
    traded, which is the basis in force at ``as_of``. Anything that combines several bars
    (the prior session's high, a rolling VWAP) is computed on a continuous series that puts
    every bar on the first bar's basis (multiplying by the splits with ``ex_date`` after the
    first bar and on or before the bar), then divided back by bar t's factor; the factor of a
    bar depends only on splits already in effect at it, so a history truncated at t gives the
    same intents up to t, bit for bit (the tests prove it on real data).

Determinism
    ``intent_id`` is a hash of (generator, symbol, timeframe, as_of, side). The random
    baseline draws each bar's coin from a hash of (seed, symbol, timeframe, ts_close), so the
    same seed gives the same entries whatever the date range or symbol list; ``limit_pullback``
    draws its coin and its limit's distance the same way (its name in the hash, so its bars
    are not the random baseline's).
"""

from __future__ import annotations

import hashlib
import inspect
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from buddy.config import Config, did_you_mean, param
from buddy.domain import OrderType
from buddy.errors import ConfigError, FieldError, FieldErrors
from buddy.evidence import to_tick as tick_grid
from buddy.store import Store
from buddy.store.bars import bars_closing_after, symbol_actions
from buddy.store.replay import bar_series, generator_inputs
from buddy.store.trades import all_trades, replayable_intents
from buddy.timeframes import Timeframe
from replay.model import INTENT_COLUMNS

__all__ = [
    "DOC_SECTIONS",
    "GENERATORS",
    "TRADE_COLUMNS",
    "IntentGenerator",
    "LimitPullbackConfig",
    "MaCrossConfig",
    "PriceSeries",
    "PriorHighBreakoutConfig",
    "RandomEntryConfig",
    "Signals",
    "TradesFileError",
    "VwapPullbackConfig",
    "corpus_intents",
    "corpus_series",
    "database_intents",
    "database_trades",
    "generate_intents",
    "import_trades_csv",
    "load_outcome_inputs",
    "register",
    "size_to_lot",
    "stable_id",
    "to_tick",
]

#: The seed's ``trades`` table columns, in order: what ``import_trades_csv`` returns.
TRADE_COLUMNS: tuple[str, ...] = (
    "trade_id", "user_id", "symbol", "side", "open_ts", "close_ts", "avg_entry", "avg_exit",
    "qty", "pnl", "pnl_r", "fees", "slippage_est", "outcome_label", "tags_json",
    "linked_intent_id",
)

#: Every generator's docstring states each of these, one paragraph each.
DOC_SECTIONS: tuple[str, ...] = ("Signal", "Entry", "Stop", "Target", "Size", "Horizon")

#: Risk per generated intent when none is given, in the instrument's quote currency.
DEFAULT_RISK_PER_TRADE = 1_000.0

_FEATURES = ("atr_14", "ema_20", "ema_50", "vwap_session")


# ---------------------------------------------------------------------------- the price series
@dataclass(frozen=True, slots=True, kw_only=True)
class PriceSeries:
    """One symbol's bars and features up to the run's end, as numpy arrays, oldest first.

    Prices and price-level features are as traded (each bar's own basis). ``basis`` multiplies
    a bar's as-traded price onto the first bar's basis: the product of the ratios of the splits
    with ``ex_date`` after the first bar's session and on or before the bar's.
    """

    symbol: str
    timeframe: Timeframe
    ts_close: np.ndarray  # int64 ns, UTC
    session: np.ndarray  # int64 days since 1970-01-01
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    basis: np.ndarray
    features: Mapping[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.close)


@dataclass(frozen=True, slots=True)
class Signals:
    """What a generator decides: the signal bars (positions), direction (+1 long, -1 short),
    the stop price and, for a generator that does not enter at the close, the entry price,
    each on the signal bar's own basis (before tick rounding). ``entry`` None: the close."""

    bar: np.ndarray
    direction: np.ndarray
    stop: np.ndarray
    entry: np.ndarray | None = None

    @classmethod
    def where(cls, mask: np.ndarray, direction: np.ndarray | int, stop: np.ndarray,
              entry: np.ndarray | None = None) -> Signals:
        """Return the signals at the bars where ``mask`` holds and ``stop`` (and ``entry``,
        when given) is finite."""
        keep = mask & np.isfinite(stop)
        if entry is not None:
            keep &= np.isfinite(entry)
        bar = np.flatnonzero(keep)
        sides = np.broadcast_to(np.asarray(direction, dtype=np.int8), mask.shape)[bar]
        return cls(bar, sides.astype(np.int8), stop[bar],
                   None if entry is None else entry[bar])

    def take(self, keep: np.ndarray) -> Signals:
        """Return the signals where the boolean ``keep`` (one per signal) holds."""
        return Signals(self.bar[keep], self.direction[keep], self.stop[keep],
                       None if self.entry is None else self.entry[keep])


# ---------------------------------------------------------------------------- configs
def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and (
        math.isfinite(value) and value > 0)


def _target_r() -> Any:
    return param(2.0, lo=0.0, lo_open=True, unit="R", doc="target distance in R (None: none)")


def _horizon(default: int) -> Any:
    return param(default, lo=1, hi=100_000, unit="bars", doc="time stop")


@dataclass(frozen=True, slots=True, kw_only=True)
class MaCrossConfig(Config):
    """EMA20/EMA50 cross. ``stop_atr``: stop distance in ATR(14); ``target_r``: target in R
    (None: no target); ``holding_horizon``: time stop in bars; ``sides``: which crosses trade
    ('long' on an up-cross, 'short' on a down-cross)."""

    config_name: ClassVar[str] = "ma_cross"

    stop_atr: float = param(2.0, lo=0.0, lo_open=True, unit="ATR", doc="stop distance")
    target_r: float | None = _target_r()
    holding_horizon: int = _horizon(20)
    sides: tuple[str, ...] = param(("long", "short"), choices=("long", "short"), min_items=1,
                                   doc="which crosses trade")


@dataclass(frozen=True, slots=True, kw_only=True)
class PriorHighBreakoutConfig(Config):
    """Close above the prior sessions' high. ``lookback_sessions``: how many prior sessions
    the broken high spans; ``stop_buffer_atr``: the stop sits this many
    ATR(14) below the broken high; ``target_r``: target in R (None: no target);
    ``holding_horizon``: time stop in bars."""

    config_name: ClassVar[str] = "prior_high_breakout"

    stop_buffer_atr: float = param(0.5, lo=0.0, lo_open=True, unit="ATR",
                                   doc="stop distance below the broken high")
    lookback_sessions: int = param(1, lo=1, hi=10_000, unit="sessions",
                                   doc="the broken high is the highest of this many prior "
                                       "sessions (1: yesterday's high; 20: a 20-day high)")
    target_r: float | None = _target_r()
    holding_horizon: int = _horizon(10)


@dataclass(frozen=True, slots=True, kw_only=True)
class VwapPullbackConfig(Config):
    """Pullback to VWAP in an up-trend. ``within_atr``: how close to VWAP (ATR(14)) the close
    must come back; ``vwap``: 'session' (the session VWAP feature), 'rolling' (VWAP of the
    last ``vwap_window`` bars) or 'auto' (session for intraday timeframes, rolling otherwise);
    ``stop_atr``: stop distance in ATR; ``target_r`` in R (None: no target);
    ``holding_horizon`` in bars."""

    config_name: ClassVar[str] = "vwap_pullback"

    within_atr: float = param(0.25, lo=0.0, lo_open=True, unit="ATR",
                              doc="how close to VWAP the close comes back")
    vwap: str = param("auto", choices=("auto", "session", "rolling"), doc="which VWAP")
    vwap_window: int = param(20, lo=2, hi=100_000, unit="bars", doc="rolling VWAP window")
    stop_atr: float = param(1.5, lo=0.0, lo_open=True, unit="ATR", doc="stop distance")
    target_r: float | None = _target_r()
    holding_horizon: int = _horizon(10)


@dataclass(frozen=True, slots=True, kw_only=True)
class RandomEntryConfig(Config):
    """Random entries, the baseline. ``entry_probability``: chance (0-1] that a bar is an
    entry; ``long_probability``: chance (0-1] that an entry is long; ``stop_atr``: stop distance
    in ATR(14); ``target_r`` in R (None: no target); ``holding_horizon`` in bars."""

    config_name: ClassVar[str] = "random"

    entry_probability: float = param(0.05, lo=0.0, hi=1.0, lo_open=True, unit="probability",
                                     doc="chance that a bar is an entry")
    long_probability: float = param(0.5, lo=0.0, hi=1.0, unit="probability",
                                    doc="chance that an entry is long")
    stop_atr: float = param(2.0, lo=0.0, lo_open=True, unit="ATR", doc="stop distance")
    target_r: float | None = _target_r()
    holding_horizon: int = _horizon(20)


@dataclass(frozen=True, slots=True, kw_only=True)
class LimitPullbackConfig(Config):
    """Limit entries placed away from the market, with the trend. ``entry_probability``:
    chance (0-1] that a bar with a known trend places an order (3% by default, which keeps
    the all-data corpus near 12,500 intents); ``min_distance_atr``/``max_distance_atr``: the
    range (ATR(14)) the limit's distance from the close is drawn from (0.25-3 ATR);
    ``far_probability``: chance [0-1] that the order is instead placed far, at a distance in
    percent of the close drawn from ``far_min_pct``-``far_max_pct`` (3-6%), the orders that
    often never trade; ``stop_atr``: stop distance in ATR from the limit; ``target_r`` in R
    (None: no target); ``holding_horizon`` in bars."""

    config_name: ClassVar[str] = "limit_pullback"

    entry_probability: float = param(0.03, lo=0.0, hi=1.0, lo_open=True, unit="probability",
                                     doc="chance that a trend bar places a limit order")
    min_distance_atr: float = param(0.25, lo=0.0, lo_open=True, hi=100.0, unit="ATR",
                                    doc="nearest limit distance from the close")
    max_distance_atr: float = param(3.0, lo=0.0, lo_open=True, hi=100.0, unit="ATR",
                                    doc="farthest limit distance from the close")
    far_probability: float = param(0.1, lo=0.0, hi=1.0, unit="probability",
                                   doc="chance that the limit is placed far (in percent)")
    far_min_pct: float = param(3.0, lo=0.0, lo_open=True, hi=50.0, unit="%",
                               doc="nearest far limit distance from the close")
    far_max_pct: float = param(6.0, lo=0.0, lo_open=True, hi=50.0, unit="%",
                               doc="farthest far limit distance from the close")
    stop_atr: float = param(1.5, lo=0.0, lo_open=True, unit="ATR",
                            doc="stop distance from the limit")
    target_r: float | None = _target_r()
    holding_horizon: int = _horizon(10)

    def check(self) -> list[FieldError]:
        """Return the ranges whose ends are out of order."""
        errors = []
        for low, high in (("min_distance_atr", "max_distance_atr"),
                          ("far_min_pct", "far_max_pct")):
            if getattr(self, low) > getattr(self, high):
                errors.append(FieldError(f"{self.config_name}.{low}/{high}",
                                         f"must satisfy {low} <= {high}",
                                         (getattr(self, low), getattr(self, high))))
        return errors


# ---------------------------------------------------------------------------- registry
SignalFunction = Callable[[PriceSeries, Any, int], Signals]


@dataclass(frozen=True, slots=True)
class IntentGenerator:
    """A named rule: its config type and the function that finds its signals.

    The function takes (series, config, seed) and returns ``Signals``; its docstring is the
    generator's documentation and states each of ``DOC_SECTIONS``. ``order_type``: the
    intents' order type (a ``buddy.domain.OrderType`` value; 'market' enters at the close).
    """

    name: str
    config_type: type[Config]
    signals: SignalFunction
    order_type: str = OrderType.MARKET.value

    @property
    def doc(self) -> str:
        """Return the generator's documentation (its signal function's docstring)."""
        return inspect.getdoc(self.signals) or ""

    def config(self, **params: Any) -> Any:
        """Return a validated config; an unknown name is refused with the closest known one."""
        return self.config_type.from_mapping(params)


#: Generators by name. Add one with ``register``.
GENERATORS: dict[str, IntentGenerator] = {}


def register(generator: IntentGenerator) -> IntentGenerator:
    """Add ``generator`` to ``GENERATORS`` after checking its name and documentation."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", generator.name):
        raise ValueError(f"generator name: must be snake_case (got {generator.name!r})")
    if generator.name in GENERATORS:
        raise ValueError(f"generator name: {generator.name!r} is already registered")
    if not (isinstance(generator.config_type, type) and issubclass(generator.config_type,
                                                                     Config)):
        raise ValueError(f"generator {generator.name!r}: its config must subclass "
                         f"buddy.config.Config (got {generator.config_type!r})")
    shared = {"target_r", "holding_horizon"} - {f.name for f in fields(generator.config_type)}
    if shared:
        raise ValueError(f"generator {generator.name!r}: its config must have the fields "
                         f"{sorted(shared)} (the shared target and time stop)")
    if generator.order_type not in {o.value for o in OrderType}:
        raise ValueError(f"generator {generator.name!r}: order_type must be one of "
                         f"{', '.join(o.value for o in OrderType)} (got "
                         f"{generator.order_type!r})")
    missing = [s for s in DOC_SECTIONS if not re.search(rf"^{s}:", generator.doc, re.M)]
    if missing:
        raise ValueError(f"generator {generator.name!r}: its docstring must state "
                         f"{', '.join(missing)} (a line starting '<Section>:')")
    GENERATORS[generator.name] = generator
    return generator


# ---------------------------------------------------------------------------- generators
def _previous(values: np.ndarray) -> np.ndarray:
    shifted = np.empty_like(values, dtype=np.float64)
    shifted[:1] = np.nan
    shifted[1:] = values[:-1]
    return shifted


def ma_cross_signals(series: PriceSeries, config: MaCrossConfig, seed: int) -> Signals:
    """EMA20/EMA50 cross: trend following on a moving-average cross.

    Signal: at bar t, ema_20 closes above ema_50 after being at or below it at t-1 (long), or
    below it after being at or above it (short); ``sides`` picks which. Both averages are TA
    features of bars up to t (the comparison is scale-free, so a split between t-1 and t
    cannot fake a cross).
    Entry: the close of bar t, at its ts_close.
    Stop: ``stop_atr`` x atr_14 at t from the entry (2 ATR by default).
    Target: ``target_r`` R beyond the entry (2R by default).
    Size: the fixed risk budget over the stop distance, rounded down to the lot size.
    Horizon: ``holding_horizon`` bars (20 by default).
    """
    fast, slow = series.features["ema_20"], series.features["ema_50"]
    atr, close = series.features["atr_14"], series.close
    above, was_above = fast > slow, _previous(fast) > _previous(slow)
    below, was_below = fast < slow, _previous(fast) < _previous(slow)
    known_before = np.isfinite(_previous(fast)) & np.isfinite(_previous(slow))
    up = above & ~was_above & known_before
    down = below & ~was_below & known_before
    if "long" not in config.sides:
        up[:] = False
    if "short" not in config.sides:
        down[:] = False
    direction = np.where(up, 1, -1)
    stop = close - direction * config.stop_atr * atr
    return Signals.where(up | down, direction, stop)


def _prior_session_high(series: PriceSeries, sessions: int = 1) -> np.ndarray:
    """Return, per bar, the highest high of the ``sessions`` previous sessions on the bar's
    own basis (NaN until that many sessions have closed)."""
    n = len(series)
    if n == 0:
        return np.empty(0)
    starts = np.flatnonzero(np.r_[True, series.session[1:] != series.session[:-1]])
    continuous_high = np.maximum.reduceat(series.high * series.basis, starts)
    prior = (pd.Series(continuous_high).rolling(sessions, min_periods=sessions).max()
             .shift(1).to_numpy(np.float64))
    session_of_bar = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, n]))
    return prior[session_of_bar] / series.basis


def prior_high_breakout_signals(series: PriceSeries, config: PriorHighBreakoutConfig,
                                seed: int) -> Signals:
    """Prior-session-high breakout: momentum on a close above the prior sessions' high.

    Signal: bar t is the first bar of its session to close above the highest high of the
    ``lookback_sessions`` previous sessions (1 by default: for daily and weekly bars the
    previous bar's high; intraday: the highest high of the previous session's bars), the high
    put on bar t's basis. Long only.
    Entry: the close of bar t, at its ts_close.
    Stop: ``stop_buffer_atr`` x atr_14 at t below the broken high (0.5 ATR by default), so the
    trade is wrong once price is back inside yesterday's range.
    Target: ``target_r`` R beyond the entry (2R by default).
    Size: the fixed risk budget over the stop distance, rounded down to the lot size.
    Horizon: ``holding_horizon`` bars (10 by default).
    """
    prior_high = _prior_session_high(series, config.lookback_sessions)
    above = series.close > prior_high
    counts = np.cumsum(above)
    starts = np.r_[True, series.session[1:] != series.session[:-1]]
    before_session = np.maximum.accumulate(np.where(starts, np.r_[0, counts[:-1]], 0))
    first_above = above & (counts - before_session == 1)
    stop = prior_high - config.stop_buffer_atr * series.features["atr_14"]
    return Signals.where(first_above, 1, stop)


def _rolling_vwap(series: PriceSeries, window: int) -> np.ndarray:
    """Return the VWAP of the last ``window`` bars' typical prices, on each bar's own basis."""
    typical = (series.high + series.low + series.close) / 3.0 * series.basis
    shares = series.volume / series.basis
    weighted = pd.Series(typical * shares).rolling(window, min_periods=window).sum()
    volume = pd.Series(shares).rolling(window, min_periods=window).sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        vwap = weighted.to_numpy() / volume.to_numpy()
    return np.where(volume.to_numpy() > 0, vwap, np.nan) / series.basis


def vwap_pullback_signals(series: PriceSeries, config: VwapPullbackConfig, seed: int
                          ) -> Signals:
    """VWAP pullback: buying a dip back to VWAP inside an up-trend.

    Signal: at bar t the trend is up (ema_20 above ema_50 and the close above ema_50), the
    close is back within ``within_atr`` x atr_14 of VWAP (0.25 ATR by default) and at t-1 it
    closed more than that above VWAP. VWAP is the session VWAP feature for intraday
    timeframes and the volume-weighted typical price of the last ``vwap_window`` bars (20)
    for daily and weekly ones (``vwap`` overrides). Long only.
    Entry: the close of bar t, at its ts_close.
    Stop: ``stop_atr`` x atr_14 at t below the entry (1.5 ATR by default).
    Target: ``target_r`` R beyond the entry (2R by default).
    Size: the fixed risk budget over the stop distance, rounded down to the lot size.
    Horizon: ``holding_horizon`` bars (10 by default).
    """
    mode = config.vwap
    if mode == "auto":
        mode = "session" if series.timeframe.is_intraday else "rolling"
    vwap = (series.features["vwap_session"] if mode == "session"
            else _rolling_vwap(series, config.vwap_window))
    atr, close = series.features["atr_14"], series.close
    ema_fast, ema_slow = series.features["ema_20"], series.features["ema_50"]
    band = config.within_atr * atr
    trend_up = (ema_fast > ema_slow) & (close > ema_slow)
    near = np.abs(close - vwap) <= band
    was_extended = _previous(close - vwap) > _previous(band)
    stop = close - config.stop_atr * atr
    return Signals.where(trend_up & near & was_extended, 1, stop)


_SPLITMIX_GAMMA = np.uint64(0x9E3779B97F4A7C15)


def _splitmix64(values: np.ndarray) -> np.ndarray:
    z = values + _SPLITMIX_GAMMA
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _draws(key: str, ts_close: np.ndarray, count: int) -> list[np.ndarray]:
    """Return ``count`` independent U[0, 1) draws per bar, fixed by ``key`` and the bar's
    ts_close (a splitmix64 chain: draw k+1 hashes draw k)."""
    salt = np.uint64(int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(),
                                    "little"))
    state = _splitmix64(ts_close.astype(np.uint64) ^ salt)
    scale = 2.0 ** -53
    out = []
    for _ in range(count):
        out.append((state >> np.uint64(11)).astype(np.float64) * scale)
        state = _splitmix64(state)
    return out


def _uniforms(key: str, ts_close: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return two independent U[0, 1) draws per bar, fixed by ``key`` and the bar's ts_close."""
    first, second = _draws(key, ts_close, 2)
    return first, second


def random_entry_signals(series: PriceSeries, config: RandomEntryConfig, seed: int
                         ) -> Signals:
    """Random entries with ATR stops: the baseline every rule should beat.

    Signal: each bar is an entry with probability ``entry_probability`` (5% by default), long
    with probability ``long_probability`` (half), drawn from a hash of (seed, symbol,
    timeframe, ts_close): the same seed gives the same entries whatever the date range, and
    the draw knows nothing of the market. Bars without atr_14 (the warm-up) are skipped.
    Entry: the close of bar t, at its ts_close.
    Stop: ``stop_atr`` x atr_14 at t from the entry (2 ATR by default).
    Target: ``target_r`` R beyond the entry (2R by default).
    Size: the fixed risk budget over the stop distance, rounded down to the lot size.
    Horizon: ``holding_horizon`` bars (20 by default).
    """
    coin, side = _uniforms(f"{seed}|{series.symbol}|{series.timeframe.value}",
                           series.ts_close)
    direction = np.where(side < config.long_probability, 1, -1)
    stop = series.close - direction * config.stop_atr * series.features["atr_14"]
    return Signals.where(coin < config.entry_probability, direction, stop)


def limit_pullback_signals(series: PriceSeries, config: LimitPullbackConfig, seed: int
                           ) -> Signals:
    """Limit pullback: a resting limit order with the trend, away from the market.

    Signal: at bar t the trend is known from ema_20 against ema_50 (above: long, below:
    short) and the bar places an order with probability ``entry_probability`` (3% by
    default), drawn from a hash of (seed, 'limit_pullback', symbol, timeframe, ts_close), as
    the limit's distance is: the same seed gives the same orders whatever the date range.
    Bars without atr_14 or either average (the warm-up) are skipped.
    Entry: a limit order (order_type 'limit'): a long's limit below the close of bar t, a
    short's above it, by a distance drawn uniformly from ``min_distance_atr``-
    ``max_distance_atr`` x atr_14 (0.25-3 ATR), or, with probability ``far_probability``
    (10%), from ``far_min_pct``-``far_max_pct`` percent of the close (3-6%): orders that often
    never trade. It fills only when a later bar trades through it within the outcome rules'
    fill window (``replay.outcomes``), else the outcome is 'not_filled'.
    Stop: ``stop_atr`` x atr_14 at t beyond the limit (1.5 ATR by default).
    Target: ``target_r`` R beyond the limit (2R by default).
    Size: the fixed risk budget over the stop distance, rounded down to the lot size.
    Horizon: ``holding_horizon`` bars from the fill (10 by default).
    """
    coin, spread, far_coin = _draws(
        f"{seed}|limit_pullback|{series.symbol}|{series.timeframe.value}", series.ts_close, 3)
    fast, slow = series.features["ema_20"], series.features["ema_50"]
    atr, close = series.features["atr_14"], series.close
    known = np.isfinite(fast) & np.isfinite(slow) & (fast != slow) & np.isfinite(atr) & (
        atr > 0)
    direction = np.where(fast > slow, 1, -1)
    in_atr = atr * (config.min_distance_atr
                    + spread * (config.max_distance_atr - config.min_distance_atr))
    in_pct = close * (config.far_min_pct
                      + spread * (config.far_max_pct - config.far_min_pct)) / 100.0
    distance = np.where(far_coin < config.far_probability, in_pct, in_atr)
    entry = close - direction * distance
    stop = entry - direction * config.stop_atr * atr
    return Signals.where(known & (coin < config.entry_probability), direction, stop, entry)


register(IntentGenerator("ma_cross", MaCrossConfig, ma_cross_signals))
register(IntentGenerator("prior_high_breakout", PriorHighBreakoutConfig,
                         prior_high_breakout_signals))
register(IntentGenerator("vwap_pullback", VwapPullbackConfig, vwap_pullback_signals))
register(IntentGenerator("random", RandomEntryConfig, random_entry_signals))
register(IntentGenerator("limit_pullback", LimitPullbackConfig, limit_pullback_signals,
                         order_type=OrderType.LIMIT.value))


# ---------------------------------------------------------------------------- tick and lot grid
def _decimals(step: float) -> int:
    return max(0, -math.floor(math.log10(step)) + 2)


def to_tick(prices: np.ndarray, tick: float, direction: str = "nearest") -> np.ndarray:
    """Return ``prices`` on the tick grid: 'nearest', 'down' or 'up'."""
    return tick_grid(prices, tick, up={"nearest": None, "down": False, "up": True}[direction])


def size_to_lot(risk_budget: float, risk_per_unit: np.ndarray, lot: float,
                multiplier: float = 1.0) -> np.ndarray:
    """Return the units ``risk_budget`` buys at ``risk_per_unit`` (price), down to whole lots."""
    with np.errstate(divide="ignore", invalid="ignore"):
        lots = np.floor(np.round(risk_budget / (risk_per_unit * multiplier) / lot, 9))
    return np.round(np.where(np.isfinite(lots), lots, 0.0) * lot, _decimals(lot))


def stable_id(*parts: Any) -> str:
    """Return a stable id: the first 32 hex digits of the BLAKE2b hash of ``parts``."""
    text = "|".join(str(p) for p in parts)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


# ---------------------------------------------------------------------------- generate

def generate_intents(store: Store, generator: str, *, symbols: Sequence[str] | None = None,
                     timeframe: Timeframe | str = Timeframe.D1,
                     start: datetime | str | None = None, end: datetime | str | None = None,
                     seed: int = 0, user_id: str = "replay",
                     risk_per_trade: float = DEFAULT_RISK_PER_TRADE, **params: Any
                     ) -> pd.DataFrame:
    """Return the intents ``generator`` finds in the store's history, as ``INTENT_COLUMNS``.

    ``symbols``: None for every symbol with bars at ``timeframe``. ``start``/``end``: the
    signal bar's ts_close must lie in [start, end] (UTC; history before ``start`` still feeds
    the indicators; nothing closing after ``end`` is read). ``risk_per_trade``: quote
    currency risked per intent. ``seed``: the random baseline's draw (the rules ignore it).
    ``params``: the generator's config fields (see ``GENERATORS[name].doc``). Rows are ordered
    by symbol, then as_of. ``intent_id`` is the BLAKE2b hash of
    'generator|symbol|timeframe|as_of (ISO 8601 UTC, microseconds)|side'.
    """
    if generator not in GENERATORS:
        hint = did_you_mean(generator, GENERATORS)
        raise ConfigError([FieldError("generator", f"is not a known name ({hint})", generator)])
    if not _positive(risk_per_trade):
        raise ConfigError([FieldError("risk_per_trade", "must be a positive amount",
                                      risk_per_trade)])
    rule = GENERATORS[generator]
    config = rule.config(**params)
    timeframe = Timeframe.parse(timeframe)
    if isinstance(symbols, str):
        symbols = [symbols]
    start_ns = None if start is None else _utc(start).value
    end_ts = None if end is None else _utc(end)
    instruments, all_series = _load_series(store, symbols, timeframe, end_ts)
    parts = []
    for series in all_series:
        if series.symbol not in instruments.index:
            raise ValueError(f"symbol: {series.symbol} has bars but no tickers row (tick and "
                             "lot size unknown)")
        signals = rule.signals(series, config, seed)
        if start_ns is not None:
            signals = signals.take(series.ts_close[signals.bar] >= start_ns)
        parts.append(_intent_rows(series, signals, config, instruments.loc[series.symbol],
                                  risk_per_trade))
    return _intent_frame(parts, generator=generator, user_id=user_id, timeframe=timeframe,
                         holding_horizon=config.holding_horizon, order_type=rule.order_type)



def corpus_series(store: Store, symbols: Sequence[str] | None = None) -> pd.DataFrame:
    """Return every (symbol, timeframe) that has bars in the store (``symbols``: only these),
    ordered by timeframe then symbol."""
    return bar_series(store, [symbols] if isinstance(symbols, str) else symbols)


#: The corpus's departures from a generator's defaults, and why. A close above yesterday's
#: high happens on about one session in three: as the corpus's breakout it would be two
#: thirds of the corpus and every one of its warnings would be that one habit's. The 20-day
#: high is the breakout traders name.
CORPUS_PARAMS: Mapping[str, Mapping[str, Any]] = {
    "prior_high_breakout": {"lookback_sessions": 20},
}


def corpus_intents(store: Store, *, symbols: Sequence[str] | None = None, seed: int = 0,
                   user_id: str = "replay",
                   risk_per_trade: float = DEFAULT_RISK_PER_TRADE) -> pd.DataFrame:
    """Return the all-data corpus: every generator of ``GENERATORS`` with its default config
    (but for ``CORPUS_PARAMS``) over every symbol and timeframe that has bars (``symbols``:
    only these), as ``INTENT_COLUMNS``.

    Deterministic: the same store and seed give the same rows in the same order (by
    timeframe, generator, symbol, as_of); ids differ between generators (the generator is
    part of ``intent_id``). On the bundled data it holds about 12,500 intents (about 1,000
    of them ``limit_pullback``'s limit orders, some of which never fill).
    """
    series = corpus_series(store, symbols)
    parts = []
    for timeframe, group in series.groupby("timeframe", sort=True):
        for name in sorted(GENERATORS):
            parts.append(generate_intents(store, name, symbols=group["symbol"].tolist(),
                                          timeframe=str(timeframe), seed=seed,
                                          user_id=user_id, risk_per_trade=risk_per_trade,
                                          **CORPUS_PARAMS.get(name, {})))
    if not parts:
        return _empty_intents()
    frame = pd.concat([p for p in parts if len(p)] or [_empty_intents()], ignore_index=True)
    return frame.loc[:, list(INTENT_COLUMNS)]


def _utc(value: datetime | str | pd.Timestamp) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        raise ValueError(f"start/end: must carry a timezone (got {value!r})")
    return stamp.tz_convert("UTC")


def _column(values: np.ndarray, dtype: Any = np.float64) -> np.ndarray:
    """Return a fetched column as a plain array (NULL as NaN)."""
    if isinstance(values, np.ma.MaskedArray):
        return np.ma.filled(values.astype(dtype), np.nan)
    return np.asarray(values, dtype=dtype)


def _load_series(store: Store, symbols: Sequence[str] | None, timeframe: Timeframe,
                 end: pd.Timestamp | None) -> tuple[pd.DataFrame, list[PriceSeries]]:
    """Return the tickers (by symbol) and each symbol's bars (closed by ``end``) with their
    features, read in one connection as numpy arrays (no per-row Python objects)."""
    read = generator_inputs(store, timeframe.value, symbols,
                            None if end is None else end.to_pydatetime(), _FEATURES)
    instruments, actions, bar_counts = read.instruments, read.splits, read.bar_counts
    bars, feature_counts, features = read.bars, read.feature_counts, read.features
    if symbols is not None:
        missing = sorted(set(symbols) - {s for s, _ in bar_counts})
        if missing:
            raise ValueError(f"symbols: no {timeframe.value} bars for {', '.join(missing)}")
    bar_ts = _column(bars["ts"], np.int64)
    columns = {c: _column(bars[c], np.int64 if c in ("ts_close", "session") else np.float64)
               for c in ("ts_close", "session", "open", "high", "low", "close", "volume")}
    feature_ts = _column(features["ts"], np.int64)
    feature_values = {c: _column(features[c]) for c in _FEATURES}
    result, bar_first, feature_first = [], 0, 0
    feature_starts = {}
    for symbol in sorted(feature_counts):
        feature_starts[symbol] = feature_first
        feature_first += feature_counts[symbol]
    for symbol, count in bar_counts:
        rows = slice(bar_first, bar_first + count)
        bar_first += count
        if not feature_counts.get(symbol):
            raise ValueError(f"{symbol} {timeframe.value}: no ta_features rows; run the "
                             "features job first")
        first = feature_starts[symbol]
        own_ts = feature_ts[first:first + feature_counts[symbol]]
        at = np.searchsorted(own_ts, bar_ts[rows])
        found = at < len(own_ts)
        found[found] = own_ts[at[found]] == bar_ts[rows][found]
        symbol_splits = actions[actions["symbol"] == symbol]
        session = columns["session"][rows]
        result.append(PriceSeries(
            symbol=symbol, timeframe=timeframe, ts_close=columns["ts_close"][rows],
            session=session,
            **{c: columns[c][rows] for c in ("open", "high", "low", "close", "volume")},
            basis=_continuous_basis(session, symbol_splits),
            features={c: np.where(found, values[first:first + feature_counts[symbol]][
                np.minimum(at, len(own_ts) - 1)], np.nan)
                for c, values in feature_values.items()}))
    return instruments.set_index("symbol"), result


def _continuous_basis(session_days: np.ndarray, splits: pd.DataFrame) -> np.ndarray:
    """Return per bar the product of split ratios with first session < ex_date <= session."""
    if len(session_days) == 0 or len(splits) == 0:
        return np.ones(len(session_days))
    ex_days = splits["ex_date"].to_numpy().astype("datetime64[D]").astype(np.int64)
    ratios = splits["ratio"].to_numpy(dtype=np.float64)
    later = ex_days > session_days[0]
    order = np.argsort(ex_days[later], kind="stable")
    ex_sorted = ex_days[later][order]
    prefix = np.r_[1.0, np.cumprod(ratios[later][order])]
    return prefix[np.searchsorted(ex_sorted, session_days, side="right")]


def _intent_rows(series: PriceSeries, signals: Signals, config: Any,
                 instrument: pd.Series, risk_per_trade: float) -> dict[str, np.ndarray]:
    """Return the intents' varying columns as arrays: prices on the grid, sizes on lots."""
    tick = float(instrument["tick_size"])
    lot = float(instrument["lot_size"])
    multiplier = float(instrument["contract_multiplier"])
    direction = signals.direction.astype(np.float64)
    entry = to_tick(series.close[signals.bar] if signals.entry is None else signals.entry,
                    tick)
    long = direction > 0
    stop = np.where(long, to_tick(signals.stop, tick, "down"),
                    to_tick(signals.stop, tick, "up"))
    risk = direction * (entry - stop)
    if config.target_r is None:
        target = np.full(len(entry), np.nan)
    else:
        target = to_tick(entry + direction * config.target_r * risk, tick)
    size = size_to_lot(risk_per_trade, risk, lot, multiplier)
    # a short whose 2R target would lie at or below zero is no valid intent: dropped
    valid = (np.isfinite(entry) & (entry > 0) & (stop > 0) & (risk >= tick / 2)
             & (size > 0) & ~(direction * (target - entry) <= 0) & ~(target <= 0))
    return {"symbol": np.full(int(valid.sum()), series.symbol, dtype=object),
            "side": np.where(long[valid], "long", "short").astype(object),
            "as_of": series.ts_close[signals.bar[valid]], "proposed_entry": entry[valid],
            "proposed_stop": stop[valid], "proposed_target": target[valid],
            "proposed_size": size[valid]}


def _intent_frame(parts: Sequence[Mapping[str, np.ndarray]], *, generator: str, user_id: str,
                  timeframe: Timeframe, holding_horizon: int, order_type: str = "market"
                  ) -> pd.DataFrame:
    if not parts or not sum(len(p["as_of"]) for p in parts):
        return _empty_intents()
    columns = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
    n = len(columns["as_of"])
    as_of_text = np.datetime_as_string(columns["as_of"].astype("datetime64[us]"), unit="us")
    ids = [stable_id(generator, symbol, timeframe.value, f"{stamp}Z", side)
           for symbol, stamp, side in zip(columns["symbol"], as_of_text, columns["side"],
                                          strict=True)]
    frame = pd.DataFrame({
        "intent_id": pd.array(ids, dtype="str"), "user_id": user_id,
        "symbol": pd.array(columns["symbol"], dtype="str"),
        "side": pd.array(columns["side"], dtype="str"), "timeframe": timeframe.value,
        "as_of": pd.to_datetime(columns["as_of"], utc=True).as_unit("us"),
        **{c: columns[c] for c in ("proposed_entry", "proposed_stop", "proposed_target",
                                   "proposed_size")},
        "holding_horizon": np.full(n, holding_horizon, dtype=np.int64),
        "order_type": order_type, "source": f"generator:{generator}",
        "linked_trade_id": pd.Series([None] * n, dtype=object),
    })
    return frame[list(INTENT_COLUMNS)]


def _empty_intents() -> pd.DataFrame:
    return pd.DataFrame({
        "intent_id": pd.Series(dtype="str"), "user_id": pd.Series(dtype="str"),
        "symbol": pd.Series(dtype="str"), "side": pd.Series(dtype="str"),
        "timeframe": pd.Series(dtype="str"),
        "as_of": pd.Series(dtype="datetime64[us, UTC]"),
        "proposed_entry": pd.Series(dtype="float64"),
        "proposed_stop": pd.Series(dtype="float64"),
        "proposed_target": pd.Series(dtype="float64"),
        "proposed_size": pd.Series(dtype="float64"),
        "holding_horizon": pd.Series(dtype="int64"), "order_type": pd.Series(dtype="str"),
        "source": pd.Series(dtype="str"), "linked_trade_id": pd.Series(dtype=object),
    })[list(INTENT_COLUMNS)]


# ---------------------------------------------------------------------------- database
def database_intents(store: Store, user_id: str | None = None, *,
                     default_horizon: int = 20) -> pd.DataFrame:
    """Return the intents in ``trade_intents`` (one user's, or all), as ``INTENT_COLUMNS``.

    Intents without a stop are left out (a replayed outcome is measured in R). A missing
    ``holding_horizon`` becomes ``default_horizon`` bars. ``linked_trade_id`` is the first
    (by open_ts) trade whose ``linked_intent_id`` names the intent.
    """
    frame = replayable_intents(store, user_id)
    if frame.empty:
        return _empty_intents()
    frame["holding_horizon"] = frame["holding_horizon"].fillna(default_horizon).astype(
        np.int64)
    frame["as_of"] = pd.DatetimeIndex(frame["as_of"]).tz_convert("UTC").as_unit("us")
    frame["proposed_target"] = frame["proposed_target"].astype(np.float64)
    frame["source"] = "database"
    frame["linked_trade_id"] = frame["linked_trade_id"].astype(object).where(
        frame["linked_trade_id"].notna(), None)
    return frame[list(INTENT_COLUMNS)].reset_index(drop=True)


def database_trades(store: Store, user_id: str | None = None) -> pd.DataFrame:
    """Return the ``trades`` table (one user's, or all), in ``TRADE_COLUMNS`` order."""
    frame = all_trades(store, user_id)
    return frame[list(TRADE_COLUMNS)]


def load_outcome_inputs(store: Store, intents: pd.DataFrame
                        ) -> tuple[dict[tuple[str, str], pd.DataFrame], pd.DataFrame]:
    """Return what ``label_outcomes`` needs for ``intents``: the bars (as traded) of each
    (symbol, timeframe) closing after its earliest as_of, and the corporate actions of the
    intents' symbols (by symbol and ex_date). Both from whole tables read once per process
    (``buddy.store.bars``): a replay worker labels chunk after chunk without opening the
    file, which the run's writer may hold."""
    if intents.empty:
        return {}, store.corporate_actions()
    firsts = intents.groupby(["symbol", "timeframe"], sort=True)["as_of"].min()
    keys = [(str(s), str(t)) for s, t in firsts.index]
    symbols = sorted({symbol for symbol, _ in keys})
    actions = pd.concat([symbol_actions(store, symbol) for symbol in symbols],
                        ignore_index=True)
    return bars_closing_after(store, keys, list(firsts)), actions


# ---------------------------------------------------------------------------- CSV of trades
class TradesFileError(FieldErrors):
    """A trades file broke validation rules; every problem is listed, nothing was imported."""

    what = "trades file"


_CSV_REQUIRED = ("entry_time", "entry_price", "side", "size", "stop", "symbol", "timeframe")
_CSV_OPTIONAL = ("exit_time", "exit_price", "target", "fees", "holding_horizon")
_SIDE_ALIASES = {"long": "long", "buy": "long", "short": "short", "sell": "short"}


def import_trades_csv(path: str | Path, *, tz: str | None = None, user_id: str = "import",
                      holding_horizon: int = 20) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read a CSV of past trades into (intents as ``INTENT_COLUMNS``, trades as
    ``TRADE_COLUMNS``), each intent linked to its trade and back.

    Columns (names case-insensitive, surrounding spaces ignored): entry_time, entry_price,
    side (long/short, or buy/sell), size (units), stop, symbol, timeframe; optional
    exit_time and exit_price (both empty for a trade still open), target, fees (quote
    currency, subtracted from pnl) and holding_horizon (bars; else ``holding_horizon``).
    Times are ISO 8601; a time without an offset is read in ``tz`` and refused without one.
    The whole file is checked first: a TradesFileError lists every broken rule as
    'row N, column' (N counts data rows from 1; the header is not a row), the rule and the
    value. The intent's as_of is the entry time, so a simulated outcome (for a trade still
    open) walks from the first bar closing after it, a bar that may have traded before the
    entry. pnl assumes a contract multiplier of 1.
    """
    path = Path(path)
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    errors: list[FieldError] = []
    columns = {str(c).strip().lower(): c for c in raw.columns}
    known = (*_CSV_REQUIRED, *_CSV_OPTIONAL)
    for name in columns:
        if name not in known:
            errors.append(FieldError(f"column {name}",
                                     f"is not a known name ({did_you_mean(name, known)})", name))
    for name in _CSV_REQUIRED:
        if name not in columns:
            errors.append(FieldError(f"column {name}", "is required", None))
    if errors:
        raise TradesFileError(errors)
    table = pd.DataFrame({name: raw[original].str.strip() for name, original in columns.items()})
    for name in _CSV_OPTIONAL:
        if name not in table:
            table[name] = ""
    parsed, errors = _parse_trades(table, tz, holding_horizon)
    if errors:
        raise TradesFileError(errors)
    return _trades_frames(parsed, user_id, f"import:{path.name}")


def _parse_trades(table: pd.DataFrame, tz: str | None, default_horizon: int
                  ) -> tuple[pd.DataFrame, list[FieldError]]:
    errors: list[FieldError] = []

    def report(mask: np.ndarray | pd.Series, column: str, rule: str) -> None:
        for position in np.flatnonzero(np.asarray(mask)):
            errors.append(FieldError(f"row {position + 1}, {column}", rule,
                                     table[column].iloc[position]))

    out = pd.DataFrame(index=table.index)
    for name in ("entry_time", "exit_time"):
        out[name], bad, naive = _parse_times(table[name], tz)
        report(bad & (table[name] != ""), name, "must be an ISO 8601 timestamp")
        report(naive, name, "must carry a UTC offset or the file a declared tz")
    report(table["entry_time"] == "", "entry_time", "is required")
    for name in ("entry_price", "exit_price", "stop", "target", "size", "fees",
                 "holding_horizon"):
        out[name] = pd.to_numeric(table[name].where(table[name] != ""), errors="coerce")
        filled = table[name] != ""
        report(filled & ~np.isfinite(out[name].fillna(np.inf)), name, "must be a number")
        required = name in _CSV_REQUIRED
        if required:
            report(~filled, name, "is required")
        usable = np.isfinite(out[name].fillna(np.nan))
        if name in ("entry_price", "exit_price", "stop", "target", "size"):
            report(usable & (out[name] <= 0), name, "must be positive")
        if name == "fees":
            report(usable & (out[name] < 0), name, "must be zero or positive")
        if name == "holding_horizon":
            report(usable & ((out[name] < 1) | (out[name] % 1 != 0)), name,
                   "must be a whole number of bars >= 1")
    side = table["side"].str.lower().map(_SIDE_ALIASES)
    report(side.isna(), "side", "must be one of long, short, buy, sell")
    out["side"] = side
    out["symbol"] = table["symbol"].str.upper()
    report(out["symbol"] == "", "symbol", "is required")
    timeframe = table["timeframe"].str.lower()
    report(~timeframe.isin([t.value for t in Timeframe]), "timeframe",
           "must be one of " + ", ".join(t.value for t in Timeframe))
    out["timeframe"] = timeframe
    has_exit_time = out["exit_time"].notna()
    has_exit_price = out["exit_price"].notna()
    report(has_exit_time & ~has_exit_price & (table["exit_price"] == ""), "exit_price",
           "is required when exit_time is given")
    report(has_exit_price & ~has_exit_time & (table["exit_time"] == ""), "exit_time",
           "is required when exit_price is given")
    report(has_exit_time & out["entry_time"].notna() & (out["exit_time"] < out["entry_time"]),
           "exit_time", "must not be before entry_time")
    sign = side.map({"long": 1.0, "short": -1.0})
    report(sign * (out["entry_price"] - out["stop"]) <= 0, "stop",
           "must be on the losing side of entry_price (below for long, above for short)")
    report(sign * (out["target"] - out["entry_price"]) <= 0, "target",
           "must be on the winning side of entry_price (above for long, below for short)")
    out["holding_horizon"] = out["holding_horizon"].fillna(default_horizon)
    errors.sort(key=lambda e: int(e.field.split(",")[0].removeprefix("row ")))
    return out, errors


def _parse_times(values: pd.Series, tz: str | None
                 ) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """Return (UTC times, unparseable mask, naive-without-tz mask)."""
    stamps: list[pd.Timestamp | None] = []
    bad = np.zeros(len(values), dtype=bool)
    naive = np.zeros(len(values), dtype=bool)
    for position, text in enumerate(values):
        if text == "":
            stamps.append(None)
            continue
        try:
            stamp = pd.Timestamp(text)
        except (ValueError, TypeError):
            stamp = pd.NaT
        if stamp is pd.NaT:
            bad[position] = True
            stamps.append(None)
            continue
        if stamp.tzinfo is None:
            if tz is None:
                naive[position] = True
                stamps.append(None)
                continue
            stamp = stamp.tz_localize(tz)
        stamps.append(stamp.tz_convert("UTC"))
    series = pd.Series(pd.DatetimeIndex([s if s is not None else pd.NaT for s in stamps],
                                        tz="UTC").as_unit("us"), index=values.index)
    return series, bad, naive


def _trades_frames(parsed: pd.DataFrame, user_id: str, source: str
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    content = [stable_id("import", r.symbol, r.timeframe, r.entry_time.isoformat(), r.side,
                         repr(float(r.entry_price)), repr(float(r.size)))
               for r in parsed.itertuples()]
    occurrence = pd.Series(content).groupby(content).cumcount().to_numpy()
    intent_ids = [c if k == 0 else stable_id(c, k) for c, k in zip(content, occurrence,
                                                                   strict=True)]
    trade_ids = [stable_id("trade", i) for i in intent_ids]
    sign = parsed["side"].map({"long": 1.0, "short": -1.0}).to_numpy()
    entry = parsed["entry_price"].to_numpy()
    move = sign * (parsed["exit_price"].to_numpy() - entry)
    fees = parsed["fees"].to_numpy()
    pnl = move * parsed["size"].to_numpy() - np.nan_to_num(fees)
    pnl_r = move / np.abs(entry - parsed["stop"].to_numpy())
    label = np.where(np.isnan(pnl_r), "open",
                     np.where(pnl_r > 0, "win", np.where(pnl_r < 0, "loss", "breakeven")))
    intents = pd.DataFrame({
        "intent_id": intent_ids, "user_id": user_id, "symbol": parsed["symbol"].to_numpy(),
        "side": parsed["side"].to_numpy(), "timeframe": parsed["timeframe"].to_numpy(),
        "as_of": parsed["entry_time"].to_numpy(), "proposed_entry": entry,
        "proposed_stop": parsed["stop"].to_numpy(),
        "proposed_target": parsed["target"].to_numpy(dtype=np.float64),
        "proposed_size": parsed["size"].to_numpy(),
        "holding_horizon": parsed["holding_horizon"].to_numpy().astype(np.int64),
        "order_type": "market", "source": source, "linked_trade_id": trade_ids,
    })
    intents["as_of"] = pd.DatetimeIndex(parsed["entry_time"]).as_unit("us")
    intents["linked_trade_id"] = intents["linked_trade_id"].astype(object)
    trades = pd.DataFrame({
        "trade_id": trade_ids, "user_id": user_id, "symbol": intents["symbol"],
        "side": intents["side"], "open_ts": pd.DatetimeIndex(parsed["entry_time"]),
        "close_ts": pd.DatetimeIndex(parsed["exit_time"]), "avg_entry": entry,
        "avg_exit": parsed["exit_price"].to_numpy(dtype=np.float64),
        "qty": parsed["size"].to_numpy(), "pnl": pnl, "pnl_r": pnl_r, "fees": fees,
        "slippage_est": np.nan, "outcome_label": label, "tags_json": None,
        "linked_intent_id": intent_ids,
    })
    trades["tags_json"] = trades["tags_json"].astype(object)
    return intents[list(INTENT_COLUMNS)], trades[list(TRADE_COLUMNS)]
