"""Bid-ask spread estimated from bar highs, lows and closes, for data without quotes.

Corwin and Schultz (2012), "A Simple Way to Estimate Bid-Ask Spreads from Daily High and Low
Prices", Journal of Finance 67(2). A bar's high-low range holds the spread once and the price
variance of one bar; the range of two consecutive bars holds the spread once and twice the
variance. For each pair of consecutive bars (high H, low L):

    beta  = ln(H1/L1)^2 + ln(H2/L2)^2
    gamma = ln(max(H1, H2) / min(L1, L2))^2
    alpha = (sqrt(2 beta) - sqrt(beta)) / (3 - 2 sqrt 2) - sqrt(gamma / (3 - 2 sqrt 2))
    S     = 2 (e^alpha - 1) / (1 + e^alpha)

The second bar's high and low are first shifted by any gap beyond the first bar's close (the
paper's overnight adjustment); negative two-bar estimates are set to 0 and a window's estimate
is the mean of its two-bar estimates, as in the paper. Prices must be on one basis (split-
adjusted alike). On daily and hourly bars the estimator overstates the quoted spread of liquid
instruments.
"""

from __future__ import annotations

import math

import numpy as np

#: 3 - 2 sqrt(2), the paper's constant.
_K = 3.0 - 2.0 * math.sqrt(2.0)


def corwin_schultz_pairs(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    """Return the two-bar spread estimate of each bar with the bar before it (fraction of
    price, floored at 0), along the last axis: same shape as ``high``.

    The first bar of each row, and a pair where either bar's high or low is not finite, a low
    is at or below 0 or the first bar's close is not finite, are NaN: a missing bar is not
    bridged (its neighbours are not consecutive).
    """
    high, low, close = (np.asarray(a, dtype=np.float64) for a in (high, low, close))
    out = np.full(high.shape, np.nan)
    if high.shape[-1] < 2:
        return out
    usable = np.isfinite(high) & np.isfinite(low) & (low > 0)
    h1, l1, h2, l2 = high[..., :-1], low[..., :-1], high[..., 1:], low[..., 1:]
    prior_close = close[..., :-1]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # the overnight adjustment: a gap up lowers bar 2 to the prior close, a gap down lifts it
        shift = (np.where(l2 > prior_close, l2 - prior_close, 0.0)
                 - np.where(h2 < prior_close, prior_close - h2, 0.0))
        h2, l2 = h2 - shift, l2 - shift
        beta = np.log(h1 / l1) ** 2 + np.log(h2 / l2) ** 2
        gamma = np.log(np.maximum(h1, h2) / np.minimum(l1, l2)) ** 2
        alpha = (np.sqrt(2.0 * beta) - np.sqrt(beta)) / _K - np.sqrt(gamma / _K)
        spread = np.maximum(2.0 * np.tanh(alpha / 2.0), 0.0)  # = 2 (e^a - 1) / (1 + e^a)
    pair = usable[..., :-1] & usable[..., 1:] & np.isfinite(prior_close) & np.isfinite(spread)
    out[..., 1:] = np.where(pair, spread, np.nan)
    return out


def corwin_schultz_spread(high: np.ndarray, low: np.ndarray, close: np.ndarray
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Return each window's spread estimate (fraction of price; NaN without a usable pair)
    and the number of two-bar estimates behind it (int64).

    ``high``, ``low``, ``close``: (..., k) arrays, one window of k consecutive bars per row
    along the last axis, oldest first (NaN-padded where a window is shorter).
    """
    return _window_mean(corwin_schultz_pairs(high, low, close))


def corwin_schultz_windows(high: np.ndarray, low: np.ndarray, close: np.ndarray,
                           first: np.ndarray, stop: np.ndarray, k: int
                           ) -> tuple[np.ndarray, np.ndarray]:
    """Return what ``corwin_schultz_spread`` gives on windows of a flat series of bars:
    window i is bars ``first[i]:stop[i]`` (at most its last ``k``: ``first >= stop - k``)
    of ``high``, ``low``, ``close``, as k slots NaN-padded on the left.

    Overlapping windows (one per bar of a series, say) share their two-bar estimates: when
    the windows' slots outnumber the bars they span, each bar's estimate is computed once
    over the span, else once per slot. Either way each estimate and each window's mean are
    computed as ``corwin_schultz_spread`` computes them, so the results are the same bits.
    """
    first = np.asarray(first, dtype=np.int64)
    stop = np.asarray(stop, dtype=np.int64)
    if not len(stop) or k < 2:
        return (np.full(len(stop), np.nan), np.zeros(len(stop), dtype=np.int64))
    bar = stop[:, None] - k + np.arange(k)[None, :]  # each slot's bar, oldest first
    paired = bar > first[:, None]  # the slot's bar and the one before it lie in the window
    lo, hi = int(first.min()), int(stop.max())
    if hi - lo <= paired.size:
        span = slice(lo, hi)
        each = corwin_schultz_pairs(high[span], low[span], close[span])
        pairs = np.where(paired, each[np.maximum(bar - lo, 0)], np.nan)
    else:
        pairs = np.full(bar.shape, np.nan)
        at = bar[paired]
        two = [np.stack([values[at - 1], values[at]], axis=1) for values in (high, low, close)]
        pairs[paired] = corwin_schultz_pairs(*two)[:, 1]
    return _window_mean(pairs)


def _window_mean(pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the mean of the finite two-bar estimates along the last axis, and their count."""
    usable = ~np.isnan(pairs)
    count = usable.sum(axis=-1).astype(np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(usable, pairs, 0.0).sum(axis=-1) / count
    return np.where(count > 0, mean, np.nan), count
