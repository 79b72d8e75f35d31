"""Playbooks: clustering, stability, names, placement, novelty and the stored form.

Unit tests run on small synthetic frames with the entry facts' columns (three setups with
known plans); the demo trader's real facts are measured in test_validation.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from buddy.errors import ConfigError
from buddy.strategy.playbooks import (
    PLACE_COLUMNS,
    PlaybookFit,
    PlaybookFitError,
    PlaybookRecipe,
    fit_playbooks,
    playbook_name,
    playbook_tables,
)

FEATURES = ("side_sign", "stop_atr", "reward_risk", "close_ema20_atr", "bb_z", "high20_atr",
            "trend_atr", "rsi_14")
#: side, stop ATR, reward/risk, close-EMA20 ATR, bb_z, high20 ATR, trend ATR, RSI
SETUPS = {"breakout": (1, 1.0, 2.0, 1.5, 1.5, 0.3, 1.0, 65),
          "pullback": (1, 1.5, 2.0, 0.2, 0.3, -1.5, 1.5, 55),
          "fade": (-1, 1.5, 1.5, 2.5, 2.3, 0.5, 0.3, 75)}
SPREAD = (0, 0.01, 0, 0.4, 0.3, 0.3, 0.5, 5)
UNTIL = datetime(2020, 1, 1, tzinfo=UTC)
FAST = PlaybookRecipe(n_resamples=6)


def synthetic(n_per: dict[str, int], seed: int) -> pd.DataFrame:
    """Return entry-facts rows of the SETUPS (setup column kept for the tests)."""
    rng = np.random.default_rng(seed)
    frames = []
    for name, n in n_per.items():
        x = np.asarray(SETUPS[name]) + rng.standard_normal((n, 8)) * np.asarray(SPREAD)
        frame = pd.DataFrame(x, columns=list(FEATURES)).assign(setup=name)
        frame["win"] = rng.random(n) < 0.5
        frame["pnl_r"] = np.where(frame["win"], 1.5, -1.0)
        frames.append(frame)
    out = pd.concat(frames, ignore_index=True)
    out["trade_id"] = [f"T{seed}-{i}" for i in range(len(out))]
    return out


@pytest.fixture(scope="module")
def train() -> pd.DataFrame:
    return synthetic({"breakout": 90, "pullback": 70, "fade": 50}, seed=1)


@pytest.fixture(scope="module")
def fit(train: pd.DataFrame) -> PlaybookFit:
    return fit_playbooks(train, FAST, user_id="u1", fitted_until=UNTIL)


def test_fit_finds_the_setups_numbers_them_by_size_and_names_them(
        fit: PlaybookFit, train: pd.DataFrame) -> None:
    assert fit.method == "hdbscan"
    assert [p.n for p in fit.playbooks] == sorted((p.n for p in fit.playbooks), reverse=True)
    assert [p.number for p in fit.playbooks] == [1, 2, 3]
    labels = fit.training_labels().merge(train[["trade_id", "setup"]], on="trade_id")
    for setup, group in labels.groupby("setup"):
        assert group["playbook_number"].nunique() == 1, setup
    names = {p.number: p.name for p in fit.playbooks}
    assert names[1].startswith("breakout long, uptrend, 1.0 ATR stop, 2.0R")
    assert names[2].startswith("pullback long, uptrend, 1.5 ATR stop")
    assert names[3].startswith("mean reversion short")
    for p in fit.playbooks:
        assert p.stability >= FAST.min_jaccard
        assert p.stats["win_rate"]["n"] == p.n and p.stats["win_rate"]["low"] is not None
        assert p.stats["mean_r"]["low"] <= p.stats["mean_r"]["value"] <= p.stats["mean_r"]["high"]
    assert fit.coverage == pytest.approx(1.0)
    assert fit.n_trades == len(train) and fit.n_left_out == 0
    assert fit.fitted_until == UNTIL


def test_only_stable_clusters_are_published(train: pd.DataFrame) -> None:
    # uniform noise has no structure: whatever hdbscan finds must not survive resampling
    rng = np.random.default_rng(3)
    noise = pd.DataFrame(rng.uniform(-1, 1, (200, 8)), columns=list(FEATURES))
    noise["trade_id"] = [f"N{i}" for i in range(200)]
    fit = fit_playbooks(noise, FAST, user_id="u1", fitted_until=None)
    assert all(fit.stability[p.label] >= FAST.min_jaccard for p in fit.playbooks)
    assert len(fit.playbooks) <= 1
    strict = fit_playbooks(train, PlaybookRecipe(n_resamples=4, min_jaccard=1.0),
                           user_id="u1", fitted_until=None)
    assert {p.label for p in strict.playbooks} == {
        c for c, s in strict.stability.items() if s >= 1.0}


def test_rows_missing_a_feature_are_left_out_counted_and_not_placed(
        fit: PlaybookFit, train: pd.DataFrame) -> None:
    holed = train.copy()
    holed.loc[[0, 5], "reward_risk"] = np.nan
    holed_fit = fit_playbooks(holed, FAST, user_id="u1", fitted_until=None)
    assert holed_fit.n_left_out == 2 and holed_fit.n_trades == len(train) - 2
    placed = fit.place(holed.head(6))
    assert list(placed.columns) == list(PLACE_COLUMNS)
    assert not placed.loc[0, "placed"] and placed.loc[1, "placed"]
    assert pd.isna(placed.loc[0, "playbook_number"]) and np.isnan(placed.loc[0, "p_value"])
    assert np.isnan(placed.loc[0, "novelty"]) and np.isnan(placed.loc[0, "nearest_membership"])


def test_exact_duplicates_are_moved_and_outlier_scores_stay_finite(
        train: pd.DataFrame) -> None:
    doubled = pd.concat([train, train.assign(trade_id=train["trade_id"] + "b")],
                        ignore_index=True)
    fit = fit_playbooks(doubled, FAST, user_id="u1", fitted_until=None)
    assert fit.n_duplicates == len(train)
    assert len(np.unique(fit.x, axis=0)) == len(doubled)
    assert np.isfinite(fit._model.outlier_scores_).all()
    assert len(fit.playbooks) == 3


def test_place_puts_new_setups_in_their_playbooks_and_flags_the_unusual(
        fit: PlaybookFit, train: pd.DataFrame) -> None:
    new = synthetic({"breakout": 10, "pullback": 10, "fade": 10}, seed=2)
    placed = fit.place(new)
    book_of = fit.training_labels().merge(train[["trade_id", "setup"]]).groupby("setup")[
        "playbook_number"].first()
    expected = new["setup"].map(book_of)
    assert (placed["playbook_number"].to_numpy() == expected.to_numpy()).mean() >= 0.9
    inside = placed["playbook_number"].notna()
    assert placed.loc[inside, "membership"].between(0, 1).all()
    assert (placed.loc[inside, "membership"] > 0).all()
    assert (placed["nearest_number"].notna()).all()
    assert (placed["p_value"] >= 0.05).mean() >= 0.8
    odd = new.head(3).assign(stop_atr=4.0, reward_risk=0.5)
    far = fit.place(odd)
    assert (far["p_value"] < 0.01).all()
    assert (far["novelty"] > placed["novelty"].max()).all()
    assert far["nearest_membership"].notna().all()  # nearest is given even for noise


def test_p_value_is_the_conformal_rank_against_leave_one_out_scores(
        fit: PlaybookFit) -> None:
    new = synthetic({"fade": 8}, seed=5)
    placed = fit.place(new)
    ref = fit.reference
    assert len(ref) == fit.n_trades == placed["n_reference"].iloc[0]
    # oracle: the plain definitions, one point at a time
    k = fit.recipe.knn_k
    for i, row in enumerate(fit.vectors(new)[0]):
        d = np.sort(np.linalg.norm(fit.x - row, axis=1))[:k].mean()
        assert placed["novelty"].iloc[i] == pytest.approx(d)
        assert placed["p_value"].iloc[i] == pytest.approx((1 + (ref >= d).sum()) / (len(ref) + 1))
    j = 7
    loo = np.sort(np.linalg.norm(np.delete(fit.x, j, axis=0) - fit.x[j], axis=1))[:k].mean()
    assert ref[j] == pytest.approx(loo)


def test_to_dict_round_trips_through_json_and_refuses_a_tampered_fit(
        fit: PlaybookFit) -> None:
    d = json.loads(json.dumps(fit.to_dict()))
    again = PlaybookFit.from_dict(d)
    new = synthetic({"breakout": 4, "fade": 4}, seed=9)
    pd.testing.assert_frame_equal(fit.place(new), again.place(new))
    assert again.key == fit.key and again.playbooks == fit.playbooks
    assert again.fitted_until == UNTIL
    bad = dict(d, labels=[0] * len(d["labels"]))
    with pytest.raises(PlaybookFitError, match="labels"):
        PlaybookFit.from_dict(bad)
    with pytest.raises(PlaybookFitError, match="key"):
        PlaybookFit.from_dict(dict(d, trade_ids=[*d["trade_ids"][1:], "X"]))
    with pytest.raises(PlaybookFitError, match="schema_version"):
        PlaybookFit.from_dict(dict(d, schema_version=99))


def test_key_depends_on_the_trades_and_the_recipe(train: pd.DataFrame,
                                                  fit: PlaybookFit) -> None:
    other = fit_playbooks(train.iloc[1:], FAST, user_id="u1", fitted_until=None)
    recipe = fit_playbooks(train, PlaybookRecipe(n_resamples=6, knn_k=4), user_id="u1",
                           fitted_until=None)
    assert len({fit.key, other.key, recipe.key}) == 3
    shuffled = fit_playbooks(train.sample(frac=1.0, random_state=0), FAST, user_id="u1",
                             fitted_until=None)
    assert shuffled.key == fit.key


def test_kmeans_below_the_minimum_sample(train: pd.DataFrame) -> None:
    small = synthetic({"breakout": 12, "fade": 12}, seed=4)
    fit = fit_playbooks(small, FAST, user_id="u1", fitted_until=None)
    assert fit.method == "kmeans"
    assert len(fit.playbooks) == 2
    placed = fit.place(synthetic({"breakout": 3, "fade": 3}, seed=6))
    assert placed["playbook_number"].notna().all()
    assert placed["membership"].between(0.5, 1).all()
    again = PlaybookFit.from_dict(json.loads(json.dumps(fit.to_dict())))
    pd.testing.assert_frame_equal(placed, again.place(synthetic({"breakout": 3, "fade": 3},
                                                                seed=6)))


def test_tables_have_the_seed_columns(fit: PlaybookFit) -> None:
    books, members = playbook_tables(fit, UNTIL)
    assert list(books.columns) == ["playbook_id", "user_id", "name", "centroid_vector",
                                   "dispersion_metrics_json", "stats_json", "created_at",
                                   "updated_at"]
    assert list(members.columns) == ["user_id", "playbook_id", "trade_id",
                                     "distance_to_centroid", "created_at"]
    assert len(members) == sum(p.n for p in fit.playbooks)
    assert set(members["playbook_id"]) == set(books["playbook_id"])
    stats = json.loads(books["stats_json"].iloc[0])
    assert stats["n"] == fit.playbooks[0].n and "win_rate" in stats


def test_names_read_the_centroid() -> None:
    assert playbook_name({"side_sign": 1, "stop_atr": 1.5, "trend_atr": 1.2,
                          "close_ema20_atr": 0.3, "high20_atr": -1.0, "bb_z": 0.2}) == (
        "pullback long, uptrend, 1.5 ATR stop")
    assert playbook_name({"side_sign": -1, "bb_z": 2.4, "trend_atr": 0.1}).startswith(
        "mean reversion short, flat trend")


def test_bad_input_names_the_field(train: pd.DataFrame) -> None:
    with pytest.raises(PlaybookFitError, match=r"facts\.columns"):
        fit_playbooks(train.drop(columns=["bb_z"]), FAST, user_id="u1", fitted_until=None)
    with pytest.raises(PlaybookFitError, match=r"facts\.trade_id"):
        fit_playbooks(pd.concat([train.head(3), train.head(1)]), FAST, user_id="u1",
                      fitted_until=None)
    with pytest.raises(ConfigError, match=r"playbooks\.subsample"):
        PlaybookRecipe(subsample=1.0)
    with pytest.raises(ConfigError, match=r"playbooks\.features"):
        PlaybookRecipe(features=("stop_atr", "stop_atr"))
    with pytest.raises(ConfigError, match=r"playbooks\.features"):
        PlaybookRecipe(features=("stop_atr", "pnl_r"))


def test_a_tiny_history_fits_nothing_and_places_without_novelty() -> None:
    tiny = synthetic({"breakout": 2}, seed=8)
    fit = fit_playbooks(tiny, FAST, user_id="u1", fitted_until=None)
    assert fit.playbooks == () and fit.n_trades == 2
    placed = fit.place(synthetic({"breakout": 2}, seed=9))
    assert placed["placed"].all() and placed["playbook_number"].isna().all()
    assert placed["p_value"].isna().all()
    # hdbscan sizes above a (sub)sample's size find no playbook rather than fail
    big = fit_playbooks(synthetic({"breakout": 40, "fade": 30}, seed=10),
                        PlaybookRecipe(n_resamples=3, min_samples=80, min_cluster_size=90,
                                       min_trades_hdbscan=60), user_id="u1",
                        fitted_until=None)
    assert big.method == "hdbscan" and big.playbooks == ()
