"""Volatility, Euler risk contributions and VaR against independent computations: a numeric
gradient of sigma_p (Euler's theorem), scipy.stats.norm, np.quantile."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from buddy.portfolio.risk import (
    RiskInputError,
    moments,
    portfolio_vol,
    risk_contributions,
    sigma_interval,
    var_historical,
    var_parametric,
)
from tests.portfolio.risk_data import block_returns, real_returns

BOOK = np.array([0.12, -0.05, 0.08, 0.2, 0.0, 0.1])  # fractions of equity, one short


def _sigma(w: np.ndarray, cov: np.ndarray) -> float:
    return math.sqrt(float(w @ cov @ w))


def test_contributions_are_w_times_the_numeric_gradient_and_sum_to_sigma() -> None:
    cov = moments(real_returns(), min_obs=60).cov
    sigma = portfolio_vol(BOOK, cov)
    assert sigma == pytest.approx(_sigma(BOOK, cov), rel=1e-12)
    step = 1e-6
    gradient = np.array([(_sigma(BOOK + step * e, cov) - _sigma(BOOK - step * e, cov))
                         / (2 * step) for e in np.eye(BOOK.size)])
    got = risk_contributions(BOOK, cov)
    np.testing.assert_allclose(got, BOOK * gradient, rtol=1e-6, atol=1e-14)
    assert got.sum() == pytest.approx(sigma, rel=1e-12)
    assert got[4] == 0.0  # not held


def test_an_unknown_covariance_outside_the_book_does_not_make_its_risk_unknown() -> None:
    cov = moments(block_returns(), min_obs=30).cov.copy()
    w = np.zeros(9)
    w[[0, 3]] = [0.1, 0.1]
    cov[5, 7] = cov[7, 5] = np.nan  # neither is held
    assert math.isfinite(portfolio_vol(w, cov))
    cov[0, 3] = cov[3, 0] = np.nan  # both held: the risk is unknown, said as NaN
    assert math.isnan(portfolio_vol(w, cov)) and np.isnan(risk_contributions(w, cov)[0])


def test_an_empty_book_has_zero_risk_and_a_non_psd_book_is_refused() -> None:
    cov = np.eye(3) * 1e-4
    assert portfolio_vol(np.zeros(3), cov) == 0.0
    assert risk_contributions(np.zeros(3), cov).tolist() == [0.0, 0.0, 0.0]
    broken = np.array([[1.0, 0.9, -0.9], [0.9, 1.0, 0.9], [-0.9, 0.9, 1.0]]) * 1e-4
    with pytest.raises(RiskInputError) as err:
        portfolio_vol(np.array([1.0, -1.0, 1.0]), broken)
    assert err.value.fields == ("cov",)


@pytest.mark.parametrize(("level", "horizon"), [(0.95, 1), (0.99, 1), (0.975, 10)])
def test_parametric_var_matches_scipy_norm(level: float, horizon: int) -> None:
    cov = moments(real_returns(), min_obs=60).cov
    sigma = _sigma(BOOK, cov)
    expected = -stats.norm(loc=0.0, scale=sigma * math.sqrt(horizon)).ppf(1 - level)
    assert var_parametric(BOOK, cov, level, horizon) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("level", [0.95, 0.99, 0.9])
@pytest.mark.parametrize("days", [250, 37, 2521])
def test_historical_var_matches_np_quantile_of_the_revalued_book(level: float, days: int
                                                                 ) -> None:
    r = real_returns()[-days:]
    w = BOOK.copy()
    pnl = np.expm1(r[:, w != 0]) @ w[w != 0]
    pnl = pnl[~np.isnan(pnl)]
    got = var_historical(w, r, level)
    assert got.n == pnl.size
    assert got.var == pytest.approx(-np.quantile(pnl, 1 - level), rel=1e-12, abs=1e-15)
    ordered = np.sort(pnl)
    lo = int(stats.binom.ppf(0.025, pnl.size, 1 - level))
    hi = int(stats.binom.ppf(0.975, pnl.size, 1 - level)) + 1
    assert got.high == (-ordered[lo - 1] if lo >= 1 else pytest.approx(math.nan, nan_ok=True))
    assert got.low == (-ordered[hi - 1] if hi <= pnl.size
                       else pytest.approx(math.nan, nan_ok=True))


def test_historical_var_interval_covers_the_true_quantile_about_95_percent() -> None:
    rng = np.random.default_rng(11)
    true_var = -stats.norm.ppf(0.05) * 0.01
    hits = sum(
        (res := var_historical(np.array([1.0]), rng.normal(0, 0.01, (250, 1)))).low
        <= true_var <= res.high for _ in range(400))
    assert 0.92 <= hits / 400 <= 0.995


def test_historical_var_drops_days_a_held_instrument_is_missing() -> None:
    r = real_returns()  # GOOG (column 3) starts in 2004
    got = var_historical(BOOK, r)
    assert got.n == np.count_nonzero(~np.isnan(r[:, 3]))
    without = BOOK.copy()
    without[3] = 0.0
    assert var_historical(without, r).n == r.shape[0]


def test_sigma_interval_is_the_chi_square_interval() -> None:
    low, high = sigma_interval(0.01, 250)
    assert low == pytest.approx(0.01 * math.sqrt(249 / stats.chi2.ppf(0.975, 249)))
    assert high == pytest.approx(0.01 * math.sqrt(249 / stats.chi2.ppf(0.025, 249)))
    assert all(math.isnan(v) for v in sigma_interval(0.01, 1))


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"level": 0.4}, "level"), ({"level": 1.0}, "level"), ({"horizon_days": 0}, "horizon_days"),
    ({"horizon_days": 1.5}, "horizon_days")])
def test_bad_parameters_are_refused_by_name(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(RiskInputError) as err:
        var_parametric(np.array([0.1]), np.array([[1e-4]]), **kwargs)  # type: ignore[arg-type]
    assert err.value.fields == (field,)


def test_weights_of_the_wrong_shape_or_not_finite_are_refused() -> None:
    with pytest.raises(RiskInputError) as err:
        portfolio_vol(np.array([0.1, 0.2]), np.eye(3))
    assert err.value.fields == ("w",)
    with pytest.raises(RiskInputError) as err:
        var_historical(np.array([np.nan]), np.zeros((5, 1)))
    assert err.value.fields == ("w",)
