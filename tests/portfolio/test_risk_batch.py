"""K candidates against one book: the batch equals one candidate at a time through the
single-book functions (exact recomputation, not a linearisation)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from buddy.portfolio.risk import (
    RiskInputError,
    moments,
    portfolio_vol,
    risk_contributions,
    var_historical,
    var_parametric,
    with_candidates,
)
from tests.portfolio.risk_data import block_returns, real_returns


def _one_at_a_time(w: np.ndarray, cov: np.ndarray, returns: np.ndarray, column: int,
                   weight: float, level: float, horizon: int) -> dict[str, float]:
    after = w.copy()
    after[column] += weight
    # historical VaR before and after on the same days: the book's and the candidate's
    days = ~np.isnan(returns[:, column]) & ~np.isnan(returns[:, w != 0]).any(axis=1)
    before_hist = var_historical(w, returns[days], level)
    after_hist = var_historical(after, returns[days], level)
    return {
        "vol_before": portfolio_vol(w, cov), "vol_after": portfolio_vol(after, cov),
        "var_param_before": var_parametric(w, cov, level, horizon),
        "var_param_after": var_parametric(after, cov, level, horizon),
        "var_hist_before": before_hist.var, "var_hist_after": after_hist.var,
        "var_hist_after_low": after_hist.low, "var_hist_after_high": after_hist.high,
        "n_hist": float(before_hist.n),
        "contribution_after": float(risk_contributions(after, cov)[column]),
        # the added part's Euler share: its weight times d sigma / d w_i after entry
        "candidate_contribution_after": weight * float((cov @ after)[column])
        / portfolio_vol(after, cov),
    }


@pytest.mark.parametrize(("level", "horizon"), [(0.95, 1), (0.99, 5)])
def test_batch_equals_one_at_a_time_on_real_data(level: float, horizon: int) -> None:
    r = real_returns()[-600:]  # GOOG listed throughout; add gaps to test day alignment
    r = r.copy()
    r[:45, 1] = np.nan
    cov = moments(r, min_obs=60).cov
    w = np.array([0.1, 0.0, 0.15, -0.05, 0.0, 0.0])
    # new names, adding to a holding, reducing it, closing it, reversing it, a zero trade
    cands = np.array([1, 4, 5, 0, 0, 2, 3, 3, 1, 4])
    weights = np.array([0.1, -0.2, 0.3, 0.05, -0.04, -0.15, 0.05, 0.12, 0.0, 0.02])
    got = with_candidates(w, cov, r, cands, weights, level, horizon_days=horizon)
    for k, (column, weight) in enumerate(zip(cands, weights, strict=True)):
        expected = _one_at_a_time(w, cov, r, int(column), float(weight), level, horizon)
        for name, value in expected.items():
            assert getattr(got, name)[k] == pytest.approx(value, rel=1e-9, abs=1e-15,
                                                          nan_ok=True), (k, name)
    assert got.n_hist[0] == 555 and got.n_hist[1] == 600
    assert got.level == level and got.horizon_days == horizon


def test_batch_is_exact_where_a_linear_estimate_is_not() -> None:
    cov = moments(block_returns()[:, :3], min_obs=30).cov
    w = np.array([0.1, 0.0, 0.0])
    got = with_candidates(w, cov, block_returns()[:, :3], np.array([1]), np.array([0.5]))
    exact = portfolio_vol(np.array([0.1, 0.5, 0.0]), cov)
    marginal = (cov @ w)[1] / portfolio_vol(w, cov)
    linear = portfolio_vol(w, cov) + 0.5 * marginal
    assert got.vol_after[0] == pytest.approx(exact, rel=1e-12)
    assert abs(linear - exact) > 0.05 * exact


def test_an_unknown_covariance_with_the_book_gives_nan_for_that_candidate_only() -> None:
    r = block_returns()
    cov = moments(r, min_obs=30).cov.copy()
    cov[0, 7] = cov[7, 0] = np.nan
    w = np.zeros(9)
    w[[0, 3]] = 0.1
    got = with_candidates(w, cov, r, np.array([7, 6]), np.array([0.1, 0.1]))
    assert np.isnan(got.vol_after[0]) and np.isnan(got.var_param_after[0])
    assert math.isfinite(got.vol_after[1]) and math.isfinite(got.var_hist_after[0])


def test_many_candidates_in_blocks_match_one_at_a_time() -> None:
    r = block_returns()[-250:]
    cov = moments(r, min_obs=30).cov
    w = np.array([0.1, 0.05, 0.0, 0.2, 0.0, -0.1, 0.0, 0.1, 0.0])
    rng = np.random.default_rng(5)
    k = 20_000  # many blocks of candidates (the bench times 100k)
    cands, weights = rng.integers(0, 9, k), rng.normal(0, 0.05, k)
    got = with_candidates(w, cov, r, cands, weights)
    assert got.vol_after.shape == (k,) and np.isfinite(got.var_hist_after).all()
    for i in rng.choice(k, 12, replace=False):
        expected = _one_at_a_time(w, cov, r, int(cands[i]), float(weights[i]), 0.95, 1)
        assert got.var_hist_after[i] == pytest.approx(expected["var_hist_after"], rel=1e-9)
        assert got.vol_after[i] == pytest.approx(expected["vol_after"], rel=1e-9)


@pytest.mark.parametrize(("args", "field"), [
    ((np.array([9]), np.array([0.1])), "cand_index"),
    ((np.array([1.0]), np.array([0.1])), "cand_index"),
    ((np.array([1, 2]), np.array([0.1])), "cand_weight"),
    ((np.array([1]), np.array([np.inf])), "cand_weight")])
def test_bad_candidates_are_refused_by_name(args: tuple[np.ndarray, np.ndarray], field: str
                                            ) -> None:
    r = block_returns()
    cov = moments(r, min_obs=30).cov
    with pytest.raises(RiskInputError) as err:
        with_candidates(np.zeros(9), cov, r, *args)
    assert err.value.fields == (field,)
    with pytest.raises(RiskInputError) as err:
        with_candidates(np.zeros(9), cov, r[:, :8], np.array([1]), np.array([0.1]))
    assert err.value.fields == ("returns",)


def test_a_candidate_without_any_history_is_unknown_not_riskless() -> None:
    r = block_returns().copy()
    r[:, 2] = np.nan
    cov = moments(r, min_obs=30).cov
    w = np.zeros(9)
    w[[0, 3]] = 0.1
    got = with_candidates(w, cov, r, np.array([2, 1]), np.array([0.1, 0.1]))
    assert got.n_hist.tolist() == [0, 400]
    assert np.isnan([got.vol_after[0], got.var_hist_after[0], got.var_hist_before[0]]).all()
    assert np.isfinite([got.vol_after[1], got.var_hist_after[1]]).all()


@settings(max_examples=30, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**32 - 1), n_cols=st.integers(1, 7), days=st.integers(3, 80),
       level=st.sampled_from([0.9, 0.95, 0.99]))
def test_batch_equals_one_at_a_time_on_random_books(seed: int, n_cols: int, days: int,
                                                    level: float) -> None:
    rng = np.random.default_rng(seed)
    r = rng.normal(0, 0.01, (days, n_cols)) + rng.normal(0, 0.01, (days, 1))
    r[rng.random(r.shape) < 0.1] = np.nan
    cov = moments(np.nan_to_num(r)).cov  # any positive semi-definite covariance will do
    w = np.where(rng.random(n_cols) < 0.6, rng.normal(0, 0.2, n_cols), 0.0)
    cands = rng.integers(0, n_cols, 6)
    weights = rng.normal(0, 0.2, 6)
    got = with_candidates(w, cov, r, cands, weights, level)
    for k, (column, weight) in enumerate(zip(cands, weights, strict=True)):
        expected = _one_at_a_time(w, cov, r, int(column), float(weight), level, 1)
        for name in ("vol_after", "var_param_after", "var_hist_before", "var_hist_after",
                     "contribution_after"):
            assert getattr(got, name)[k] == pytest.approx(expected[name], rel=1e-8,
                                                          abs=1e-14, nan_ok=True), name
