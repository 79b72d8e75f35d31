"""Regime benchmarks: the job against the bare hmmlearn fits it makes, and the job at scale."""

from __future__ import annotations

import shutil
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

from threadpoolctl import threadpool_limits

from benchmarks.suites import Line, Timer, ratio_line
from buddy.jobs.features import run_features_job
from buddy.jobs.load import synth_into
from buddy.jobs.regime import run_regime_job
from buddy.regime.hmm import hmm_features, new_model, refit_schedule, standardise_window
from buddy.regime.snapshots import RegimeConfig, series_inputs
from buddy.store import Store
from buddy.timeframes import Timeframe

SCALE_SYMBOLS, SCALE_YEARS = 500, 10
RATIO_SYMBOLS = 10
REPEATS = 5


def regime_suite(workdir: Path, timer: Timer) -> Iterator[Line]:
    """Yield (1) the regime job's time against the bare hmmlearn fits of the same
    walk-forward schedules on the same series (goal <= 1.2x), for a run over 10 series and,
    for reference, a run over one; (2) the job's time on 500 synthetic symbols x 10 years of
    daily bars on two processes, with the volatility regimes it recovers."""
    yield _against_bare_fits(workdir, timer, n_symbols=RATIO_SYMBOLS, goal=True)
    yield _against_bare_fits(workdir, timer, n_symbols=1, goal=False)
    yield from _at_scale(workdir)


def _against_bare_fits(workdir: Path, timer: Timer, *, n_symbols: int, goal: bool) -> Line:
    """Synthetic symbols, 10 years of daily bars each. Ours: ``run_regime_job`` in this
    process on a store holding bars and features but no regimes yet (a fresh copy per round,
    made outside the timing): one read of bars and features, rules, fits, forward filter,
    rows, the two bulk writes. Baseline: ``GaussianHMM.fit`` alone on the same standardised
    windows with the same seeds and settings, i.e. exactly the fits the job makes. Both
    single-threaded, alternated, medians. A run's fixed cost (opening the DuckDB file three
    times, two write transactions) weighs on one short series; the goal is set on a run over
    several.
    """
    base = workdir / f"regime_ratio_{n_symbols}.duckdb"
    store = Store(base)
    synth_into(store, n_symbols=n_symbols, years=SCALE_YEARS, timeframe=Timeframe.D1, seed=3)
    run_features_job(store, progress=False)
    config = RegimeConfig()
    windows = []
    for symbol in store.tickers()["symbol"]:
        inputs = series_inputs(store.bars(symbol, "1d"), store.features(symbol, "1d"), None)
        x = hmm_features(inputs["ret_1"].to_numpy(), inputs["high"].to_numpy(),
                         inputs["low"].to_numpy())
        windows += [standardise_window(x[w:d + 1])[0]
                    for d, w in refit_schedule(len(x), config.hmm)]

    def fresh_copy(n: int) -> Store:
        path = workdir / f"regime_ratio_{n_symbols}_{n}.duckdb"
        shutil.copy(base, path)
        return Store(path)

    def bare() -> None:
        with threadpool_limits(limits=1):
            for z in windows:
                for seed in range(config.hmm.n_seeds):
                    new_model(config.hmm, seed, z).fit(z)

    run_regime_job(fresh_copy(0), workers=1, progress=False)  # warm caches and imports
    ours, base_times = [], []
    for n in range(1, REPEATS + 1):
        copy = fresh_copy(n)
        ours.append(timer(lambda copy=copy: run_regime_job(copy, workers=1, progress=False),
                          repeat=1))
        base_times.append(timer(bare, repeat=1))
    mine, baseline = statistics.median(ours), statistics.median(base_times)
    label = (f"regime job vs its bare hmmlearn fits ({n_symbols} x {SCALE_YEARS}y daily, "
             f"{len(windows) * config.hmm.n_seeds} fits)")
    if goal:
        return ratio_line(label, mine, baseline, goal="<= 1.2x", met=mine / baseline <= 1.2)
    return Line(f"  (for reference) {label:<41} ours {mine * 1e3:9.3f} ms  baseline "
                f"{baseline * 1e3:9.3f} ms  ratio {mine / baseline:6.2f}x", True)


def _at_scale(workdir: Path) -> Iterator[Line]:
    store = Store(workdir / "regime_scale.duckdb")
    started = time.perf_counter()
    synth_into(store, n_symbols=SCALE_SYMBOLS, years=SCALE_YEARS, timeframe=Timeframe.D1,
               seed=1)
    run_features_job(store, progress=False)
    setup = time.perf_counter() - started
    started = time.perf_counter()
    result = run_regime_job(store, workers=2, progress=False)
    elapsed = time.perf_counter() - started
    label = f"regime job, {SCALE_SYMBOLS} symbols x {SCALE_YEARS} years daily, 2 processes"
    yield Line(f"{label:<58} {elapsed:9.1f} s  ({result.snapshot_rows:,} snapshots, "
               f"{result.model_rows:,} fits; data + features set up in {setup:.0f} s)", True)
    agreement = store.query(
        "SELECT avg((r.hmm_state_label = t.vol_regime)::INT) AS accuracy, count(*) AS n "
        "FROM regime_snapshots r JOIN synthetic_regimes t USING (symbol, timeframe, ts) "
        "WHERE r.hmm_state_label IS NOT NULL")
    accuracy = float(agreement["accuracy"].iloc[0])
    yield Line(f"{'  volatility regimes recovered (HMM label = true regime)':<58} "
               f"{100 * accuracy:9.1f} %  over {int(agreement['n'].iloc[0]):,} bars  "
               f"goal >= 80%  {'OK' if accuracy >= 0.8 else 'MISSED'}", accuracy >= 0.8)
