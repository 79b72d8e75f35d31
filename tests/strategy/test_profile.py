"""The strategy profile: statistics on small synthetic facts frames with the documented columns
(known answers), then the demo trader through the store, the job and the command line."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from buddy.cli import cli
from buddy.errors import FieldErrors
from buddy.jobs.profiles import profile_as_of, run_profile_job
from buddy.jobs.strategy import refresh_entry_facts
from buddy.store import Store
from buddy.store.strategy import read_profile
from buddy.strategy.profile import (
    MIN_TRADES,
    Clause,
    StrategyProfile,
    build_profile,
    drift_check,
    holm,
    profile_drift,
)
from tests.strategy.conftest import DEMO_USER
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


# ------------------------------------------------------------------------------ demo trader
def _closes(facts: pd.DataFrame) -> pd.Series:
    return pd.to_datetime(facts["close_ts"], utc=True).dropna().sort_values()


def test_the_demo_profile_as_of_t_equals_one_from_a_store_of_the_trades_closed_by_t(
        demo_store: Store, demo_facts: pd.DataFrame, demo_store_copy: Callable[[], Store]
) -> None:
    t = _closes(demo_facts).iloc[59].to_pydatetime()  # the 60th close
    expected = profile_as_of(demo_store, DEMO_USER, t)
    assert expected.enough and expected.n_trades == 60
    store = demo_store_copy()
    with store.transaction() as con:  # the store as it would be with nothing after t
        con.execute("DELETE FROM trade_entry_facts WHERE user_id = ?", [DEMO_USER])
        con.execute("DELETE FROM trades WHERE user_id = ? AND (close_ts IS NULL "
                    "OR close_ts > ?)", [DEMO_USER, t])
    refresh_entry_facts(store, DEMO_USER)  # facts rebuilt from the short store alone
    assert profile_as_of(store, DEMO_USER) == expected  # as of its newest close, t
    assert profile_as_of(store, DEMO_USER, t) == expected


def test_the_demo_profile_finds_the_injected_stops_and_targets(
        demo_store: Store, demo_facts: pd.DataFrame) -> None:
    profile = profile_as_of(demo_store, DEMO_USER)
    closed = demo_facts[demo_facts["close_ts"].notna()]
    assert profile.n_trades == len(closed)
    assert profile.as_of == _closes(demo_facts).iloc[-1].to_pydatetime()
    # every planned setup's stop is 1.0 or 1.5 ATR and its target 1.5 or 2 R
    # (buddy.trades.demo_history); trades without an intent have no plan and no stop_atr
    lo, hi, n = profile.usual_range("stop_atr")
    assert lo >= 0.95 and hi <= 1.55
    assert n == closed["stop_atr"].notna().sum() < len(closed)
    lo, hi, _ = profile.usual_range("reward_risk")
    assert lo >= 1.45 and hi <= 2.05
    sides = {c.value: c.n for c in profile.categorical if c.feature == "side"}
    assert sides == closed["side"].value_counts().to_dict()
    for flag in profile.red_flags:  # each flag is what its rows say
        rows = flag.matches(closed)
        assert rows.sum() >= flag.n_in and flag.difference.high < 0


def test_the_job_stores_a_new_version_and_the_command_prints_it(
        demo_store: Store, demo_store_copy: Callable[[], Store]) -> None:
    store = demo_store_copy()
    first = run_profile_job(store)  # every user: the demo trader, as of its newest close
    assert [(r.user_id, r.version) for r in first.profiles] == [(DEMO_USER, 1)]
    stored = read_profile(store, DEMO_USER)
    assert stored is not None and stored["version"] == 1
    profile = StrategyProfile.from_dict(stored["profile"])
    assert profile.as_of == first.profiles[0].as_of and profile.enough
    assert stored["baseline_stats"] == profile.baseline_stats()
    assert stored["baseline_stats"]["win_rate"]["low"] < profile.win_rate.value

    runner = CliRunner()  # the command prints what the job stored (it writes nothing)
    out = runner.invoke(cli, ["--db", str(store.path), "profile", "--user", DEMO_USER])
    assert out.exit_code == 0, out.output
    assert out.output.strip() == profile.text()
    day = f"{profile.as_of - timedelta(days=12 * 365):%Y-%m-%d}"
    out = runner.invoke(cli, ["--db", str(store.path), "profile", "--user", DEMO_USER,
                              "--as-of", day, "--json"])
    assert out.exit_code == 0, out.output
    earlier = json.loads(out.output)
    assert earlier["as_of"].startswith(f"{day}T23:59:59")
    assert 0 < earlier["n_trades"] < profile.n_trades
    again = run_profile_job(store, DEMO_USER, as_of=datetime.fromisoformat(earlier["as_of"]))
    assert again.profiles[0].version == 2
    assert read_profile(store, DEMO_USER)["profile"] == earlier
    bad = runner.invoke(cli, ["--db", str(demo_store.path), "profile", "--user", DEMO_USER,
                              "--as-of", "2012-13-40"])
    assert bad.exit_code == 2 and "as_of" in bad.output


def test_holm_matches_statsmodels() -> None:
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(0)
    for p in (rng.uniform(0, 0.2, 30), np.array([0.01, 0.04, 0.03, 0.005]), np.array([0.5])):
        np.testing.assert_allclose(holm(p), multipletests(p, method="holm")[1])
