"""Return matrices for the risk-math tests: real daily closes from the bundled sample data
(AAPL, IBM, MSFT, GOOG from 2004, the S&P 500 and Nasdaq indices) and seeded synthetic
blocks with a known correlation structure. Cached: built once per test process."""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd

from buddy.data.sample import load_sample
from buddy.portfolio.risk import log_returns

REAL_SYMBOLS = ("AAPL", "IBM", "MSFT", "GOOG", "NASDAQ", "SP500")


@cache
def real_closes() -> pd.DataFrame:
    """Return split-adjusted daily closes, one column per symbol, NaN before GOOG listed."""
    bars = load_sample().bars
    daily = bars[(bars["timeframe"] == "1d") & bars["symbol"].isin(REAL_SYMBOLS)]
    price = daily["adj_close"].fillna(daily["close"])
    wide = daily.assign(price=price, day=daily["ts"].dt.date).pivot(
        index="day", columns="symbol", values="price")
    # the stocks' span (2000-03 to 2013-03): the indices run longer
    wide = wide.loc[wide["AAPL"].first_valid_index():wide["AAPL"].last_valid_index()]
    return wide[list(REAL_SYMBOLS)]


@cache
def real_returns() -> np.ndarray:
    """Return the daily log returns (T, 6) of ``real_closes`` (NaN gaps kept)."""
    return log_returns(real_closes().to_numpy())


@cache
def block_returns(t: int = 400, seed: int = 7) -> np.ndarray:
    """Return (t, 9) daily log returns in three blocks of three columns (within-block
    correlation about 0.8, across about 0.1), with gaps: column 4 starts 60 days late and
    column 8 misses every 7th day."""
    rng = np.random.default_rng(seed)
    market = rng.normal(0, 0.004, (t, 1))
    blocks = rng.normal(0, 0.01, (t, 3))
    own = rng.normal(0, 0.005, (t, 9))
    r = market + np.repeat(blocks, 3, axis=1) + own
    r[:60, 4] = np.nan
    r[::7, 8] = np.nan
    return r
