"""Rule-based regime labels: trend, volatility and liquidity from features, named thresholds.

Pure and vectorised over one series. Every value at bar t uses bars up to t only: trailing
windows end at t, and prices are on a continuous basis that applies at each bar only the
splits in effect at that bar (``split_basis``), exactly as ``buddy.features.ta`` does.

- trend: ``trend_strength`` is ADX(14); the EMA(20) slope is its change over
  ``ema_slope_bars`` bars per bar, in ATR(14) units. 'up' when ADX >= ``adx_trend_min`` and
  the slope >= ``ema_slope_min_atr``, 'down' for the mirror image, else 'range'.
- volatility: ``vol_z`` is the z-score of log rv_20 against its trailing ``vol_z_window``
  bars (the current bar included); 'calm' at or below ``calm_vol_z``, 'volatile' at or above
  ``volatile_vol_z``, else 'normal'. ``vol_expansion_flag``: the standard deviation of the
  last ``expansion_short_bars`` log returns is at least ``expansion_ratio`` times that of the
  last 20.
- liquidity: ``spread_proxy`` is the mean Corwin-Schultz (2012) two-bar spread estimate over
  the last ``spread_window`` bar pairs (fraction of price); 'thin' when relative volume is at
  or below ``thin_relvol`` or the spread proxy is at least ``thin_spread_ratio`` times its
  trailing median over ``spread_baseline_window`` bars, 'heavy' when relative volume is at or
  above ``heavy_relvol``, else 'normal'.

A state is None where its inputs are still warming up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

from buddy.config import ModuleConfig, param
from buddy.features.spread import corwin_schultz_pairs

RV_BARS = 20  # the window of rv_20, also the long window of the expansion ratio


@dataclass(frozen=True, slots=True, kw_only=True)
class RegimeRulesConfig(ModuleConfig):
    """Thresholds of the rule-based trend, volatility and liquidity labels."""

    config_name: ClassVar[str] = "regime_rules"

    adx_trend_min: float = param(20.0, lo=0.0, hi=100.0, unit="ADX points",
                                 doc="ADX(14) at or above which a sloped EMA counts as a trend")
    ema_slope_bars: int = param(5, lo=1, hi=200, unit="bars",
                                doc="bars over which the EMA(20) slope is measured")
    ema_slope_min_atr: float = param(0.05, lo=0.0, hi=10.0, unit="ATR per bar",
                                     doc="smallest EMA(20) slope that counts as up or down")
    vol_z_window: int = param(250, lo=10, hi=100_000, unit="bars",
                              doc="trailing window of log rv_20 behind vol_z")
    vol_z_min_bars: int = param(60, lo=5, hi=100_000, unit="bars",
                                doc="rv_20 values needed before vol_z is defined")
    calm_vol_z: float = param(-1.0, lo=-10.0, hi=0.0, unit="z",
                              doc="vol_z at or below which volatility is 'calm'")
    volatile_vol_z: float = param(1.0, lo=0.0, hi=10.0, unit="z",
                                  doc="vol_z at or above which volatility is 'volatile'")
    expansion_short_bars: int = param(5, lo=2, hi=19, unit="bars",
                                      doc="short window of the volatility expansion ratio")
    expansion_ratio: float = param(1.5, lo=1.0, hi=10.0, unit="ratio",
                                   doc="short over 20-bar return volatility that flags "
                                       "an expansion")
    thin_relvol: float = param(0.5, lo=0.0, hi=1.0, unit="ratio",
                               doc="relative volume at or below which liquidity is 'thin'")
    heavy_relvol: float = param(2.0, lo=1.0, hi=100.0, unit="ratio",
                                doc="relative volume at or above which liquidity is 'heavy'")
    spread_window: int = param(20, lo=1, hi=1000, unit="bar pairs",
                               doc="bar pairs averaged into the spread proxy")
    spread_baseline_window: int = param(250, lo=10, hi=100_000, unit="bars",
                                        doc="trailing window of the spread proxy's median")
    spread_baseline_min_bars: int = param(60, lo=2, hi=100_000, unit="bars",
                                          doc="spread proxies needed before the median is "
                                              "defined")
    thin_spread_ratio: float = param(2.0, lo=1.0, hi=100.0, unit="ratio",
                                     doc="spread proxy over its trailing median that makes "
                                         "liquidity 'thin'")


def split_basis(sessions: np.ndarray, splits: pd.DataFrame | None) -> np.ndarray:
    """Return each bar's multiplier onto the first bar's price basis: the product of the
    ratios of the splits with ex_date after the first session and on or before the bar's."""
    basis = np.ones(len(sessions))
    if splits is None or not len(splits) or not len(sessions):
        return basis
    if "action" in splits:
        splits = splits[splits["action"] == "split"]
    days = np.asarray(sessions, dtype="datetime64[D]")
    ex_dates = pd.to_datetime(splits["ex_date"]).to_numpy(dtype="datetime64[D]")
    ratios = splits["ratio"].to_numpy(dtype=np.float64)
    order = np.argsort(ex_dates, kind="stable")
    ex_dates, ratios = ex_dates[order], ratios[order]
    later = ex_dates > days[0]
    cumulative = np.concatenate(([1.0], np.cumprod(ratios[later])))
    return cumulative[np.searchsorted(ex_dates[later], days, side="right")]


