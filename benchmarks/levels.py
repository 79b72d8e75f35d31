"""Key-levels benchmarks: the vectorised computation against the naive per-bar loop on the same
real series (identical output asserted), and the job over a synthetic universe."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from benchmarks.suites import Line, Timer
from buddy.data.synth import synth_universe
from buddy.jobs.levels import run_levels_job
from buddy.jobs.load import load_sample_into
from buddy.levels.compute import compute_key_levels, compute_key_levels_naive, levels_table
from buddy.store import Store
from buddy.timeframes import Timeframe

#: A year of AAPL daily bars across its 2005-02-28 2:1 split. The naive loop recomputes
#: every level from the history at each bar, so its cost grows with the square of the length.
NAIVE_SERIES = ("AAPL", "1d", "2004-09-01", "2005-09-01")
UNIVERSE_SYMBOLS = 500
UNIVERSE_YEARS = 10
GOAL_SPEEDUP = 20.0


def levels_suite(workdir: Path, timer: Timer) -> Iterator[Line]:
    """Vectorised vs naive key levels on a real series; the job on 500 symbols x 10 years."""
    store = Store(workdir / "levels_sample.duckdb")
    load_sample_into(store)
    symbol, timeframe, start, end = NAIVE_SERIES
    bars = store.bars(symbol, timeframe)
    bars = bars[(bars["ts"] >= pd.Timestamp(start, tz="UTC"))
                & (bars["ts"] < pd.Timestamp(end, tz="UTC"))].reset_index(drop=True)
    actions = store.corporate_actions(symbol)
    fast = levels_table(compute_key_levels(bars, actions=actions))
    slow = levels_table(compute_key_levels_naive(bars, actions=actions))
    assert fast.equals(slow), "vectorised and naive key levels differ"
    ours = timer(lambda: levels_table(compute_key_levels(bars, actions=actions)), repeat=7)
    base = timer(lambda: levels_table(compute_key_levels_naive(bars, actions=actions)),
                 repeat=1)
    speedup = base / ours
    label = f"key levels vs naive per-bar loop ({symbol} {timeframe}, {len(bars)} bars)"
    yield Line(f"{label:<58} ours {ours * 1e3:9.3f} ms  baseline {base * 1e3:9.1f} ms  speed-up "
               f"{speedup:6.1f}x  goal >= {GOAL_SPEEDUP:g}x  "
               f"{'OK' if speedup >= GOAL_SPEEDUP else 'MISSED'}  (identical output)",
               speedup >= GOAL_SPEEDUP)
    yield from _universe(workdir)


def _universe(workdir: Path) -> Iterator[Line]:
    universe = synth_universe(n_symbols=UNIVERSE_SYMBOLS, years=UNIVERSE_YEARS,
                              timeframe=Timeframe.D1, seed=11)
    store = Store(workdir / "levels_universe.duckdb")
    store.write_market_data(tickers=universe.tickers, bars=universe.bars)
    workers = min(2, os.cpu_count() or 1)
    start = time.perf_counter()
    result = run_levels_job(store, workers=workers, progress=False)
    elapsed = time.perf_counter() - start
    assert result.rows_written == len(universe.bars)
    label = (f"key-levels job, {UNIVERSE_SYMBOLS} symbols x {UNIVERSE_YEARS}y daily, "
             f"{workers} workers")
    yield Line(f"{label:<58} {elapsed:9.1f} s  ({result.rows_written:,} rows, "
               f"{result.rows_written / elapsed:,.0f} rows/s, written to DuckDB)", True)

