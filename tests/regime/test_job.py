"""The regime job on a small synthetic universe: a row per bar, a model per refit, nothing on a
second run, an incremental run equal to a full one, and the same rows from two processes or
from features computed on the fly."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from buddy.data.synth import synth_universe
from buddy.jobs.features import run_features_job
from buddy.jobs.regime import run_regime_job
from buddy.regime.hmm import refit_schedule
from buddy.regime.snapshots import RegimeConfig
from buddy.store import Store
from buddy.timeframes import Timeframe

N_SYMBOLS, YEARS, SEED = 3, 3, 5


def synth_store(path: Path, *, cut: int | None = None, features: bool = True) -> Store:
    """Return a store with the synthetic universe's first ``cut`` bars per symbol."""
    universe = synth_universe(n_symbols=N_SYMBOLS, years=YEARS, timeframe=Timeframe.D1,
                              seed=SEED)
    bars = universe.bars
    if cut is not None:
        bars = bars.groupby("symbol", group_keys=False).head(cut)
    store = Store(path)
    store.write_market_data(tickers=universe.tickers, bars=bars)
    if features:
        run_features_job(store, progress=False)
    return store


def extend(store: Store) -> None:
    """Write the rest of the synthetic bars and their features into a cut store."""
    store.write_market_data(bars=synth_universe(n_symbols=N_SYMBOLS, years=YEARS,
                                                timeframe=Timeframe.D1, seed=SEED).bars)
    run_features_job(store, progress=False)


def snapshots(store: Store) -> pd.DataFrame:
    return store.query("SELECT * EXCLUDE (computed_at) FROM regime_snapshots "
                       "ORDER BY symbol, timeframe, ts")


def models(store: Store) -> pd.DataFrame:
    return store.query("SELECT * EXCLUDE (computed_at) FROM regime_models "
                       "ORDER BY symbol, timeframe, ts")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """Return the synthetic store after one full run of the regime job in this process."""
    store = synth_store(tmp_path_factory.mktemp("regime") / "buddy.duckdb")
    result = run_regime_job(store, workers=1, progress=False)
    assert result.series_updated == N_SYMBOLS
    return store


def test_one_row_per_bar_and_one_model_per_refit(store: Store) -> None:
    bars = store.query("SELECT symbol, count(*) AS n FROM bars GROUP BY ALL ORDER BY symbol")
    rows = snapshots(store)
    assert rows.groupby("symbol").size().tolist() == bars["n"].tolist()
    config = RegimeConfig()
    fits = models(store)
    n_refits = len(refit_schedule(int(bars["n"].iloc[0]), config.hmm))
    assert fits.groupby("symbol").size().tolist() == [n_refits] * N_SYMBOLS
    assert set(rows["version"]) == {config.version}
    assert set(fits["model_version"]) == {config.hmm.model_version}
    assert (fits["fitted_through"] == fits["ts"]).all()
    # Each snapshot names the model in force: the last refit at or before its bar.
    one = rows[rows["symbol"] == "SYN0001"].reset_index(drop=True)
    refit_ts = fits[fits["symbol"] == "SYN0001"]["ts"].to_numpy()
    with_hmm = one["fitted_through"].notna()
    assert not with_hmm.iloc[:config.hmm.min_fit_bars - 1].any()
    assert with_hmm.iloc[config.hmm.min_fit_bars - 1:].all()
    expected = refit_ts[refit_ts.searchsorted(one["ts"][with_hmm].to_numpy(), "right") - 1]
    assert (one["fitted_through"][with_hmm].to_numpy() == expected).all()
    assert set(one["hmm_state_label"].dropna()) == {"calm", "volatile"}
    probs = one["hmm_probs_json"].dropna().map(json.loads)
    assert probs.map(sum).between(1 - 1e-9, 1 + 1e-9).all()
    params = json.loads(fits["params_json"].iloc[0])
    assert params["window_start"] == 0 and params["labels"] == ["calm", "volatile"]


def test_computed_at_is_when_the_job_ran(store: Store) -> None:
    """Both tables stamp the run's wall-clock time (it was once stored in the wrong unit,
    some 56,000 years ahead)."""
    stamps = store.query("SELECT (SELECT min(computed_at) FROM regime_snapshots) AS lo, "
                         "(SELECT max(computed_at) FROM regime_snapshots) AS hi, "
                         "(SELECT max(computed_at) FROM regime_models) AS fit")
    now = pd.Timestamp.now(tz="UTC")
    for column in ("lo", "hi", "fit"):
        stamp = pd.Timestamp(stamps[column].iloc[0])
        assert now - pd.Timedelta(hours=1) < stamp <= now, (column, stamp)


def test_a_second_run_writes_nothing(store: Store) -> None:
    before = snapshots(store)
    result = run_regime_job(store, workers=1, progress=False)
    assert (result.series_updated, result.snapshot_rows, result.model_rows) == (0, 0, 0)
    assert result.series == N_SYMBOLS
    pd.testing.assert_frame_equal(snapshots(store), before)


def test_an_incremental_run_equals_a_full_run(store: Store, tmp_path: Path) -> None:
    cut = synth_store(tmp_path / "cut.duckdb", cut=400)
    run_regime_job(cut, workers=1, progress=False)
    extend(cut)
    result = run_regime_job(cut, workers=1, progress=False)
    assert result.series_updated == N_SYMBOLS
    n_bars = int(store.query("SELECT count(*) FROM bars WHERE symbol = 'SYN0001'").iloc[0, 0])
    assert result.snapshot_rows == N_SYMBOLS * (n_bars - 400)
    new_refits = [d for d, _ in refit_schedule(n_bars, RegimeConfig().hmm) if d >= 400]
    assert new_refits and result.model_rows == N_SYMBOLS * len(new_refits)
    pd.testing.assert_frame_equal(snapshots(cut), snapshots(store))
    pd.testing.assert_frame_equal(models(cut), models(store))


def test_two_processes_and_features_computed_from_bars_give_the_same_rows(
        store: Store, tmp_path: Path) -> None:
    bare = synth_store(tmp_path / "bare.duckdb", features=False)
    assert bare.query("SELECT count(*) FROM ta_features").iloc[0, 0] == 0
    result = run_regime_job(bare, workers=2, progress=False)
    assert result.series_updated == N_SYMBOLS
    pd.testing.assert_frame_equal(snapshots(bare), snapshots(store))
    pd.testing.assert_frame_equal(models(bare), models(store))


def test_a_full_run_rewrites_and_a_symbol_filter_limits_the_work(store: Store) -> None:
    result = run_regime_job(store, symbols=["syn0002"], workers=1, progress=False, full=True)
    assert (result.series, result.series_updated) == (1, 1)
    assert result.snapshot_rows == int(store.query(
        "SELECT count(*) FROM bars WHERE symbol = 'SYN0002'").iloc[0, 0])
