"""Correlation clusters against scipy's hierarchy on the same distance, and the join rule
against a plain loop."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform

from buddy.portfolio.risk import (
    UNKNOWN_PAIR_DISTANCE,
    CorrelationClusters,
    RiskInputError,
    correlation_clusters,
    join_cluster,
    moments,
)
from tests.portfolio.risk_data import block_returns, real_returns


def _partition(labels: np.ndarray) -> set[frozenset[int]]:
    return {frozenset(np.flatnonzero(labels == k).tolist()) for k in set(labels.tolist()) - {0}}


@pytest.mark.parametrize("cut", [0.2, 0.35, 0.45, 0.6, 0.8])
def test_clusters_match_scipy_fcluster_on_the_same_distance(cut: float) -> None:
    r = block_returns()
    got = correlation_clusters(r, max_distance=cut, min_obs=30)
    rho = pd.DataFrame(r).corr(min_periods=30).to_numpy()
    dist = np.sqrt((1 - rho) / 2)
    np.fill_diagonal(dist, 0.0)
    expected = fcluster(linkage(squareform(dist, checks=False), method="average"),
                        t=cut, criterion="distance")
    assert _partition(got.labels) == _partition(expected)
    np.testing.assert_allclose(got.distance[~np.eye(9, dtype=bool)],
                               dist[~np.eye(9, dtype=bool)], rtol=1e-9)


def test_blocks_of_correlated_columns_form_their_clusters_numbered_in_order() -> None:
    got = correlation_clusters(block_returns(), max_distance=0.5, min_obs=30)
    assert got.labels.tolist() == [1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert got.max_distance == 0.5 and got.min_obs == 30


def test_a_column_with_too_few_days_is_not_clustered_and_an_unknown_pair_never_links() -> None:
    r = block_returns().copy()
    r[:-20, 2] = np.nan  # 20 days: too few for min_obs 30
    got = correlation_clusters(r, max_distance=0.5, min_obs=30)
    assert got.labels[2] == 0
    assert got.labels.tolist()[:2] == [1, 1] and np.isnan(got.corr[2, 0])
    # two columns that never overlap stay apart even at a loose cut: unknown is not related
    apart = np.full((200, 2), np.nan)
    apart[:100, 0] = np.random.default_rng(1).normal(0, 0.01, 100)
    apart[100:, 1] = apart[:100, 0]
    loose = correlation_clusters(apart, max_distance=UNKNOWN_PAIR_DISTANCE - 1e-9, min_obs=30)
    assert loose.labels.tolist() == [1, 2]


def test_include_clusters_the_held_columns_only() -> None:
    held = np.array([True, True, False, True, True, False, False, False, False])
    got = correlation_clusters(block_returns(), max_distance=0.5, min_obs=30, include=held)
    assert got.labels.tolist() == [1, 1, 0, 2, 2, 0, 0, 0, 0]
    assert got.corr.shape == (9, 9) and np.isfinite(got.corr[2, 0])


def test_real_stocks_and_their_indices() -> None:
    got = correlation_clusters(real_returns()[-500:], max_distance=0.3, min_obs=60)
    # the Nasdaq and the S&P 500 move together (rho > 0.8 over 2011-2013)
    assert got.corr[4, 5] > 0.8 and got.labels[4] == got.labels[5] != 0


def _join_oracle(clusters: CorrelationClusters, cand: int) -> tuple[int, float, float]:
    """Return the label, mean distance and mean correlation by a loop over clusters."""
    options: dict[int, tuple[float, float]] = {}
    for label in sorted(set(clusters.labels.tolist()) - {0}):
        members = [j for j in np.flatnonzero(clusters.labels == label) if j != cand]
        if members:
            dists = [UNKNOWN_PAIR_DISTANCE if math.isnan(clusters.distance[cand, j])
                    else float(clusters.distance[cand, j]) for j in members]
            corrs = [0.0 if math.isnan(clusters.corr[cand, j]) else float(clusters.corr[cand, j])
                    for j in members]
            options[label] = (float(np.mean(dists)), float(np.mean(corrs)))
    own = int(clusters.labels[cand])
    if own:
        dist, corr = options.get(own, (math.nan, math.nan))
        return own, dist, corr
    label = min(options, key=lambda k: options[k][0])
    dist, corr = options[label]
    return (label if dist <= clusters.max_distance else 0), dist, corr


def test_join_cluster_matches_a_loop_over_clusters() -> None:
    held = np.array([True, True, False, True, False, False, True, False, False])
    clusters = correlation_clusters(block_returns(), max_distance=0.5, min_obs=30,
                                    include=held)
    cands = np.array([2, 5, 8, 0, 6, 4, 2])
    got = join_cluster(clusters, cands)
    for k, cand in enumerate(cands):
        label, dist, corr = _join_oracle(clusters, int(cand))
        assert got.label[k] == label
        np.testing.assert_allclose([got.mean_distance[k], got.mean_corr[k]], [dist, corr],
                                   rtol=1e-12, equal_nan=True)
    # held: {0, 1} is cluster 1, {3} 2, {6} 3; 2, 5, 4 and 8 join their blocks' clusters
    assert clusters.labels.tolist() == [1, 1, 0, 2, 0, 0, 3, 0, 0]
    assert got.label.tolist() == [1, 2, 3, 1, 3, 2, 1]
    assert np.isnan(got.mean_distance[4])  # 6 is alone in its cluster: nothing to average
    assert got.n_min[0] == clusters.n[2, [0, 1]].min()


def test_join_cluster_with_no_clusters_and_bad_indices() -> None:
    clusters = correlation_clusters(block_returns(), include=np.zeros(9, dtype=bool))
    got = join_cluster(clusters, np.array([1, 2]))
    assert got.label.tolist() == [0, 0] and np.isnan(got.mean_distance).all()
    with pytest.raises(RiskInputError) as err:
        join_cluster(clusters, np.array([9]))
    assert err.value.fields == ("cand_index",)
    with pytest.raises(RiskInputError) as err:
        correlation_clusters(block_returns(), max_distance=0.0)
    assert err.value.fields == ("max_distance",)


def test_clusters_from_moments_already_computed_equal_clusters_from_returns() -> None:
    r = block_returns()
    direct = correlation_clusters(r, max_distance=0.5, min_obs=345)
    reused = correlation_clusters(moments(r, min_obs=2), max_distance=0.5, min_obs=345)
    np.testing.assert_array_equal(reused.labels, direct.labels)
    np.testing.assert_array_equal(np.isnan(reused.corr), np.isnan(direct.corr))
    assert reused.min_obs == direct.min_obs == 345 and direct.labels[4] == 0


def test_join_cluster_with_unknown_pairs_and_many_candidates() -> None:
    r = block_returns().copy()
    r[:-20, 2] = np.nan  # 20 days: its correlations are unknown at min_obs 30
    held = np.array([True, True, False, True, True, False, False, False, False])
    clusters = correlation_clusters(r, max_distance=0.5, min_obs=30, include=held)
    cands = np.random.default_rng(2).integers(0, 9, 50_000)
    got = join_cluster(clusters, cands)
    for column in range(9):
        label, dist, corr = _join_oracle(clusters, column)
        k = int(np.flatnonzero(cands == column)[0])
        assert got.label[k] == label
        np.testing.assert_allclose([got.mean_distance[k], got.mean_corr[k]], [dist, corr],
                                   rtol=1e-12, equal_nan=True)
    unknown = cands == 2
    # an unmeasured instrument joins nothing and says its evidence rests on 0 days
    assert (got.label[unknown] == 0).all() and (got.n_min[unknown] == 0).all()
    assert got.mean_distance[unknown][0] == pytest.approx(UNKNOWN_PAIR_DISTANCE)
