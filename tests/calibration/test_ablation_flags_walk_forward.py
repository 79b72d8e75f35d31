"""Per-module ablation, flag-to-outcome accounting and walk-forward splits."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from buddy.config import default_scoring_config
from replay import calibration as cal
from tests.calibration.synthetic import WEIGHTS, issues_frame, results_frame

N_BOOT = 400


# --- recomputed score and ablation ---------------------------------------------------------

def test_recomputed_score_is_the_orchestrators_weighted_mean_over_scored_modules() -> None:
    frame = results_frame(50)
    assert np.allclose(cal.recompute_score(frame, WEIGHTS), frame["overall_score"], atol=0.05)
    frame.loc[0, "score__risk_reward"] = math.nan
    frame.loc[1, ["score__risk_reward", "score__exit_plan", "score__data_quality"]] = math.nan
    score = cal.recompute_score(frame, WEIGHTS)
    expected = (100.0 * 1 + frame.loc[0, "score__exit_plan"] * 2) / 3
    assert score[0] == pytest.approx(expected)
    assert math.isnan(score[1])
    with pytest.raises(ValueError, match="missing_module"):
        cal.recompute_score(frame, {"missing_module": 1.0})


def test_dropping_a_useless_module_does_not_change_separation() -> None:
    table = cal.ablation(results_frame(600), weights=WEIGHTS, n_boot=N_BOOT).set_index("module")
    useless = table.loc["data_quality"]
    for metric in ("auc", "spearman", "decile_spread_r"):
        assert useless[f"{metric}_change"] == pytest.approx(0.0, abs=1e-12)
        assert useless[f"{metric}_change_low"] == pytest.approx(0.0, abs=1e-12)
        assert useless[f"{metric}_change_high"] == pytest.approx(0.0, abs=1e-12)
    helpful = table.loc["risk_reward"]
    assert helpful["auc_change_high"] < 0 and helpful["spearman_change_high"] < 0
    assert helpful["auc_without"] == pytest.approx(helpful["auc_full"] + helpful["auc_change"])
    assert table["n"].tolist() == [600, 600, 600]
    assert table["weight"].to_dict() == WEIGHTS


def test_ablation_matches_rank_stats_of_the_recomputed_scores() -> None:
    frame = results_frame(300, seed=2)
    row = cal.ablation(frame, weights=WEIGHTS, n_boot=20).set_index("module").loc["exit_plan"]
    frame["without"] = cal.recompute_score(frame, WEIGHTS, drop=["exit_plan"])
    assert row["auc_without"] == pytest.approx(cal.rank_stats(frame, "without",
                                                              n_boot=1)["auc"].estimate)


def test_ablation_takes_weights_from_a_scoring_config_and_names_missing_weights() -> None:
    config = default_scoring_config()
    weights = cal.weights_of(config)
    frame = results_frame(100)
    for module in weights:
        if f"score__{module}" not in frame:
            frame[f"score__{module}"] = 50.0
    table = cal.ablation(frame, weights=config, n_boot=20)
    assert table["module"].tolist() == list(weights)
    with pytest.raises(ValueError, match="no weight for module"):
        cal.ablation(frame, modules=["risk_reward", "nope"], weights={"risk_reward": 1.0})


def test_ablation_is_deterministic_for_a_seed() -> None:
    frame = results_frame(200)
    pd.testing.assert_frame_equal(cal.ablation(frame, weights=WEIGHTS, n_boot=100, seed=4),
                                  cal.ablation(frame, weights=WEIGHTS, n_boot=100, seed=4))


# --- flag table ----------------------------------------------------------------------------

def _hand_frame() -> pd.DataFrame:
    r = [2.0, -1.0, 1.0, -1.0, 0.5, -0.5]
    return pd.DataFrame({"run_id": "run-1", "intent_id": [f"i{k}" for k in range(6)],
                         "realized_r": r, "win": [x > 0 for x in r], "exit_reason": "stop",
                         "overall_score": 50.0, "overall_severity": "info"})


def test_flag_table_means_match_hand_computed_values() -> None:
    issues = issues_frame([("i0", "risk_reward", "RR_BELOW_MIN"),
                           ("i1", "risk_reward", "RR_BELOW_MIN"),
                           ("i1", "risk_reward", "RR_BELOW_MIN"),  # fired twice: counted once
                           ("i3", "exit_plan", "NO_TARGET"),
                           ("i4", "exit_plan", "NO_TARGET"),
                           ("i5", "exit_plan", "NO_TARGET")])
    table = cal.flag_table(_hand_frame(), issues, n_boot=200).set_index("code")
    rr = table.loc["RR_BELOW_MIN"]
    assert (rr["n_fired"], rr["n_not_fired"]) == (2, 4)
    assert rr["mean_r_fired"] == pytest.approx((2.0 - 1.0) / 2)
    assert rr["mean_r_not_fired"] == pytest.approx((1.0 - 1.0 + 0.5 - 0.5) / 4)
    assert rr["diff_r"] == pytest.approx(0.5)
    assert rr["win_rate_fired"] == pytest.approx(0.5)
    target = table.loc["NO_TARGET"]
    assert (target["n_fired"], target["n_not_fired"]) == (3, 3)
    assert target["mean_r_fired"] == pytest.approx(-1.0 / 3)
    assert target["mean_r_not_fired"] == pytest.approx(2.0 / 3)
    assert target["modules"] == "exit_plan"
    assert table.index.tolist() == ["NO_TARGET", "RR_BELOW_MIN"]  # most fired first
    assert not table["enough"].any()
    assert table["note"].str.startswith("too few samples (n=6").all()
    for col in ("mean_r_fired", "mean_r_not_fired"):
        assert (table[f"{col}_low"] <= table[col]).all()
        assert (table[col] <= table[f"{col}_high"]).all()
    # with 2-3 intents per group some resamples draw a group empty: no interval, not a guess
    assert table["diff_r_low"].isna().all() and table["diff_r_high"].isna().all()


def test_flag_table_matches_issues_to_intents_within_their_run() -> None:
    frame = pd.concat([_hand_frame(), _hand_frame().assign(run_id="run-2")], ignore_index=True)
    issues = issues_frame([("i0", "risk_reward", "RR_BELOW_MIN")], run_id="run-2")
    row = cal.flag_table(frame, issues, n_boot=50).iloc[0]
    assert (row["n_fired"], row["n_not_fired"]) == (1, 11)


def test_flag_table_separates_a_flag_that_marks_losers() -> None:
    frame = results_frame(600)
    losers = frame.loc[frame["realized_r"] < -0.5, "intent_id"]
    random_pick = frame["intent_id"].sample(150, random_state=1)
    issues = issues_frame([(i, "m", "MARKS_LOSERS") for i in losers]
                          + [(i, "m", "RANDOM") for i in random_pick])
    table = cal.flag_table(frame, issues, n_boot=N_BOOT).set_index("code")
    assert table.loc["MARKS_LOSERS", "diff_r_high"] < 0
    assert table.loc["RANDOM", "diff_r_low"] < 0 < table.loc["RANDOM", "diff_r_high"]
    assert table["enough"].all()
    metrics = cal.calibration_metrics(frame, issues, n_boot=100)
    assert metrics["flag__MARKS_LOSERS__n_fired"] == float(len(losers))
    assert metrics["flag__MARKS_LOSERS__diff_r"] == pytest.approx(
        table.loc["MARKS_LOSERS", "diff_r"])


def test_flag_table_of_no_issues_is_empty_with_its_columns() -> None:
    table = cal.flag_table(results_frame(50), issues_frame([]), n_boot=10)
    assert table.empty and "diff_r_low" in table.columns


# --- walk-forward --------------------------------------------------------------------------

def test_walk_forward_single_split_puts_earlier_years_in_sample() -> None:
    frame = results_frame(600, years=(2008, 2011))
    years = pd.to_datetime(frame["as_of"]).dt.year
    table = cal.walk_forward(frame, 2010, n_boot=N_BOOT)
    assert table["sample"].tolist() == ["in-sample", "out-of-sample"]
    inside, outside = table.iloc[0], table.iloc[1]
    assert inside["n"] == (years < 2010).sum() and outside["n"] == (years >= 2010).sum()
    assert (inside["first_year"], inside["last_year"]) == (2008, 2009)
    assert (outside["first_year"], outside["last_year"]) == (2010, 2011)
    assert outside["auc_low"] > 0.5


def test_walk_forward_splits_expand_the_window_and_stop_at_the_next_cut() -> None:
    frame = results_frame(800, years=(2008, 2011))
    years = pd.to_datetime(frame["as_of"]).dt.year
    table = cal.walk_forward(frame, splits=[2009, 2011], n_boot=50)
    assert table["split"].tolist() == [2009, 2009, 2011, 2011]
    assert table["n"].tolist() == [(years < 2009).sum(), years.between(2009, 2010).sum(),
                                   (years < 2011).sum(), (years == 2011).sum()]
    default = cal.walk_forward(frame, n_boot=50)
    assert default["split"].unique().tolist() == [2009, 2010, 2011]
    assert (default.loc[default["sample"] == "out-of-sample", "first_year"]
            == default.loc[default["sample"] == "out-of-sample", "last_year"]).all()
    with pytest.raises(ValueError, match="ascending"):
        cal.walk_forward(frame, splits=[2011, 2009])


def test_walk_forward_applies_in_sample_decile_bounds_out_of_sample() -> None:
    frame = results_frame(400, years=(2008, 2009))
    year = pd.to_datetime(frame["as_of"]).dt.year
    early, late = frame[year == 2008], frame[year == 2009]
    low, high = np.quantile(early["overall_score"], [0.1, 0.9])
    s, r = late["overall_score"], late["realized_r"]
    expected = r[s >= high].mean() - r[s <= low].mean()
    table = cal.walk_forward(frame, 2009, n_boot=50)
    assert table.iloc[1]["decile_spread_r"] == pytest.approx(expected)
