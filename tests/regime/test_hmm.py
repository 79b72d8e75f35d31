"""The HMM: the forward filter uses bars up to t only (and is not hmmlearn's smoother), states
keep their names between fits, and a walk-forward fit at bar d sees bars up to d only."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from hmmlearn.hmm import GaussianHMM

from buddy.data.synth import synth_universe
from buddy.regime.hmm import (
    VOL_FEATURE,
    HMMConfig,
    HMMParams,
    WalkForward,
    fit_hmm,
    forward_filter,
    hmm_features,
    initial_means,
    new_model,
    ordered_params,
    refit_schedule,
    standardise_window,
    walk_forward,
)

CONFIG = HMMConfig(min_fit_bars=150, refit_every_bars=120, max_fit_bars=400)


@pytest.fixture(scope="module")
def features() -> np.ndarray:
    """Return [ret_1, log_range] of one synthetic symbol over three years of daily bars."""
    bars = synth_universe(n_symbols=1, years=3, timeframe="1d", seed=42).bars
    close = bars["close"].to_numpy()
    ret = np.concatenate(([np.nan], np.diff(np.log(close))))
    return hmm_features(ret, bars["high"].to_numpy(), bars["low"].to_numpy())


@pytest.fixture(scope="module")
def full(features: np.ndarray) -> WalkForward:
    return walk_forward(features, CONFIG)


@pytest.fixture(scope="module")
def params(features: np.ndarray) -> HMMParams:
    fitted = fit_hmm(features[:400], CONFIG)
    assert fitted is not None
    return fitted


def as_hmmlearn(params: HMMParams) -> GaussianHMM:
    """Return an hmmlearn model holding ``params`` (to compare against hmmlearn itself)."""
    model = GaussianHMM(n_components=params.n_states, covariance_type="diag")
    model.startprob_ = np.array(params.startprob)
    model.transmat_ = np.array(params.transmat)
    model.means_ = np.array(params.means)
    model.covars_ = np.array(params.variances)
    return model


def test_features_are_return_and_log_range_with_the_first_row_undefined(
        features: np.ndarray) -> None:
    assert features.shape[1] == 2
    assert np.isnan(features[0]).all() and np.isfinite(features[1:]).all()


def test_own_log_likelihoods_equal_hmmlearns(features: np.ndarray, params: HMMParams) -> None:
    rows = features[1:400]
    ours = params.log_likelihoods(rows)
    theirs = as_hmmlearn(params)._compute_log_likelihood(params.standardise(rows))
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-10)


def test_forward_filter_at_t_equals_a_brute_force_recomputation_on_the_prefix(
        features: np.ndarray, params: HMMParams) -> None:
    rows = features[1:400]
    filtered = forward_filter(params, rows)
    model = as_hmmlearn(params)
    z = params.standardise(rows)
    for t in (0, 1, 2, 10, 57, 123, 200, 298, 398):
        # hmmlearn's posterior at the LAST row of a prefix is the filtered probability there.
        prefix = model.predict_proba(z[:t + 1])[-1]
        np.testing.assert_allclose(filtered[t], prefix, atol=1e-9, err_msg=f"t={t}")
    np.testing.assert_allclose(filtered.sum(axis=1), 1.0)


def test_forward_filter_is_not_the_smoother(features: np.ndarray, params: HMMParams) -> None:
    rows = features[1:400]
    smoothed = as_hmmlearn(params).predict_proba(params.standardise(rows))
    filtered = forward_filter(params, rows)
    assert np.abs(smoothed - filtered).max() > 0.2  # the smoother used later bars somewhere
    np.testing.assert_allclose(smoothed[-1], filtered[-1], atol=1e-9)  # but not at the end


def test_the_stationary_distribution_is_invariant(params: HMMParams) -> None:
    three = dataclasses.replace(params, startprob=(0.2, 0.3, 0.5), transmat=(
        (0.9, 0.08, 0.02), (0.05, 0.9, 0.05), (0.1, 0.1, 0.8)))
    for p in (params, three):
        pi = np.array(p.stationary())
        np.testing.assert_allclose(pi @ np.array(p.transmat), pi, atol=1e-12)
        assert pi.sum() == pytest.approx(1.0) and (pi > 0).all()


def test_the_two_state_recursion_equals_the_general_one(features: np.ndarray,
                                                       params: HMMParams) -> None:
    from buddy.regime.hmm import _forward_any

    rows = features[:300].copy()
    rows[40] = np.nan
    filtered = forward_filter(params, rows)
    log_lik = params.log_likelihoods(rows)
    with np.errstate(invalid="ignore"):
        evidence = np.exp(log_lik - log_lik.max(axis=1, keepdims=True))
    general = _forward_any(list(params.startprob), params.transmat, evidence.tolist(),
                           np.isfinite(evidence).all(axis=1).tolist())
    np.testing.assert_array_equal(filtered, np.array(general))


def test_a_row_without_data_propagates_the_prediction(params: HMMParams,
                                                      features: np.ndarray) -> None:
    rows = features[1:60].copy()
    rows[30] = np.nan
    filtered = forward_filter(params, rows)
    np.testing.assert_allclose(filtered[30], filtered[29] @ np.array(params.transmat))


def test_states_are_sorted_calm_first_whatever_order_the_fit_found(
        features: np.ndarray) -> None:
    z, center, scale = standardise_window(features[:400])
    fits = []
    for reverse in (False, True):
        model = new_model(CONFIG, 0, z)
        if reverse:  # start the EM with the volatile state first
            model.means_ = initial_means(z, CONFIG.n_states, 0)[::-1]
        model.fit(z)
        fits.append(model)
    raw_volatile = [int(np.argmax(m.means_[:, VOL_FEATURE])) for m in fits]
    assert raw_volatile == [1, 0], "the two fits should label their states differently"
    ordered = [ordered_params(m, center, scale, score=0.0, n_obs=len(z), seed=0) for m in fits]
    for p in ordered:
        assert p.labels == ("calm", "volatile")
        assert p.means[0][VOL_FEATURE] < p.means[1][VOL_FEATURE]
    np.testing.assert_allclose(ordered[0].transmat, ordered[1].transmat, atol=1e-4)
    np.testing.assert_allclose(ordered[0].means, ordered[1].means, atol=1e-4)


def test_labels_stay_on_the_same_states_across_refits(full: WalkForward) -> None:
    fitted = [f.params for f in full.fits if f.params is not None]
    assert len(fitted) >= 5
    # Each fit's 'volatile' state has the wider bars, in the data's own units, every time.
    raw = [[p.center[VOL_FEATURE] + p.scale[VOL_FEATURE] * m[VOL_FEATURE] for m in p.means]
           for p in fitted]
    calm, volatile = np.array(raw).T
    assert (volatile - calm > 0.5).all()
    assert volatile.min() > calm.max()


def test_more_seeds_never_lower_the_kept_log_likelihood(features: np.ndarray) -> None:
    one = fit_hmm(features[:400], HMMConfig(n_seeds=1, **_schedule()))
    five = fit_hmm(features[:400], HMMConfig(n_seeds=5, **_schedule()))
    assert one is not None and five is not None
    assert five.log_likelihood >= one.log_likelihood


def _schedule() -> dict[str, int]:
    return dict(min_fit_bars=CONFIG.min_fit_bars, refit_every_bars=CONFIG.refit_every_bars,
                max_fit_bars=CONFIG.max_fit_bars)


def test_schedule_counts_bars_from_the_first_and_windows_end_at_the_refit() -> None:
    assert refit_schedule(700, CONFIG) == [(149, 0), (269, 0), (389, 0), (509, 110),
                                           (629, 230)]
    assert refit_schedule(149, CONFIG) == []


def test_walk_forward_fit_at_d_sees_bars_up_to_d_only(features: np.ndarray,
                                                      full: WalkForward) -> None:
    for cut in (149, 389, 390, 600):
        changed = features.copy()
        changed[cut + 1:, 0] *= 3.0  # a different future
        changed[cut + 1:, 1] += 1.0
        other = walk_forward(changed, CONFIG)
        np.testing.assert_array_equal(other.probs[:cut + 1], full.probs[:cut + 1])
        np.testing.assert_array_equal(other.refit_of[:cut + 1], full.refit_of[:cut + 1])
        for mine, theirs in zip(full.fits, other.fits, strict=True):
            if mine.refit_index <= cut:
                assert mine.params == theirs.params
            else:
                assert mine.params != theirs.params


def test_walk_forward_fits_each_window_and_filters_from_its_warmup_bar(
        features: np.ndarray, full: WalkForward) -> None:
    result = full
    fit = result.fits[3]
    assert (fit.refit_index, fit.window_start) == (509, 110)
    assert fit.params == fit_hmm(features[110:510], CONFIG)
    upto = result.fits[4].refit_index
    np.testing.assert_array_equal(result.refit_of[509:upto], 509)
    begin = 509 - CONFIG.filter_warmup_bars
    expected = forward_filter(fit.params, features[begin:upto], fit.params.stationary())
    np.testing.assert_array_equal(result.probs[509:upto], expected[509 - begin:])
    # The warm-up has washed out the prior by the refit bar.
    from_window_start = forward_filter(fit.params, features[110:upto])[509 - 110:]
    np.testing.assert_allclose(result.probs[509:upto], from_window_start, atol=1e-6)
    assert np.isnan(result.probs[:149]).all() and (result.refit_of[:149] == -1).all()


def test_walk_forward_from_a_later_start_reuses_stored_fits(features: np.ndarray,
                                                            full: WalkForward) -> None:
    stored = {f.refit_index: f.params for f in full.fits if f.params is not None}
    resumed = walk_forward(features, CONFIG, start=400,
                           fitted={k: v for k, v in stored.items() if k <= 389})
    np.testing.assert_array_equal(resumed.probs[400:], full.probs[400:])
    assert np.isnan(resumed.probs[:400]).all()
    assert [f.refit_index for f in resumed.fits] == [389, 509, 629, 749]


def test_parameters_round_trip_through_json_exactly(params: HMMParams) -> None:
    assert HMMParams.from_dict(json.loads(params.to_json())) == params


def test_a_window_with_too_few_rows_is_not_fitted(features: np.ndarray) -> None:
    window = features[:400].copy()
    window[: 300] = np.nan
    assert fit_hmm(window, CONFIG) is None