def regime_rules(frame: pd.DataFrame, config: RegimeRulesConfig) -> pd.DataFrame:
    """Return the rule-based regime columns for one series, one row per bar.

    ``frame`` holds high, low, close, ema_20 and atr_14 on one continuous price basis, and
    adx_14, rv_20, ret_1 and relvol_20 (scale-free). Columns returned: trend_state,
    trend_strength, ema_slope_atr, vol_state, vol_z, vol_expansion_flag (float 1/0, NaN
    undefined), liquidity_state, spread_proxy, relvol.
    """
    cfg = config
    adx = frame["adx_14"].to_numpy(np.float64)
    ema = frame["ema_20"].to_numpy(np.float64)
    atr = frame["atr_14"].to_numpy(np.float64)
    slope = np.full(len(frame), np.nan)
    lag = cfg.ema_slope_bars
    if len(frame) > lag:
        with np.errstate(divide="ignore", invalid="ignore"):
            slope[lag:] = (ema[lag:] - ema[:-lag]) / (lag * atr[lag:])
    slope[~np.isfinite(slope)] = np.nan
    trending = adx >= cfg.adx_trend_min
    trend = np.where(trending & (slope >= cfg.ema_slope_min_atr), "up",
                     np.where(trending & (slope <= -cfg.ema_slope_min_atr), "down", "range"))
    trend_known = np.isfinite(adx) & np.isfinite(slope)

    with np.errstate(divide="ignore", invalid="ignore"):
        log_rv = pd.Series(np.log(frame["rv_20"].to_numpy(np.float64)))
    log_rv[~np.isfinite(log_rv)] = np.nan
    rolling = log_rv.rolling(cfg.vol_z_window, min_periods=cfg.vol_z_min_bars)
    mean, std = rolling.mean().to_numpy(), rolling.std().to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        vol_z = np.where(std > 0, (log_rv.to_numpy() - mean) / std, 0.0)
    vol_z[~(np.isfinite(vol_z) & np.isfinite(mean))] = np.nan
    vol = np.where(vol_z <= cfg.calm_vol_z, "calm",
                   np.where(vol_z >= cfg.volatile_vol_z, "volatile", "normal"))

    ret = pd.Series(frame["ret_1"].to_numpy(np.float64))
    short = ret.rolling(cfg.expansion_short_bars, min_periods=cfg.expansion_short_bars).std()
    long = ret.rolling(RV_BARS, min_periods=RV_BARS).std()
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (short / long).to_numpy()
    expansion = np.where(np.isfinite(ratio), (ratio >= cfg.expansion_ratio).astype(float),
                         np.nan)

    spread_pairs = corwin_schultz_pairs(frame["high"].to_numpy(np.float64),
                                        frame["low"].to_numpy(np.float64),
                                        frame["close"].to_numpy(np.float64))
    spread = pd.Series(spread_pairs).rolling(cfg.spread_window,
                                             min_periods=cfg.spread_window).mean()
    baseline = spread.rolling(cfg.spread_baseline_window,
                              min_periods=min(cfg.spread_baseline_window,
                                              cfg.spread_baseline_min_bars)).median()
    spread, baseline = spread.to_numpy(), baseline.to_numpy()
    relvol = frame["relvol_20"].to_numpy(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        wide = spread >= cfg.thin_spread_ratio * baseline
    liquidity = np.where((relvol <= cfg.thin_relvol) | wide, "thin",
                         np.where(relvol >= cfg.heavy_relvol, "heavy", "normal"))
    liquidity_known = np.isfinite(relvol) & np.isfinite(spread) & np.isfinite(baseline)

    result = pd.DataFrame({
        "trend_state": _masked(trend, trend_known),
        "trend_strength": adx,
        "ema_slope_atr": slope,
        "vol_state": _masked(vol, np.isfinite(vol_z)),
        "vol_z": vol_z,
        "vol_expansion_flag": expansion,
        "liquidity_state": _masked(liquidity, liquidity_known),
        "spread_proxy": spread,
        "relvol": relvol,
    })
    result.index = frame.index
    return result


def _masked(labels: np.ndarray, known: np.ndarray) -> pd.Series:
    # object dtype on purpose: pandas would otherwise pick str or object depending on
    # whether a None is present, and a prefix must give the same row as the full series.
    out = labels.astype(object)
    out[~known] = None
    return pd.Series(out, dtype=object)
