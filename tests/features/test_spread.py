"""Corwin-Schultz spread: the paper's two-bar formula on hand-computed cases, its overnight
adjustment, the floor at zero, the window mean, rows of windows equal to one window, and the
windows of a flat series equal to their matrices."""

from __future__ import annotations

import math

import numpy as np
import pytest

from buddy.features.spread import (
    corwin_schultz_pairs,
    corwin_schultz_spread,
    corwin_schultz_windows,
)


def test_two_bar_estimate_by_hand_from_the_papers_formula() -> None:
    # H = (102, 103), L = (99, 100), closes (101, 101.5): no gap (L2 100 <= C1 101 <= H2 103).
    # beta  = ln(102/99)^2 + ln(103/100)^2         = 0.000891... + 0.000873... = 0.0017649222
    # gamma = ln(103/99)^2                          = 0.0015688838
    # alpha = (sqrt(2 beta) - sqrt(beta)) / 0.1715729 - sqrt(gamma / 0.1715729)
    #       = (0.0594125 - 0.0420110) / 0.1715729 - 0.0956247 = 0.0057985524
    # S     = 2 (e^alpha - 1) / (1 + e^alpha)       = 0.0057985361
    spread, pairs = corwin_schultz_spread(np.array([102.0, 103.0]), np.array([99.0, 100.0]),
                                          np.array([101.0, 101.5]))
    assert float(spread) == pytest.approx(0.0057985361, abs=1e-10)
    assert int(pairs) == 1


def test_a_gap_shifts_the_second_bar_to_the_prior_close() -> None:
    # Bar 2 opens above bar 1's close of 100: its low 102.5 lies 2.5 above, so bar 2 becomes
    # H 102.5, L 100. beta = ln(102/99)^2 + ln(102.5/100)^2 = 0.0015009245,
    # gamma = ln(102.5/99)^2 = 0.0012070725, alpha = 0.0096540025, S = 0.0096539275.
    # Unadjusted, the same bars give alpha = -0.0494: the gap would read as zero spread.
    high, low, close = np.array([102.0, 105.0]), np.array([99.0, 102.5]), np.array([100.0, 104.0])
    assert corwin_schultz_pairs(high, low, close)[1] == pytest.approx(0.0096539275, abs=1e-10)
    # the mirror image, a gap down, is shifted up by the same amount
    mirror = corwin_schultz_pairs(200.0 - low, 200.0 - high, 200.0 - close)
    assert np.isnan(mirror[0]) and mirror[1] > 0


def test_flat_bars_are_all_spread_and_a_wide_two_bar_range_floors_at_zero() -> None:
    high, low, close = np.full(5, 100.5), np.full(5, 99.5), np.full(5, 100.0)
    spread, pairs = corwin_schultz_spread(high, low, close)
    # no variance: alpha = ln(H/L), so S = 2 tanh(ln(100.5/99.5) / 2)
    assert float(spread) == pytest.approx(2 * math.tanh(math.log(100.5 / 99.5) / 2), rel=1e-12)
    assert int(pairs) == 4
    wide, _ = corwin_schultz_spread(np.array([101.0, 111.0]), np.array([99.0, 109.0]),
                                    np.array([100.0, 110.0]))
    assert float(wide) == 0.0


def test_fewer_than_two_usable_consecutive_bars_give_no_estimate() -> None:
    one, pairs = corwin_schultz_spread(np.array([101.0]), np.array([99.0]), np.array([100.0]))
    assert np.isnan(one) and int(pairs) == 0
    # a missing bar is not bridged: bars 0 and 2 are not consecutive
    high, low = np.array([101.0, np.nan, 101.0]), np.array([99.0, np.nan, 99.0])
    gap, pairs = corwin_schultz_spread(high, low, np.full(3, 100.0))
    assert np.isnan(gap) and int(pairs) == 0
    zero_low = corwin_schultz_pairs(np.array([101.0, 101.0]), np.array([0.0, 99.0]),
                                    np.full(2, 100.0))
    assert np.isnan(zero_low).all()


def test_windows_as_rows_equal_each_window_alone_and_the_mean_of_its_pairs() -> None:
    rng = np.random.default_rng(5)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.01, (40, 12)), axis=1))
    high = close * (1 + rng.uniform(0.001, 0.02, close.shape))
    low = close * (1 - rng.uniform(0.001, 0.02, close.shape))
    high[3, :4] = np.nan  # a short window, NaN-padded on the left
    high[7, 6] = np.nan  # a missing bar inside a window
    spread, pairs = corwin_schultz_spread(high, low, close)
    for i in range(len(close)):
        alone, n = corwin_schultz_spread(high[i], low[i], close[i])
        assert spread[i] == alone and pairs[i] == n
        two_bar = corwin_schultz_pairs(high[i], low[i], close[i])
        assert spread[i] == pytest.approx(np.nanmean(two_bar), rel=1e-12)
    assert pairs[3] == 7 and pairs[7] == 9 and pairs[0] == 11


def _slots(values: np.ndarray, first: np.ndarray, stop: np.ndarray, k: int) -> np.ndarray:
    """Return each window's k slots of a flat series, NaN-padded on the left (the oracle)."""
    out = np.full((len(stop), k), np.nan)
    for i, (a, b) in enumerate(zip(first.tolist(), stop.tolist(), strict=True)):
        if b > a:
            out[i, k - (b - a):] = values[a:b]
    return out


@pytest.mark.parametrize("n_windows", [400, 3])  # estimates once per bar / once per slot
def test_windows_of_a_flat_series_equal_their_padded_matrices_bit_for_bit(n_windows: int
                                                                          ) -> None:
    rng = np.random.default_rng(11)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.01, 600)))
    high = close * (1 + rng.uniform(0.001, 0.02, 600))
    low = close * (1 - rng.uniform(0.001, 0.02, 600))
    high[[40, 41, 300]] = np.nan  # missing bars are not bridged
    low[77] = 0.0
    close[150] = np.nan  # no prior close: that pair is no estimate
    k = 12
    stop = rng.integers(1, 601, n_windows)
    start = np.maximum(0, stop - rng.integers(0, 30, n_windows))  # some shorter than k
    stop[0], start[0] = 5, 5  # an empty window
    first = np.maximum(start, stop - k)
    spread, pairs = corwin_schultz_windows(high, low, close, first, stop, k)
    expected, expected_pairs = corwin_schultz_spread(
        *(_slots(v, first, stop, k) for v in (high, low, close)))
    assert np.array_equal(spread.view(np.int64), expected.view(np.int64))
    assert np.array_equal(pairs, expected_pairs)
    assert np.isnan(spread[0]) and pairs[0] == 0
    assert (pairs > 0).sum() >= n_windows // 2  # the comparison is over real estimates
