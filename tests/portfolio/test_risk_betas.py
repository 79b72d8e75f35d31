"""Betas against statsmodels OLS with an intercept, column by column."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm

from buddy.portfolio.risk import BLUME_WEIGHT, RiskInputError, betas
from tests.portfolio.risk_data import REAL_SYMBOLS, real_returns

SP500 = REAL_SYMBOLS.index("SP500")


def _ols(y: np.ndarray, x: np.ndarray) -> tuple[float, float, int, np.ndarray]:
    keep = ~np.isnan(y) & ~np.isnan(x)
    fit = sm.OLS(y[keep], sm.add_constant(x[keep])).fit()
    return float(fit.params[1]), float(fit.bse[1]), int(fit.nobs), fit.conf_int(0.05)[1]


def test_betas_on_one_benchmark_match_statsmodels_on_real_data() -> None:
    r = real_returns()
    stocks = r[:, :4]  # GOOG (column 3) starts in 2004: its own, shorter sample
    got = betas(stocks, r[:, SP500])
    for i in range(4):
        beta, se, n, (low, high) = _ols(stocks[:, i], r[:, SP500])
        assert got.n[i] == n
        assert got.beta[i] == pytest.approx(beta, rel=1e-9)
        assert got.se[i] == pytest.approx(se, rel=1e-9)
        assert (got.low[i], got.high[i]) == pytest.approx((low, high), rel=1e-9)
    assert got.n[3] < got.n[0]


def test_betas_per_column_benchmark_and_weekly_window_match_statsmodels() -> None:
    r = real_returns()
    weekly = np.add.reduceat(np.nan_to_num(r), np.arange(0, r.shape[0], 5), axis=0)[-104:]
    weekly[:10, 0] = np.nan
    bench = weekly[:, [5, 4, 5]]  # AAPL on the S&P 500, IBM on the Nasdaq, MSFT on the S&P
    got = betas(weekly[:, :3], bench, level=0.9)
    for i in range(3):
        keep = ~np.isnan(weekly[:, i])
        fit = sm.OLS(weekly[keep, i], sm.add_constant(bench[keep, i])).fit()
        assert got.beta[i] == pytest.approx(fit.params[1], rel=1e-9)
        assert got.se[i] == pytest.approx(fit.bse[1], rel=1e-9)
        assert (got.low[i], got.high[i]) == pytest.approx(tuple(fit.conf_int(0.1)[1]),
                                                          rel=1e-9)
    assert got.n.tolist() == [94, 104, 104] and got.level == 0.9


def test_blume_adjusts_beta_se_and_bounds_toward_one() -> None:
    r = real_returns()
    raw = betas(r[:, :3], r[:, SP500])
    adj = betas(r[:, :3], r[:, SP500], blume=True)
    np.testing.assert_allclose(adj.beta, BLUME_WEIGHT * raw.beta + 0.33)
    np.testing.assert_allclose(adj.se, BLUME_WEIGHT * raw.se)
    np.testing.assert_allclose(adj.low, BLUME_WEIGHT * raw.low + 0.33)
    np.testing.assert_allclose(adj.high, BLUME_WEIGHT * raw.high + 0.33)
    assert adj.blume and not raw.blume


def test_too_few_periods_or_a_flat_benchmark_give_nan_not_zero() -> None:
    y = np.array([[0.01, 0.02], [0.02, np.nan], [-0.01, np.nan], [0.0, 0.01]])
    x = np.array([[0.01, 0.0], [0.015, 0.0], [-0.02, 0.0], [0.001, 0.0]])
    got = betas(y, x)
    assert np.isfinite(got.beta[0]) and np.isnan(got.beta[1]) and got.n.tolist() == [4, 2]
    flat = betas(y[:, :1], x[:, 1])
    assert np.isnan(flat.beta[0]) and np.isnan(flat.low[0])


def test_a_misshapen_benchmark_is_refused_by_name() -> None:
    with pytest.raises(RiskInputError) as err:
        betas(np.zeros((10, 3)), np.zeros((10, 2)))
    assert err.value.fields == ("bench_returns",)
    with pytest.raises(RiskInputError) as err:
        betas(np.zeros((10, 3)), np.zeros(10), level=1.2)
    assert err.value.fields == ("level",)
