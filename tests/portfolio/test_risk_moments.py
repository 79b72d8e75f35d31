"""Log returns and pairwise moments against pandas' pairwise-complete cov/corr."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from buddy.portfolio.risk import RiskInputError, log_returns, moments, nearest_psd
from tests.portfolio.risk_data import block_returns, real_closes, real_returns


def test_log_returns_are_log_ratios_and_do_not_bridge_gaps() -> None:
    closes = np.array([[100.0, 10.0], [110.0, np.nan], [99.0, 12.0], [99.0, 12.0]])
    r = log_returns(closes)
    assert r.shape == (3, 2)
    np.testing.assert_allclose(r[:, 0], np.log([1.1, 0.9, 1.0]))
    # the move from 10 to 12 spans the missing day: not a daily return
    assert np.isnan(r[0, 1]) and np.isnan(r[1, 1]) and r[2, 1] == 0.0


def test_log_returns_of_real_closes_match_pandas() -> None:
    closes = real_closes()
    expected = np.log(closes / closes.shift(1)).to_numpy()[1:]
    np.testing.assert_allclose(real_returns(), expected, rtol=1e-12, equal_nan=True)


@pytest.mark.parametrize("bad", [0.0, -5.0])
def test_a_non_positive_close_is_refused_by_name(bad: float) -> None:
    with pytest.raises(RiskInputError) as err:
        log_returns(np.array([[100.0], [bad]]))
    assert err.value.fields == ("closes",)
    assert "> 0" in str(err.value) and str(bad) in str(err.value)


def test_an_infinite_return_is_refused() -> None:
    with pytest.raises(RiskInputError) as err:
        moments(np.array([[0.01, np.inf], [0.02, 0.0], [0.0, 0.01]]))
    assert err.value.fields == ("returns",)


@pytest.mark.parametrize("min_obs", [2, 30, 350])
def test_pairwise_moments_match_pandas_with_gaps(min_obs: int) -> None:
    r = block_returns()
    got = moments(r, min_obs=min_obs)
    frame = pd.DataFrame(r)
    np.testing.assert_allclose(got.cov, frame.cov(min_periods=min_obs).to_numpy(),
                               rtol=1e-10, atol=1e-16, equal_nan=True)
    np.testing.assert_allclose(got.corr, frame.corr(min_periods=min_obs).to_numpy(),
                               rtol=1e-10, atol=1e-12, equal_nan=True)
    both = (~frame.isna()).astype(int)
    np.testing.assert_array_equal(got.n, (both.T @ both).to_numpy())


def test_moments_without_gaps_take_one_product_and_match_numpy() -> None:
    r = real_returns()[:, [0, 1, 2, 4, 5]]  # every day observed
    got = moments(r)
    np.testing.assert_allclose(got.cov, np.cov(r, rowvar=False), rtol=1e-10)
    np.testing.assert_allclose(got.corr, np.corrcoef(r, rowvar=False), rtol=1e-10)
    assert (got.n == r.shape[0]).all()


def test_real_moments_with_a_late_listing_match_pandas() -> None:
    got = moments(real_returns(), min_obs=60)
    frame = pd.DataFrame(real_returns())
    np.testing.assert_allclose(got.cov, frame.cov(min_periods=60).to_numpy(), rtol=1e-9)
    assert got.n[3, 3] == np.count_nonzero(~np.isnan(real_returns()[:, 3]))


def test_nearest_psd_removes_negative_eigenvalues_only() -> None:
    psd = moments(block_returns()[:, :8]).cov
    np.testing.assert_allclose(nearest_psd(psd), psd, rtol=1e-9, atol=1e-18)
    broken = np.array([[1.0, 0.9, -0.9], [0.9, 1.0, 0.9], [-0.9, 0.9, 1.0]])
    assert np.linalg.eigvalsh(broken).min() < 0
    fixed = nearest_psd(broken)
    assert np.linalg.eigvalsh(fixed).min() > -1e-12
    np.testing.assert_allclose(fixed, fixed.T)
    with pytest.raises(RiskInputError) as err:
        nearest_psd(moments(block_returns(), min_obs=390).cov)
    assert err.value.fields == ("cov",)
