"""Synthetic universes with known regimes, for tests and for checking regime detectors.

Each symbol follows two independent Markov chains with long stays: a trend regime
('trend_up', 'trend_down', 'range') and a volatility regime ('calm', 'volatile'). When a regime
ends, the next one is drawn uniformly from the other states; stays are geometric with means
``MEAN_TREND_STAY_BARS`` and ``MEAN_VOL_STAY_BARS``. Returns follow a one-factor-per-sector model
(``SECTORS``, symbols assigned round-robin): each symbol loads on its sector's factor with a
loading drawn from ``SECTOR_LOADING_RANGE``, so symbols of a sector move together. Daily return
volatility is ``DAILY_VOL`` by vol regime (0.8% calm, 2.5% volatile: far enough apart for a
2-3 state Gaussian HMM on returns and rolling volatility to tell them apart) and drift is
``DAILY_DRIFT`` by trend regime; intraday bars scale both to their share of the session.

Bars: open is the previous close plus a small gap, high and low lie beyond open and close, and
volume is about ``VOLATILE_VOLUME_MULTIPLIER`` times higher in the volatile regime. Prices are
rounded to the 0.01 tick. Everything is drawn in whole arrays from one numpy Generator, so the
same seed gives the same universe.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from buddy.data.calendars import FX_CALENDAR_NAME, TradingCalendar, get_calendar
from buddy.data.frames import BARS_COLUMNS, TICKERS_COLUMNS
from buddy.timeframes import Timeframe

__all__ = [
    "DAILY_DRIFT",
    "DAILY_VOL",
    "MEAN_TREND_STAY_BARS",
    "MEAN_VOL_STAY_BARS",
    "SECTORS",
    "SYNTH_END",
    "TREND_REGIMES",
    "VOL_REGIMES",
    "SynthUniverse",
    "synth_universe",
]

TREND_REGIMES: tuple[str, ...] = ("trend_up", "trend_down", "range")
VOL_REGIMES: tuple[str, ...] = ("calm", "volatile")
SECTORS: tuple[str, ...] = ("Technology", "Financials", "Energy", "Health Care", "Utilities")
SYNTH_END = pd.Timestamp("2024-12-31")  # last calendar day of every universe (fixed for replay)

DAILY_VOL: dict[str, float] = {"calm": 0.008, "volatile": 0.025}  # std of daily log return
DAILY_DRIFT: dict[str, float] = {"trend_up": 0.0015, "trend_down": -0.0015, "range": 0.0}
MEAN_TREND_STAY_BARS = 60.0  # bars
MEAN_VOL_STAY_BARS = 50.0  # bars
SECTOR_LOADING_RANGE = (0.4, 0.75)  # loading on the sector factor (correlation ~ loading^2)
OPEN_GAP_VOL_FRACTION = 0.25  # std of the open gap as a fraction of the bar's return std
WICK_VOL_FRACTION = 0.5  # std of the wick beyond open/close as a fraction of the return std
VOLATILE_VOLUME_MULTIPLIER = 2.2
START_PRICE_RANGE = (20.0, 300.0)  # USD
MEDIAN_DAILY_VOLUME = 1_000_000.0  # shares
TICK_SIZE = 0.01


@dataclass(frozen=True, slots=True, kw_only=True)
class SynthUniverse:
    """Synthetic tickers and bars (canonical frames) and the regimes that generated them."""

    tickers: pd.DataFrame
    bars: pd.DataFrame
    true_regimes: pd.DataFrame


def _bar_grid(calendar: TradingCalendar, timeframe: Timeframe, years: float
              ) -> tuple[pd.DatetimeIndex, pd.DatetimeIndex, pd.DatetimeIndex, np.ndarray]:
    """Return ts, ts_close, session per bar and each bar's share of its session's length."""
    start = SYNTH_END - pd.Timedelta(days=round(years * 365.25))
    sessions = calendar.sessions(start, SYNTH_END)
    schedule = calendar.session_open_close(sessions)
    opens = pd.DatetimeIndex(schedule["open"]).as_unit("us")
    closes = pd.DatetimeIndex(schedule["close"]).as_unit("us")
    if not timeframe.is_intraday:
        return opens, closes, sessions, np.ones(len(sessions))
    step = timeframe.nominal.value // 1000
    open_us, close_us = opens.asi8, closes.asi8
    per_session = -(-(close_us - open_us) // step)
    offsets = np.arange(per_session.sum()) - np.repeat(np.cumsum(per_session) - per_session,
                                                       per_session)
    bar_open = np.repeat(open_us, per_session) + offsets * step
    session_close = np.repeat(close_us, per_session)
    bar_close = np.minimum(bar_open + step, session_close)
    share = (bar_close - bar_open) / np.repeat(close_us - open_us, per_session)
    return (pd.to_datetime(bar_open, unit="us", utc=True),
            pd.to_datetime(bar_close, unit="us", utc=True),
            sessions[np.repeat(np.arange(len(sessions)), per_session)], share)


def _markov_regimes(rng: np.random.Generator, n_symbols: int, n_bars: int, n_states: int,
                    mean_stay: float) -> np.ndarray:
    """Return (n_symbols, n_bars) state codes of jump chains with geometric stays."""
    stays = int(np.ceil(2 * n_bars / mean_stay)) + 8
    durations = rng.geometric(1.0 / mean_stay, size=(n_symbols, stays))
    while (durations.sum(axis=1) < n_bars).any():
        durations = np.concatenate(
            [durations, rng.geometric(1.0 / mean_stay, size=(n_symbols, stays))], axis=1)
    stays = durations.shape[1]
    ends = np.cumsum(durations, axis=1)
    first = rng.integers(0, n_states, size=(n_symbols, 1))
    moves = rng.integers(1, n_states, size=(n_symbols, stays - 1))
    states = np.concatenate([first, moves], axis=1).cumsum(axis=1) % n_states
    row_offset = (np.arange(n_symbols, dtype=np.int64) * (int(ends.max()) + 1))[:, None]
    flat = np.searchsorted((ends + row_offset).ravel(),
                           (np.arange(n_bars)[None, :] + row_offset).ravel(), side="right")
    stay_index = flat.reshape(n_symbols, n_bars) - np.arange(n_symbols)[:, None] * stays
    return np.take_along_axis(states, stay_index, axis=1).astype(np.int8)


def _labels(names: pd.Series, codes: np.ndarray) -> pd.Series:
    return names.take(codes).reset_index(drop=True)


def _tickers(n_symbols: int, calendar: TradingCalendar, source: str) -> pd.DataFrame:
    numbers = np.arange(1, n_symbols + 1)
    return pd.DataFrame({
        "symbol": pd.Series([f"SYN{i:04d}" for i in numbers], dtype="str"),
        "name": pd.Series([f"Synthetic {i:04d}" for i in numbers], dtype="str"),
        "asset_class": "synthetic",
        "exchange": "SYNTH",
        "currency": "USD",
        "sector": pd.Series([SECTORS[i % len(SECTORS)] for i in range(n_symbols)], dtype="str"),
        "tick_size": TICK_SIZE,
        "lot_size": 1.0,
        "contract_multiplier": 1.0,
        "trading_calendar": calendar.name,
        "benchmark": pd.Series([None] * n_symbols, dtype="str"),
        "timezone": calendar.tz,
        "source": source,
        "licence": "generated data, no restrictions",
    })[list(TICKERS_COLUMNS)]


def synth_universe(n_symbols: int, years: float, timeframe: Timeframe | str, seed: int, *,
                   calendar: str | None = None) -> SynthUniverse:
    """Return a synthetic universe of ``n_symbols`` over ``years`` ending at ``SYNTH_END``.

    Daily bars use the XNYS calendar and intraday bars the FX24x5 calendar unless ``calendar``
    names another ('XNYS' gives intraday bars in exchange hours, the last one of a session cut
    at the close). Weekly bars are not generated: resample daily ones. Same arguments, same
    universe.
    """
    frame = Timeframe.parse(timeframe)
    if frame is Timeframe.W1:
        raise ValueError("timeframe: '1w' is not generated; generate '1d' and resample "
                         "(got '1w')")
    if n_symbols < 1:
        raise ValueError(f"n_symbols: must be at least 1 (got {n_symbols})")
    if not years > 0:
        raise ValueError(f"years: must be above 0 (got {years})")
    trading_calendar = get_calendar(calendar or (FX_CALENDAR_NAME if frame.is_intraday
                                                 else "XNYS"))
    ts, ts_close, session, share = _bar_grid(trading_calendar, frame, years)
    n_bars = len(ts)
    if n_bars == 0:
        raise ValueError(f"years: no {trading_calendar.name} session in {years} years "
                         f"before {SYNTH_END.date()}")
    rng = np.random.default_rng(seed)
    trend = _markov_regimes(rng, n_symbols, n_bars, len(TREND_REGIMES), MEAN_TREND_STAY_BARS)
    vol = _markov_regimes(rng, n_symbols, n_bars, len(VOL_REGIMES), MEAN_VOL_STAY_BARS)
    sector = np.arange(n_symbols) % len(SECTORS)
    loading = rng.uniform(*SECTOR_LOADING_RANGE, size=n_symbols)[:, None]
    factors = rng.standard_normal((len(SECTORS), n_bars))
    shock = loading * factors[sector] + np.sqrt(1.0 - loading**2) * rng.standard_normal(
        (n_symbols, n_bars))
    sigma = np.array([DAILY_VOL[v] for v in VOL_REGIMES])[vol] * np.sqrt(share)[None, :]
    drift = np.array([DAILY_DRIFT[t] for t in TREND_REGIMES])[trend] * share[None, :]
    log_close = (np.log(rng.uniform(*START_PRICE_RANGE, size=n_symbols))[:, None]
                 + np.cumsum(drift + sigma * shock, axis=1))
    previous = np.concatenate([log_close[:, :1] - drift[:, :1] - sigma[:, :1] * shock[:, :1],
                               log_close[:, :-1]], axis=1)
    log_open = previous + OPEN_GAP_VOL_FRACTION * sigma * rng.standard_normal(
        (n_symbols, n_bars))
    wick = WICK_VOL_FRACTION * sigma
    log_high = np.maximum(log_open, log_close) + np.abs(
        rng.standard_normal((n_symbols, n_bars))) * wick
    log_low = np.minimum(log_open, log_close) - np.abs(
        rng.standard_normal((n_symbols, n_bars))) * wick

    def to_price(log_price: np.ndarray) -> np.ndarray:
        return np.maximum(np.round(np.exp(log_price) / TICK_SIZE) * TICK_SIZE, TICK_SIZE)

    open_, close = to_price(log_open), to_price(log_close)
    high = np.maximum(to_price(log_high), np.maximum(open_, close))
    low = np.minimum(to_price(log_low), np.minimum(open_, close))
    base_volume = MEDIAN_DAILY_VOLUME * rng.lognormal(0.0, 0.5, size=(n_symbols, 1))
    volume = np.round(base_volume * np.where(vol == 1, VOLATILE_VOLUME_MULTIPLIER, 1.0)
                      * rng.lognormal(0.0, 0.25, size=(n_symbols, n_bars)) * share[None, :])

    source = (f"buddy.data.synth.synth_universe(n_symbols={n_symbols}, years={years}, "
              f"timeframe='{frame.value}', seed={seed}, calendar='{trading_calendar.name}')")
    tickers = _tickers(n_symbols, trading_calendar, source)
    symbols = _labels(tickers["symbol"], np.repeat(np.arange(n_symbols), n_bars))
    labels = _labels(pd.Series([frame.value], dtype="str"), np.zeros(n_symbols * n_bars, int))
    bar_ts = pd.DatetimeIndex(np.tile(ts.asi8, n_symbols).view("datetime64[us]"),
                              tz=None).tz_localize("UTC")
    bars = pd.DataFrame({
        "symbol": symbols,
        "timeframe": labels,
        "ts": bar_ts,
        "ts_close": pd.DatetimeIndex(np.tile(ts_close.as_unit("us").asi8, n_symbols)
                                     .view("datetime64[us]")).tz_localize("UTC"),
        "session": pd.DatetimeIndex(np.tile(session.as_unit("s").asi8, n_symbols)
                                    .view("datetime64[s]")),
        "open": open_.ravel(),
        "high": high.ravel(),
        "low": low.ravel(),
        "close": close.ravel(),
        "volume": volume.ravel(),
        "adj_close": np.full(n_symbols * n_bars, np.nan),
    })[list(BARS_COLUMNS)]
    true_regimes = pd.DataFrame({
        "symbol": symbols,
        "timeframe": labels,
        "ts": bar_ts,
        "trend_regime": _labels(pd.Series(TREND_REGIMES, dtype="str"), trend.ravel()),
        "vol_regime": _labels(pd.Series(VOL_REGIMES, dtype="str"), vol.ravel()),
    })
    return SynthUniverse(tickers=tickers, bars=bars, true_regimes=true_regimes)
