"""The strategy profile: statistics on small synthetic facts frames with the documented columns
(known answers), then the demo trader through the store, the job and the command line."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from buddy.errors import FieldErrors
from buddy.strategy.profile import (
    MIN_TRADES,
    Clause,
    StrategyProfile,
    build_profile,
    drift_check,
    profile_drift,
)
from tests.strategy.factories import synthetic_facts

AS_OF = datetime(2012, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def facts() -> pd.DataFrame:
    return synthetic_facts()


@pytest.fixture(scope="module")
def profile(facts: pd.DataFrame) -> StrategyProfile:
    return build_profile(facts, user_id="u", as_of=AS_OF)


def test_numeric_facts_carry_median_interval_usual_range_and_winners_vs_losers(
        facts: pd.DataFrame, profile: StrategyProfile) -> None:
    stop = next(s for s in profile.numeric if s.feature == "stop_atr")
    values = facts["stop_atr"].to_numpy()
    assert stop.n == len(facts) and stop.n_missing == 0
    assert stop.median.value == pytest.approx(np.median(values))
    assert stop.median.low < stop.median.value < stop.median.high
    lo, hi, n = profile.usual_range("stop_atr")
    assert (lo, hi, n) == pytest.approx((*np.quantile(values, [0.1, 0.9]), len(facts)))
    win = facts["pnl"] > 0
    assert stop.winners.n == win.sum() and stop.losers.n == (~win).sum()
    assert stop.difference.value == pytest.approx(
        np.median(values[win]) - np.median(values[~win]))
    assert stop.difference.low <= stop.difference.value <= stop.difference.high
    # a fact missing from some rows is left out of its n, never imputed
    level = next(s for s in profile.numeric if s.feature == "level_ahead_atr")
    assert level.n == facts["level_ahead_atr"].notna().sum()
    assert level.n + level.n_missing == len(facts)


def test_categorical_values_have_share_win_rate_and_mean_r_with_intervals(
        facts: pd.DataFrame, profile: StrategyProfile) -> None:
    shorts = next(c for c in profile.categorical if c.feature == "side" and c.value == "short")
    rows = facts["side"] == "short"
    assert shorts.n == rows.sum()
    assert shorts.share.value == pytest.approx(rows.mean())
    assert shorts.win_rate.value == pytest.approx((facts.loc[rows, "pnl"] > 0).mean())
    assert shorts.mean_r.value == pytest.approx(facts.loc[rows, "pnl_r"].mean())
    assert shorts.mean_r.low < shorts.mean_r.value < shorts.mean_r.high
    weekdays = {c.value for c in profile.categorical if c.feature == "weekday"}
    assert weekdays == {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday"}


def test_the_planted_red_flag_is_found_with_n_and_interval_and_matches_its_rows(
        facts: pd.DataFrame, profile: StrategyProfile) -> None:
    flag = next(f for f in profile.red_flags if f.key == "side=short&regime=uptrend")
    rows = ((facts["side"] == "short") & (facts["regime"] == "uptrend")).to_numpy()
    assert flag.n_in == rows.sum() and flag.n_out == (~rows).sum()
    assert flag.mean_r_in == pytest.approx(facts.loc[rows, "pnl_r"].mean())
    assert flag.difference.high < 0 and flag.p_adjusted < 0.05
    assert flag.p_adjusted >= flag.p_value  # Holm never lowers a p-value
    np.testing.assert_array_equal(flag.matches(facts), rows)
    assert profile.n_flags_tested > len(profile.red_flags)


def test_no_red_flag_without_a_real_difference() -> None:
    clean = build_profile(synthetic_facts(bad_r=0.0, seed=3), user_id="u", as_of=AS_OF)
    assert clean.n_flags_tested > 20
    assert clean.red_flags == ()


def test_a_missing_fact_never_matches_a_clause() -> None:
    frame = pd.DataFrame({"alignment": [-0.5, np.nan, 0.2, None]})
    np.testing.assert_array_equal(Clause("alignment", "lt", 0.0).matches(frame),
                                  [True, False, False, False])
    assert not Clause("regime", "eq", "uptrend").matches(frame).any()


def test_below_the_minimum_the_profile_says_not_enough_trades(facts: pd.DataFrame) -> None:
    small = build_profile(facts.head(MIN_TRADES - 1), user_id="u", as_of=AS_OF)
    assert not small.enough and small.numeric == () and small.red_flags == ()
    assert "not enough trades" in small.reason
    assert small.usual_range("stop_atr") is None
    assert small.n_trades == MIN_TRADES - 1


def test_open_trades_are_left_out_and_later_closes_refused(facts: pd.DataFrame) -> None:
    with_open = facts.copy()
    with_open.loc[:9, "close_ts"] = pd.NaT
    profile = build_profile(with_open, user_id="u", as_of=AS_OF)
    assert profile.n_trades == len(facts) - 10 and profile.n_open_left_out == 10
    with pytest.raises(FieldErrors) as error:
        build_profile(facts, user_id="u", as_of=datetime(2011, 1, 1, tzinfo=UTC))
    assert error.value.fields == ("close_ts",)


def test_bad_input_names_the_field(facts: pd.DataFrame) -> None:
    with pytest.raises(FieldErrors) as error:
        build_profile(facts.drop(columns=["pnl_r", "close_ts"]), user_id="u", as_of=AS_OF)
    assert set(error.value.fields) == {"pnl_r", "close_ts"}
    with pytest.raises(FieldErrors) as error:
        build_profile(facts, user_id="u", as_of=datetime(2012, 1, 1))
    assert error.value.fields == ("as_of",)


def test_an_absent_fact_is_not_checked(facts: pd.DataFrame) -> None:
    profile = build_profile(facts.drop(columns=["level_ahead_atr"]), user_id="u", as_of=AS_OF)
    level = next(s for s in profile.numeric if s.feature == "level_ahead_atr")
    assert not level.checked and profile.usual_range("level_ahead_atr") is None
    assert "not checked" in profile.text()


def test_the_profile_is_independent_of_row_order_and_round_trips_as_json(
        facts: pd.DataFrame, profile: StrategyProfile) -> None:
    shuffled = facts.sample(frac=1.0, random_state=7)
    assert build_profile(shuffled, user_id="u", as_of=AS_OF) == profile
    again = StrategyProfile.from_dict(json.loads(json.dumps(profile.to_dict())))
    assert again == profile and again.text() == profile.text()
    assert again.usual_range("stop_atr") == profile.usual_range("stop_atr")


def test_drift_finds_a_moved_stop_and_needs_its_minimum_counts() -> None:
    as_of = datetime(2011, 7, 1, tzinfo=UTC)
    recent = synthetic_facts(30, seed=4, start=as_of - timedelta(days=27), days=20)
    prior = synthetic_facts(60, seed=5, start=as_of - timedelta(days=88), days=50)
    prior = prior[pd.to_datetime(prior["close_ts"]) <= as_of - timedelta(days=30)]
    recent = recent[pd.to_datetime(recent["close_ts"]) <= as_of]
    recent = recent.assign(stop_atr=recent["stop_atr"] + 1.5,
                           trade_id=[f"r{i}" for i in range(len(recent))])
    frame = pd.concat([prior, recent], ignore_index=True)
    check = drift_check(frame, as_of)
    assert check.checked and check.n_recent == len(recent) and check.n_prior == len(prior)
    assert [d.feature for d in check.drifts] == ["stop_atr"]
    assert profile_drift(frame, as_of) == list(check.drifts)
    moved = check.drifts[0]
    assert moved.recent_median > moved.prior_median and moved.p_adjusted < 0.05
    short = drift_check(frame, as_of, min_recent=len(recent) + 1)
    assert not short.checked and short.drifts == () and "at least" in short.reason
