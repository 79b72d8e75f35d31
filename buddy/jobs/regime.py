"""The regime job: regime_snapshots for every bar and regime_models for every walk-forward fit.

Reads bars and their TA features in one query, computes each (symbol, timeframe) series in a
process pool (one BLAS/OpenMP thread per process: the parallelism is across series), and
writes both tables with one bulk write each.

Incremental: a series whose last stored snapshot has the current version gets rows for the
newer bars only. The HMM fit in force at the first new bar and any earlier fit are read back
from regime_models (their parameters round-trip exactly through JSON); later refits are fitted
now. Rules are recomputed over the whole series (cheap, and their trailing windows then see
exactly what a full run sees), so the rows written equal a full run's. A series whose stored
rows come from another version, whose last stored bar is gone, or whose stored fits no longer
sit on their refit bars (history added before them) is recomputed whole.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from buddy.regime.hmm import HMMParams
from buddy.regime.snapshots import (
    REGIME_BAR_COLUMNS,
    REGIME_FEATURES,
    RegimeConfig,
    compute_series,
    model_table,
    snapshot_table,
    stored_fits,
)
from buddy.store import Store
from buddy.store.regime import regime_job_inputs

THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
              "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


@dataclass(frozen=True, slots=True)
class RegimeJobResult:
    """What a regime run did."""

    series: int  # (symbol, timeframe) pairs examined
    series_updated: int
    snapshot_rows: int
    model_rows: int


@dataclass(frozen=True, slots=True)
class _SeriesTask:
    bars: pd.DataFrame  # bar columns + feature columns of one series, by ts
    splits: pd.DataFrame
    start: int
    fitted: dict[int, HMMParams]
    config: RegimeConfig
    computed_at: pd.Timestamp


def run_regime_job(store: Store, symbols: Sequence[str] | None = None,
                   timeframes: Sequence[str] | None = None, workers: int = 2,
                   progress: bool = True, *, config: RegimeConfig | None = None,
                   full: bool = False) -> RegimeJobResult:
    """Compute and store regime snapshots and HMM fits for new bars; return counts.

    ``workers`` processes share the series (1: in this process). They start from a fork
    server, so a script calling this with ``workers > 1`` needs the usual
    ``if __name__ == "__main__":`` guard (the CLI, notebooks and pytest need nothing).
    ``full`` recomputes every bar of the selected series, ignoring what is stored.
    """
    config = config or RegimeConfig()
    computed_at = pd.Timestamp.now(tz="UTC")
    frame, actions, done, models = regime_job_inputs(
        store, symbols, timeframes, REGIME_BAR_COLUMNS, REGIME_FEATURES,
        config.hmm.model_version)
    done_at = {(r.symbol, r.timeframe): (r.last_ts, r.version) for r in done.itertuples()}
    models_of = {key: group for key, group in models.groupby(["symbol", "timeframe"])}

    tasks = []
    groups = frame.groupby(["symbol", "timeframe"], sort=True)
    for (symbol, timeframe), series in groups:
        series = series.reset_index(drop=True)
        start, fitted = 0, {}
        last_ts, version = done_at.get((symbol, timeframe), (None, None))
        if not full and version == config.version and last_ts is not None:
            ts = series["ts"]
            position = int(ts.searchsorted(last_ts))
            if position < len(ts) and ts.iloc[position] == last_ts:
                if position == len(ts) - 1:
                    continue  # nothing new
                stored = stored_fits(models_of.get((symbol, timeframe), models.iloc[0:0]), ts)
                if stored is not None:
                    start, fitted = position + 1, stored
        splits = actions[actions["symbol"] == symbol].reset_index(drop=True)
        tasks.append(_SeriesTask(series, splits, start, fitted, config, computed_at))

    if not tasks:
        return RegimeJobResult(series=groups.ngroups, series_updated=0, snapshot_rows=0,
                               model_rows=0)
    snapshots, fits = [], []
    for snapshot_rows, model_rows in _run(tasks, workers, progress):
        snapshots.append(snapshot_rows)
        fits.append(model_rows)
    # Fits first: a run that stops between the two writes leaves fits the next run reuses.
    model_rows = store.write_snapshots("regime_models", pa.concat_tables(fits))
    snapshot_rows = store.write_snapshots("regime_snapshots", pa.concat_tables(snapshots))
    return RegimeJobResult(series=groups.ngroups, series_updated=len(tasks),
                           snapshot_rows=snapshot_rows, model_rows=model_rows)


def _run(tasks: list[_SeriesTask], workers: int, progress: bool
         ) -> Iterator[tuple[pa.Table, pa.Table]]:
    """Yield each task's (snapshot rows, model rows) in task order."""
    bar = tqdm(total=len(tasks), disable=not progress, desc="regime", unit="series")
    if workers <= 1 or len(tasks) <= 1:
        with _single_threaded():
            for task in tasks:
                yield _compute(task)
                bar.update()
        bar.close()
        return
    results: dict[int, tuple[pa.Table, pa.Table]] = {}
    # Largest series first, so the last ones to finish are short. Workers come from a fork
    # server, not a fork of this process (which may hold BLAS, OpenMP, DuckDB or tqdm threads
    # mid-flight): the server imports this module once, so each pool starts in milliseconds
    # instead of paying the scientific stack's import per worker as spawn does.
    order = sorted(range(len(tasks)), key=lambda i: -len(tasks[i].bars))
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    with ProcessPoolExecutor(max_workers=workers, initializer=_pin_threads,
                             mp_context=context) as pool:
        futures = {pool.submit(_compute, tasks[i]): i for i in order}
        for future in as_completed(futures):
            results[futures[future]] = future.result()
            bar.update()
    bar.close()
    for i in range(len(tasks)):
        yield results[i]


def _compute(task: _SeriesTask) -> tuple[pa.Table, pa.Table]:
    bars = task.bars
    features = bars[["ts", "feature_set_version", *REGIME_FEATURES]]
    if features["feature_set_version"].isna().any():
        features = None
    series = compute_series(bars[list(REGIME_BAR_COLUMNS)], features, task.splits, task.config,
                            start=task.start, fitted=task.fitted)
    snapshots = snapshot_table(series, task.config, task.computed_at)
    return snapshots, model_table(series, task.config, task.computed_at, skip=task.fitted)


def _pin_threads() -> None:
    """Worker initializer: one BLAS/OpenMP thread per process, quiet EM convergence logs."""
    for name in THREAD_ENV:
        os.environ[name] = "1"
    threadpool_limits(limits=1)
    logging.getLogger("hmmlearn").setLevel(logging.ERROR)


@contextmanager
def _single_threaded() -> Iterator[None]:
    logger = logging.getLogger("hmmlearn")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        logger.setLevel(level)

