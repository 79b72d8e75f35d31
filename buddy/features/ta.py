"""Technical features for one symbol and timeframe, point-in-time and split-aware.

``compute_features`` turns a canonical bars frame (see ``buddy.data.frames``) into one row of
indicator values per bar. Every value at bar t uses only bars up to t and splits with
``ex_date`` on or before t's session, so a replay that recomputes on ``bars[bars.ts <= t]``
gets the same numbers (``tests/features/test_point_in_time.py`` proves it on real data).

Split handling
    Bars are as traded, so a 2:1 split shows as a -50% close-to-close move. The indicators are
    therefore computed on a continuous series: each bar's prices are multiplied (and its volume
    divided) by the product of the ratios of the splits with ``ex_date`` after the first bar's
    session and on or before the bar's own session, which puts the whole series on the first
    bar's basis. Price-level features (``PRICE_LEVEL_FEATURES``) are then divided by that same
    product, back to each bar's own as-traded basis. So at the last bar before a 2:1 split
    ``atr_14`` is in pre-split dollars, at the first bar after it in post-split dollars, and
    neither ``ret_1`` nor the ATR shows a -50% artefact.

    This is exact because every indicator here is either linear-homogeneous in price (SMA,
    EMA, ATR, Bollinger bands, MACD, VWAP: scaling all inputs by k scales the output by k) or
    scale-free (RSI, ADX/DI, returns, realised volatility, NATR, %b, band width, range/ATR,
    relative volume). Homogeneity also makes the choice of basis irrelevant to the result; the
    first bar's basis (rather than the last bar's) is used because it depends only on splits
    already in effect at each bar, so a truncated history is scaled exactly like the prefix of
    the full one and point-in-time recomputation is bit-for-bit stable.

Libraries
    TA-Lib (C, float64 arrays, default compatibility mode and unstable periods) computes ATR,
    NATR, RSI, SMA, EMA, ADX, +DI, -DI, Bollinger bands and MACD, with TA-Lib's own seeding
    (Wilder averages start from a simple mean; EMA from the SMA of the first ``period`` bars;
    MACD's fast EMA is seeded so that it starts with the slow one). pandas-ta-classic computes
    the session-anchored VWAP and the realised volatility (``hvol``), called as plain functions,
    never through the ``df.ta`` accessor and its multiprocessing pool. Relative volume and
    log returns are a line of numpy/pandas each.

Units
    Price-level features are in the bar's own quote currency (as traded). ``natr_14`` is a
    percent of close; ``bb_width_20_2`` and ``bb_pctb_20_2`` are fractions; returns are log
    returns; ``rv_20`` is the sample standard deviation (ddof=1) of the last 20 log returns
    times the square root of ``BARS_PER_YEAR``, an annualised fraction (0.20 = 20 % a year).
    ``FEATURE_UNITS`` lists every column.

Inputs
    Prices must be finite: TA-Lib carries a NaN into every later value of an EMA or Wilder
    average. Zero volume is allowed (VWAP and relative volume are then NaN, never infinite).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from types import MappingProxyType

import numpy as np
import pandas as pd
import talib

from buddy.timeframes import Timeframe

with warnings.catch_warnings():
    # pandas-ta-classic 0.8.32 reads Timestamp.dayofyear while importing (a Pandas4Warning),
    # which would make ``import buddy.features.ta`` fail under ``-W error``.
    warnings.simplefilter("ignore", pd.errors.Pandas4Warning)
    from pandas_ta_classic import hvol, vwap

FEATURE_SET_VERSION: str = "1.0.0"

FEATURE_COLUMNS: tuple[str, ...] = (
    "atr_14",
    "natr_14",
    "rsi_14",
    "sma_20",
    "sma_50",
    "sma_200",
    "ema_20",
    "ema_50",
    "ema_200",
    "adx_14",
    "plus_di_14",
    "minus_di_14",
    "bb_upper_20_2",
    "bb_middle_20_2",
    "bb_lower_20_2",
    "bb_width_20_2",
    "bb_pctb_20_2",
    "macd_12_26_9",
    "macd_signal_12_26_9",
    "macd_hist_12_26_9",
    "vwap_session",
    "relvol_20",
    "rv_20",
    "ret_1",
    "ret_5",
    "ret_20",
    "range_atr",
)

PRICE_LEVEL_FEATURES: tuple[str, ...] = (
    "atr_14",
    "sma_20",
    "sma_50",
    "sma_200",
    "ema_20",
    "ema_50",
    "ema_200",
    "bb_upper_20_2",
    "bb_middle_20_2",
    "bb_lower_20_2",
    "macd_12_26_9",
    "macd_signal_12_26_9",
    "macd_hist_12_26_9",
    "vwap_session",
)

FEATURE_UNITS: Mapping[str, str] = MappingProxyType(
    {
        **{name: "price (as traded at the bar)" for name in PRICE_LEVEL_FEATURES},
        "natr_14": "percent of close",
        "rsi_14": "0-100",
        "adx_14": "0-100",
        "plus_di_14": "0-100",
        "minus_di_14": "0-100",
        "bb_width_20_2": "fraction of the middle band ((upper - lower) / middle)",
        "bb_pctb_20_2": "fraction of the band ((close - lower) / (upper - lower))",
        "relvol_20": "ratio to the mean volume of the previous 20 bars",
        "rv_20": "annualised fraction (sample std of 20 log returns x sqrt(bars per year))",
        "ret_1": "log return over 1 bar",
        "ret_5": "log return over 5 bars",
        "ret_20": "log return over 20 bars",
        "range_atr": "multiples of atr_14 (high - low over atr_14)",
    }
)

# Bars per year used to annualise rv_20. Daily and weekly bars follow the equity convention
# (252 sessions, 52 weeks). Intraday bars assume a market open around the clock five days a
# week (FX: 260 days x 24 h), the only intraday data we have; for exchange-hours intraday bars
# pass ``bars_per_year`` explicitly (US equities at 1h: 252 x 6.5 = 1638).
BARS_PER_YEAR: Mapping[Timeframe, float] = MappingProxyType(
    {
        Timeframe.M1: 260.0 * 24 * 60,
        Timeframe.M5: 260.0 * 24 * 12,
        Timeframe.M15: 260.0 * 24 * 4,
        Timeframe.M30: 260.0 * 24 * 2,
        Timeframe.H1: 260.0 * 24,
        Timeframe.H4: 260.0 * 6,
        Timeframe.D1: 252.0,
        Timeframe.W1: 52.0,
    }
)

_RV_LENGTH = 20
_RELVOL_LENGTH = 20


def compute_features(
    bars: pd.DataFrame,
    splits: pd.DataFrame | None = None,
    *,
    bars_per_year: float | None = None,
) -> pd.DataFrame:
    """Return technical features for one symbol and timeframe, one row per bar.

    ``bars`` holds canonical bar columns (at least symbol, timeframe, ts, session, high, low,
    close, volume; prices as traded) for a single symbol and timeframe, strictly increasing in
    ``ts``. ``splits`` holds corporate actions (symbol, ex_date, ratio = new shares per old,
    optionally action); rows for other symbols or other actions are ignored, and only splits
    in effect at a bar influence that bar's row. ``bars_per_year`` overrides the annualisation
    of ``rv_20`` (default ``BARS_PER_YEAR[timeframe]``).

    The result has columns symbol, timeframe, ts, then ``FEATURE_COLUMNS`` as float64 (NaN
    during each indicator's warm-up and wherever a ratio is undefined), on the index of
    ``bars``. Units are listed in ``FEATURE_UNITS``.
    """
    symbol, timeframe = _single_series_identity(bars)
    if bars_per_year is None:
        bars_per_year = BARS_PER_YEAR[timeframe] if timeframe is not None else np.nan
    elif not (np.isfinite(bars_per_year) and bars_per_year > 0):
        raise ValueError(f"bars_per_year: must be a positive number (got {bars_per_year!r})")

    if len(bars) == 0:
        return _assemble(bars, {name: np.empty(0) for name in FEATURE_COLUMNS})
    if not bars["ts"].is_monotonic_increasing or not bars["ts"].is_unique:
        raise ValueError("bars: ts must be strictly increasing (sort and de-duplicate first)")

    sessions = _as_days(bars["session"])
    basis = _split_factor(sessions, symbol, splits)
    high = _float_array(bars["high"]) * basis
    low = _float_array(bars["low"]) * basis
    close = _float_array(bars["close"]) * basis
    volume = _float_array(bars["volume"]) / basis

    features = _continuous_features(high, low, close, volume, sessions, bars_per_year)
    for name in PRICE_LEVEL_FEATURES:
        features[name] = features[name] / basis
    return _assemble(bars, features)


def _assemble(bars: pd.DataFrame, features: dict[str, np.ndarray]) -> pd.DataFrame:
    # One 2-D float block (column-major, as pandas stores it): inserting 27 columns one by one
    # costs more than computing the indicators.
    block = pd.DataFrame(
        np.vstack([features[name] for name in FEATURE_COLUMNS]).astype("float64").T,
        columns=list(FEATURE_COLUMNS),
        index=bars.index,
    )
    return pd.concat([bars[["symbol", "timeframe", "ts"]], block], axis=1)


def _continuous_features(
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
    sessions: np.ndarray,
    bars_per_year: float,
) -> dict[str, np.ndarray]:
    f: dict[str, np.ndarray] = {}
    f["atr_14"] = talib.ATR(high, low, close, timeperiod=14)
    f["natr_14"] = talib.NATR(high, low, close, timeperiod=14)
    f["rsi_14"] = talib.RSI(close, timeperiod=14)
    for period in (20, 50, 200):
        f[f"sma_{period}"] = talib.SMA(close, timeperiod=period)
        f[f"ema_{period}"] = talib.EMA(close, timeperiod=period)
    f["adx_14"] = talib.ADX(high, low, close, timeperiod=14)
    f["plus_di_14"] = talib.PLUS_DI(high, low, close, timeperiod=14)
    f["minus_di_14"] = talib.MINUS_DI(high, low, close, timeperiod=14)

    # TA-Lib's band uses the population standard deviation (ddof=0) of the last 20 closes.
    upper, middle, lower = talib.BBANDS(close, timeperiod=20, nbdevup=2.0, nbdevdn=2.0,
                                        matype=talib.MA_Type.SMA)
    f["bb_upper_20_2"], f["bb_middle_20_2"], f["bb_lower_20_2"] = upper, middle, lower
    with np.errstate(divide="ignore", invalid="ignore"):
        f["bb_width_20_2"] = _finite_or_nan((upper - lower) / middle)
        f["bb_pctb_20_2"] = _finite_or_nan((close - lower) / (upper - lower))

    macd, signal, hist = talib.MACD(close, fastperiod=12, slowperiod=26, signalperiod=9)
    f["macd_12_26_9"], f["macd_signal_12_26_9"], f["macd_hist_12_26_9"] = macd, signal, hist

    f["vwap_session"] = _session_vwap(high, low, close, volume, sessions)
    f["relvol_20"] = _relative_volume(volume, _RELVOL_LENGTH)
    f["rv_20"] = _realised_volatility(close, _RV_LENGTH, bars_per_year)
    for horizon in (1, 5, 20):
        f[f"ret_{horizon}"] = _log_return(close, horizon)
    with np.errstate(divide="ignore", invalid="ignore"):
        f["range_atr"] = _finite_or_nan((high - low) / f["atr_14"])
    return f


def _session_vwap(
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
    sessions: np.ndarray,
) -> np.ndarray:
    if len(close) < 2:
        # pandas-ta-classic logs an "index not ordered" warning for a one-row index; the answer
        # is just the typical price (NaN without volume).
        with np.errstate(divide="ignore", invalid="ignore"):
            return (high + low + close) / 3.0 * volume / volume
    # Anchoring on a daily period of the session dates makes each session its own VWAP window
    # (for daily bars each bar is its own session). A session without volume so far is 0/0.
    index = pd.DatetimeIndex(sessions.astype("datetime64[ns]"))
    result = vwap(
        high=pd.Series(high, index=index),
        low=pd.Series(low, index=index),
        close=pd.Series(close, index=index),
        volume=pd.Series(volume, index=index),
        anchor="D",
    )
    with np.errstate(invalid="ignore"):
        return _finite_or_nan(result.to_numpy(dtype="float64"))


def _relative_volume(volume: np.ndarray, length: int) -> np.ndarray:
    prior_mean = pd.Series(volume).rolling(length, min_periods=length).mean().shift(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _finite_or_nan(volume / prior_mean.to_numpy(dtype="float64"))


def _realised_volatility(close: np.ndarray, length: int, bars_per_year: float) -> np.ndarray:
    # hvol returns None (and logs) for fewer than length + 1 closes; that is all warm-up.
    if len(close) < length + 1 or not np.isfinite(bars_per_year):
        return np.full(len(close), np.nan)
    percent = hvol(pd.Series(close), length=length, annualization=bars_per_year)
    return percent.to_numpy(dtype="float64") / 100.0


def _log_return(close: np.ndarray, horizon: int) -> np.ndarray:
    result = np.full(len(close), np.nan)
    if len(close) > horizon:
        with np.errstate(divide="ignore", invalid="ignore"):
            result[horizon:] = np.log(close[horizon:] / close[:-horizon])
    return _finite_or_nan(result)


def _split_factor(sessions: np.ndarray, symbol: str, splits: pd.DataFrame | None) -> np.ndarray:
    factor = np.ones(len(sessions))
    if splits is None or len(splits) == 0:
        return factor
    # Plain numpy masks: boolean-indexing a (tiny) frame costs more than everything else here.
    mine = splits["symbol"].to_numpy(dtype=object) == symbol
    if "action" in splits.columns:
        mine &= splits["action"].to_numpy(dtype=object) == "split"
    if not mine.any():
        return factor
    ratios = splits["ratio"].to_numpy(dtype="float64")[mine]
    if not np.all(np.isfinite(ratios) & (ratios > 0)):
        raise ValueError(f"splits.ratio: must be positive and finite (got {ratios.tolist()})")
    ex_dates = _as_days(splits["ex_date"])[mine]
    order = np.argsort(ex_dates, kind="stable")
    ex_dates, ratios = ex_dates[order], ratios[order]
    # Splits on or before the first bar's session define that basis and change nothing.
    after_first = ex_dates > sessions[0]
    ex_dates, ratios = ex_dates[after_first], ratios[after_first]
    cumulative = np.concatenate(([1.0], np.cumprod(ratios)))
    return cumulative[np.searchsorted(ex_dates, sessions, side="right")]


def _single_series_identity(bars: pd.DataFrame) -> tuple[str, Timeframe | None]:
    missing = [
        c
        for c in ("symbol", "timeframe", "ts", "session", "high", "low", "close", "volume")
        if c not in bars.columns
    ]
    if missing:
        raise ValueError(f"bars: missing columns {missing}")
    symbols = pd.unique(bars["symbol"])
    timeframes = pd.unique(bars["timeframe"])
    if len(symbols) > 1 or len(timeframes) > 1:
        raise ValueError(
            "bars: must hold one symbol and one timeframe "
            f"(got symbols {list(symbols)}, timeframes {list(timeframes)})"
        )
    if len(symbols) == 0:
        return "", None
    return str(symbols[0]), Timeframe.parse(timeframes[0])


def _as_days(values: pd.Series) -> np.ndarray:
    if isinstance(values.dtype, np.dtype) and values.dtype.kind == "M":  # naive datetime64
        return values.to_numpy().astype("datetime64[D]")
    stamps = pd.to_datetime(values)
    if isinstance(stamps.dtype, pd.DatetimeTZDtype):
        stamps = stamps.dt.tz_localize(None)
    return stamps.to_numpy(dtype="datetime64[ns]").astype("datetime64[D]")


def _float_array(values: pd.Series) -> np.ndarray:
    return np.ascontiguousarray(values.to_numpy(dtype="float64", na_value=np.nan))


def _finite_or_nan(values: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(values), values, np.nan)
