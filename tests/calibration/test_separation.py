"""Outcome separation by score: deciles, rank statistics, intervals and the min-sample rule."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from replay import calibration as cal
from tests.calibration.synthetic import results_frame

N_BOOT = 500


def test_a_score_that_orders_r_has_auc_and_spearman_intervals_above_chance() -> None:
    ranked = cal.rank_stats(results_frame(600, separation=1.0), n_boot=N_BOOT)
    assert ranked["auc"].enough and ranked["auc"].low > 0.5
    assert ranked["spearman"].enough and ranked["spearman"].low > 0
    assert ranked["decile_spread_r"].low > 0
    assert ranked["auc"].p_value < 1e-6 and ranked["spearman"].p_value < 1e-6
    assert ranked["auc"].n == 600 and sum(ranked["auc"].groups) == 600


def test_a_random_score_has_intervals_covering_chance() -> None:
    ranked = cal.rank_stats(results_frame(600, separation=0.0), n_boot=N_BOOT)
    assert ranked["auc"].covers(0.5)
    assert ranked["spearman"].covers(0.0)
    assert ranked["decile_spread_r"].covers(0.0)


def test_point_estimates_match_reference_implementations() -> None:
    frame = results_frame(300, seed=3)
    ranked = cal.rank_stats(frame, n_boot=10)
    assert ranked["auc"].estimate == pytest.approx(roc_auc_score(frame["win"],
                                                                 frame["overall_score"]))
    assert ranked["spearman"].estimate == pytest.approx(
        stats.spearmanr(frame["overall_score"], frame["realized_r"]).statistic)
    lo, hi = np.quantile(frame["overall_score"], [0.1, 0.9])
    r, s = frame["realized_r"], frame["overall_score"]
    assert ranked["decile_spread_r"].estimate == pytest.approx(r[s >= hi].mean()
                                                               - r[s <= lo].mean())


def test_bootstrap_intervals_are_deterministic_for_a_seed() -> None:
    frame = results_frame(200, seed=5)
    first = cal.decile_table(frame, n_boot=N_BOOT, seed=7)
    pd.testing.assert_frame_equal(first, cal.decile_table(frame, n_boot=N_BOOT, seed=7))
    assert cal.rank_stats(frame, n_boot=N_BOOT, seed=7) == cal.rank_stats(frame, n_boot=N_BOOT,
                                                                           seed=7)
    other = cal.decile_table(frame, n_boot=N_BOOT, seed=8)
    assert not np.allclose(first["mean_r_low"], other["mean_r_low"])
    assert np.allclose(first["mean_r"], other["mean_r"])


def test_too_few_samples_are_flagged_and_say_so() -> None:
    frame = results_frame(12)
    ranked = cal.rank_stats(frame, n_boot=50)
    assert not ranked["mean_r"].enough
    assert str(ranked["mean_r"]) == "too few samples (n=12)"
    assert str(ranked["auc"]).startswith("too few samples (n=12")
    table = cal.decile_table(frame, n_boot=50)
    assert not table["enough"].any()
    assert table["note"].str.startswith("too few samples (n=").all()
    shown = cal.stats_frame(ranked)
    assert (shown["note"].str.startswith("too few samples")).all()


def test_a_statistic_with_enough_samples_shows_its_interval_and_n() -> None:
    text = str(cal.Statistic(estimate=0.61, low=0.55, high=0.67, n=400, method="x", enough=True,
                             p_value=0.001))
    assert text == "0.61 [0.55, 0.67] (n=400, p=0.001)"
    small_group = cal.Statistic(estimate=0.6, low=0.5, high=0.7, n=200, method="x",
                                enough=False, groups=(190, 10))
    assert str(small_group) == "too few samples (n=200; smallest group 10)"


def test_decile_table_has_ten_bins_of_equal_size_and_rising_mean_r() -> None:
    frame = results_frame(1000, separation=2.0)
    table = cal.decile_table(frame, n_boot=N_BOOT)
    assert table["decile"].tolist() == list(range(1, 11))
    assert table["n"].sum() == 1000
    assert table["n"].between(90, 110).all()
    assert table["mean_r"].iloc[-1] > table["mean_r"].iloc[0]
    assert (table["mean_r_low"] <= table["mean_r"]).all()
    assert (table["mean_r"] <= table["mean_r_high"]).all()
    assert (table["win_rate_low"] <= table["win_rate"]).all()
    assert table["score_low"].is_monotonic_increasing


def test_tied_scores_stay_in_one_bin() -> None:
    frame = results_frame(300)
    frame["overall_score"] = np.repeat([20.0, 50.0, 80.0], 100)
    table = cal.decile_table(frame, n_boot=50)
    assert table["n"].tolist() == [100, 100, 100]
    assert table["decile"].tolist() == [2, 5, 9]  # the decile of each tie group's mean rank
    assert (table["score_low"] == table["score_high"]).all()


def test_fixed_edges_put_outside_scores_in_the_end_bins() -> None:
    frame = results_frame(100)
    table = cal.decile_table(frame, n_boot=20, edges=[40.0, 60.0, 200.0, 300.0])
    s = frame["overall_score"]
    assert table["n"].tolist() == [int((s <= 60).sum()), int((s > 60).sum()), 0]
    assert table["score_high"].tolist() == [60.0, 200.0, 300.0]
    edges = cal.decile_edges(s)
    assert len(edges) == 11
    by_edges = cal.decile_table(frame, n_boot=20, edges=edges)["n"]
    assert by_edges.sum() == 100 and by_edges.between(8, 12).all()  # rounded scores tie


def test_decile_table_ends_agree_with_the_decile_spread() -> None:
    frame = results_frame(600, seed=9)
    table = cal.decile_table(frame, n_boot=20)
    spread = cal.rank_stats(frame, n_boot=20)["decile_spread_r"]
    assert spread.estimate == pytest.approx(table["mean_r"].iloc[-1] - table["mean_r"].iloc[0])
    assert spread.groups == (60, 60)


def test_wilson_interval_matches_the_textbook_value() -> None:
    rate = cal.win_rate_statistic([True] * 8 + [False] * 2)
    assert (rate.estimate, round(rate.low, 4), round(rate.high, 4)) == (0.8, 0.4902, 0.9433)
    assert rate.n == 10 and not rate.enough


def test_spearman_interval_brackets_the_estimate_and_shrinks_with_n() -> None:
    small = cal.rank_stats(results_frame(100, seed=1), n_boot=10)["spearman"]
    large = cal.rank_stats(results_frame(2000, seed=1), n_boot=10)["spearman"]
    for s in (small, large):
        assert s.low < s.estimate < s.high
    assert large.high - large.low < small.high - small.low


def test_open_and_unscored_outcomes_are_left_out() -> None:
    frame = results_frame(50)
    frame.loc[0, "exit_reason"] = "open"
    frame.loc[1, "realized_r"] = math.nan
    frame.loc[2, "overall_score"] = math.nan
    assert len(cal.resolved_outcomes(frame)) == 47
    assert len(cal.resolved_outcomes(frame, None)) == 48
    with pytest.raises(ValueError, match="realized_r"):
        cal.resolved_outcomes(frame.drop(columns="realized_r"))


def test_severity_reliability_lists_every_level_mildest_first() -> None:
    frame = results_frame(600)
    table = cal.severity_reliability(frame, n_boot=N_BOOT)
    assert table["severity"].tolist() == ["info", "low", "medium", "high", "critical"]
    counts = frame["overall_severity"].value_counts()
    assert table.set_index("severity")["n"].to_dict() == {
        level: int(counts.get(level, 0)) for level in table["severity"]}
    info, high = table.set_index("severity").loc[["info", "high"], "mean_r"]
    assert info > high
    assert cal.severity_trend(frame).high < 0
    frame.loc[0, "overall_severity"] = "severe"
    with pytest.raises(ValueError, match="severe"):
        cal.severity_reliability(frame)


def test_calibration_metrics_are_flat_floats_and_deterministic() -> None:
    frame = results_frame(400)
    metrics = cal.calibration_metrics(frame, None, n_boot=N_BOOT)
    assert metrics == cal.calibration_metrics(frame, None, n_boot=N_BOOT)
    assert all(isinstance(v, float) for v in metrics.values())
    for key in ("auc", "auc_low", "auc_high", "spearman", "spearman_low", "spearman_high",
                "spearman_p", "decile_spread_r", "decile_spread_r_low", "decile_spread_r_high",
                "n", "mean_r", "win_rate", "severity_spearman"):
        assert key in metrics
    ranked = cal.rank_stats(frame, n_boot=N_BOOT)
    assert metrics["auc"] == ranked["auc"].estimate and metrics["n"] == 400.0
    assert metrics["auc_low"] == ranked["auc"].low


def test_a_score_tied_through_its_middle_has_no_decile_spread() -> None:
    frame = results_frame(200)
    frame["overall_score"] = 100.0
    frame.loc[:4, "overall_score"] = 95.0
    spread = cal.rank_stats(frame, n_boot=50)["decile_spread_r"]
    assert math.isnan(spread.estimate) and not spread.enough
    assert str(spread) == "scores too tied to form a bottom and a top decile (n=200)"


def test_resampled_statistics_on_weights_equal_the_libraries_on_repeated_rows() -> None:
    # the kept code: AUC and mean R evaluated on many weighted resamples at once
    from replay.calibration import _auc_counts

    rng = np.random.default_rng(11)
    scores = np.round(rng.normal(size=120), 1)  # ties, as rounded scores have
    wins = rng.random(120) > 0.4
    counts = rng.integers(0, 3, size=(5, 120)).astype(float)
    expected = [roc_auc_score(wins, scores, sample_weight=c) for c in counts]
    assert _auc_counts(scores, wins, counts) == pytest.approx(expected)
