"""The look-ahead test on the real sample data: the regime computed at t from data truncated at
t equals the one the job computed at t from the full history, for many t."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from buddy.features.ta import compute_features
from buddy.jobs.regime import run_regime_job
from buddy.regime.hmm import refit_schedule
from buddy.regime.provider import regime_at
from buddy.regime.snapshots import (
    RegimeConfig,
    compute_series,
    incomplete_reason,
    series_snapshot,
    snapshot_from_row,
)
from buddy.store import Store
from tests.evaluators.test_point_in_time_cases import PIT_POINTS

#: More as-of points: AAPL on its 2005-02-28 split day, EURUSD 1h in the thin Christmas
#: session, SP500 weekly.
EXTRA_PIT_POINTS = [
    ("AAPL", "1d", "2005-02-28T21:00Z"),
    ("EURUSD", "1h", "2017-12-25T15:00Z"),
    ("SP500", "1w", "2008-10-10T21:00Z"),
]
#: Series whose every bar the in-memory test may check, with bar positions to include.
SERIES = [("AAPL", "1d"), ("EURUSD", "1h"), ("SP500", "1w")]
RANDOM_POINTS = 2
#: Bars before every rule state is defined (rv_20's 21 bars + vol_z's 60-bar minimum - 1).
WARM_UP_BARS = 80
SEED = 20240611


@pytest.fixture(scope="module")
def job_store(sample_store: Store, tmp_path_factory: pytest.TempPathFactory) -> Store:
    """Return a copy of the sample store after the regime job over the checked series."""
    path = tmp_path_factory.mktemp("regime_pit") / "buddy.duckdb"
    shutil.copy(sample_store.path, path)
    store = Store(path)
    pairs = {(s, tf) for s, tf, _ in PIT_POINTS + EXTRA_PIT_POINTS} | set(SERIES)
    for tf in sorted({tf for _, tf in pairs}):
        run_regime_job(store, symbols=sorted({s for s, t in pairs if t == tf}),
                       timeframes=[tf], workers=2, progress=False)
    return store


def stored(store: Store, symbol: str, tf: str, ts: pd.Timestamp) -> dict:
    rows = store.query("SELECT * FROM regime_snapshots WHERE symbol = ? AND timeframe = ? "
                       "AND ts = ?", [symbol, tf, ts])
    assert len(rows) == 1
    return rows.iloc[0].to_dict()


def positions(bars: pd.DataFrame, splits: pd.DataFrame, config: RegimeConfig, seed: int
              ) -> list[int]:
    """Return bar positions to check: warm-up edges, each side of the first two refits and
    of each split, the last bar, and a few seeded random ones."""
    n = len(bars)
    refits = [d for d, _ in refit_schedule(n, config.hmm)][:2]
    points = {30, n - 1, *(d + k for d in refits for k in (-1, 0, 1))}
    sessions = pd.to_datetime(bars["session"]).to_numpy()
    for ex_date in pd.to_datetime(splits["ex_date"]).to_numpy():
        first_after = int(np.searchsorted(sessions, ex_date))
        points |= {first_after - 1, first_after}
    rng = np.random.default_rng(seed)
    points |= set(rng.choice(n, size=RANDOM_POINTS, replace=False).tolist())
    return sorted(p for p in points if 0 <= p < n)


@pytest.mark.parametrize(("symbol", "tf"), SERIES)
def test_regime_at_t_from_bars_up_to_t_equals_the_full_runs(
        sample_store: Store, job_store: Store, symbol: str, tf: str) -> None:
    config = RegimeConfig()
    bars = sample_store.bars(symbol, tf)
    actions = sample_store.corporate_actions(symbol)
    checked = with_hmm = 0
    for p in positions(bars, actions, config, SEED + len(symbol)):
        known_bars = bars.iloc[:p + 1]
        session = pd.Timestamp(known_bars["session"].iloc[-1])
        known_splits = actions[pd.to_datetime(actions["ex_date"]) <= session]
        features = compute_features(known_bars, known_splits)  # from the truncated history
        series = compute_series(known_bars, features, known_splits, config, start=p)
        truncated, reason = series_snapshot(series, config)
        row = stored(job_store, symbol, tf, bars["ts"].iloc[p])
        full_reason = incomplete_reason(row)
        assert reason == full_reason, (symbol, tf, p)
        if truncated is not None:
            assert truncated == snapshot_from_row(row), (symbol, tf, p)
            with_hmm += truncated.hmm_state_id is not None
        checked += 1
    assert checked >= 10 and with_hmm >= 6  # not vacuous: most points carry an HMM state


def _as_of(text: str) -> datetime:
    return pd.Timestamp(text).to_pydatetime()


@pytest.mark.parametrize(("symbol", "tf", "as_of"), PIT_POINTS + EXTRA_PIT_POINTS)
def test_regime_from_a_store_truncated_at_t_equals_the_full_stores(
        job_store: Store, truncated_store: Callable[[str, datetime], Store], symbol: str,
        tf: str, as_of: str) -> None:
    t = _as_of(as_of)
    from_full, full_reason = regime_at(job_store, symbol, tf, t)  # the job's stored row
    from_cut, cut_reason = regime_at(truncated_store(symbol, t), symbol, tf, t)  # on demand
    assert from_cut == from_full
    assert cut_reason == full_reason
    known = job_store.query("SELECT max(ts) AS last_ts, count(*) AS n FROM bars WHERE "
                            "symbol = ? AND timeframe = ? AND ts_close <= ?", [symbol, tf, t])
    n_bars = int(known["n"].iloc[0])
    # Not vacuous: with enough history there is a regime, and an HMM state once fitted.
    assert (from_full is None) == (n_bars < WARM_UP_BARS)
    if from_full is not None:
        assert pd.Timestamp(from_full.ts) == pd.Timestamp(known["last_ts"].iloc[0])
        assert (from_full.hmm_state_id is not None) == (
            n_bars >= RegimeConfig().hmm.min_fit_bars)
