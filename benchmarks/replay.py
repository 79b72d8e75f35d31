"""Replay benchmarks: 1,000,000 intents through the batch path, the per-intent path on a
sample of the same intents, and the result writes.

Setup (not timed): the synthetic universe (``BENCH_SYMBOLS`` x ``BENCH_YEARS`` of daily
bars), its features, regime and key-level snapshots, a replay account, and the random-entry
generator's intents over every bar with each intent's mirror on the other side, cut to
``N_INTENTS``. Timed: ``run_replay`` end to end (validation, context, every module of the
default config with every standard piece, outcome labelling, the writes), two local worker
processes, for the batch path on all intents and the per-intent path on a random sample.
"""

from __future__ import annotations

import os
import shutil
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from benchmarks.suites import Line, Timer, ratio_line
from buddy.config import default_scoring_config
from buddy.jobs.features import run_features_job
from buddy.jobs.levels import run_levels_job
from buddy.jobs.load import synth_into
from buddy.jobs.regime import run_regime_job
from buddy.store import Store
from buddy.store.core import insert_frame
from buddy.timeframes import Timeframe
from buddy.users.store import set_user
from replay.engine import ChunkRows, run_replay, standard_providers, write_chunk
from replay.executors import LocalProcessExecutor
from replay.intents import generate_intents

BENCH_SYMBOLS, BENCH_YEARS = 200, 10
#: The issue's scale; $BUDDY_BENCH_REPLAY_INTENTS runs a smaller one (the line says which).
N_INTENTS = int(os.environ.get("BUDDY_BENCH_REPLAY_INTENTS", 1_000_000))
SAMPLE = 300
USER = "replay"


def replay_suite(workdir: Path, timer: Timer) -> Iterator[Line]:
    """Yield the batch replay of 1,000,000 intents (end-to-end time, goal <= 15 s), its
    throughput against the per-intent path on a sample (goal >= 20x), and the result-write
    rate (goal >= 1,000,000 rows/s, with a plain DuckDB insert of the same rows beside it)."""
    store, intents, setup_s = _universe(workdir)
    config = default_scoring_config()
    providers = standard_providers()
    with LocalProcessExecutor(workers=2) as executor:
        started = time.perf_counter()
        batch = run_replay(store, intents, config=config, name="bench-batch", mode="batch",
                           executor=executor, providers=providers, progress=False)
        batch_s = time.perf_counter() - started
        sample = intents.sample(SAMPLE, random_state=7)
        started = time.perf_counter()
        run_replay(store, sample, config=config, name="bench-intent", mode="intent",
                   executor=executor, providers=providers, progress=False)
        intent_s = time.perf_counter() - started
    n = len(intents)
    yield Line(f"{f'batch replay, {n:,} intents, {len(config.modules)} modules, 2 processes':<58}"
               f" {batch_s:9.1f} s  ({n / batch_s:,.0f} intents/s; setup {setup_s:.0f} s)  "
               f"goal <= 15 s  {'OK' if batch_s <= 15 else 'MISSED'}", batch_s <= 15)
    per_batch, per_intent = batch_s / n, intent_s / len(sample)
    yield ratio_line(f"per-intent path ({len(sample)} of the same intents) vs batch, "
                      "per intent", per_intent, per_batch, goal=">= 20x",
                      met=per_intent / per_batch >= 20, unit="us")
    yield from _writes(workdir, store, batch.run_id, timer)


def _universe(workdir: Path) -> tuple[Store, pd.DataFrame, float]:
    started = time.perf_counter()
    store = Store(workdir / "replay_bench.duckdb")
    synth_into(store, n_symbols=BENCH_SYMBOLS, years=BENCH_YEARS, timeframe=Timeframe.D1,
               seed=11)
    run_features_job(store, progress=False)
    run_regime_job(store, workers=2, progress=False)
    run_levels_job(store, workers=2, progress=False)
    set_user(store, USER, equity=1_000_000.0, base_currency="USD")
    intents = generate_intents(store, "random", timeframe="1d", seed=3, user_id=USER,
                               entry_probability=1.0)
    mirror = intents.copy()
    mirror["side"] = np.where(intents["side"] == "long", "short", "long")
    mirror["proposed_stop"] = 2 * intents["proposed_entry"] - intents["proposed_stop"]
    mirror["proposed_target"] = 2 * intents["proposed_entry"] - intents["proposed_target"]
    mirror["intent_id"] = intents["intent_id"] + "-m"
    mirror = mirror[(mirror["proposed_stop"] > 0) & ~(mirror["proposed_target"] <= 0)]
    both = pd.concat([intents, mirror], ignore_index=True)
    both = both.sample(min(N_INTENTS, len(both)), random_state=1).reset_index(drop=True)
    return store, both, time.perf_counter() - started


def _writes(workdir: Path, store: Store, run_id: str, timer: Timer) -> Iterator[Line]:
    """Result writes: the engine's chunk write (results, module results, issues, outcomes in
    one transaction, run id added) of the run's own rows into an empty migrated file,
    against DuckDB inserting the same rows, run id included, as Arrow tables into a copy of
    the same file. Both timed from connect to close (the checkpoint)."""
    tables = {name: store.query(f"SELECT * EXCLUDE (run_id) FROM {name} WHERE run_id = ?",
                                [run_id])
              for name in ("replay_results", "replay_module_results", "replay_issues",
                           "replay_outcomes")}
    n_rows = sum(len(t) for t in tables.values())
    rows = ChunkRows(chunk_no=0, results=tables["replay_results"],
                     module_results=tables["replay_module_results"],
                     issues=tables["replay_issues"])
    arrow = {name: pa.Table.from_pandas(frame.assign(run_id="w"), preserve_index=False)
             for name, frame in tables.items()}
    empty = Store(workdir / "writes_empty.duckdb").path
    copies = iter(range(1_000))

    def fresh() -> Path:
        path = workdir / f"writes_{next(copies)}.duckdb"
        shutil.copy(empty, path)
        return path

    def ours(path: Path) -> None:
        write_chunk(Store(path, migrate=False), "w", rows, tables["replay_outcomes"])

    def baseline(path: Path) -> None:
        with duckdb.connect(str(path)) as con:
            con.execute("BEGIN")
            for name, table in arrow.items():
                insert_frame(con, name, table)
            con.execute("COMMIT")

    mine, base = [], []
    for _ in range(3):
        path = fresh()
        mine.append(timer(lambda path=path: ours(path), repeat=1))
        path = fresh()
        base.append(timer(lambda path=path: baseline(path), repeat=1))
    mine_s, base_s = statistics.median(mine), statistics.median(base)
    rate = n_rows / mine_s
    yield Line(f"{f'result writes, {n_rows:,} rows in 4 tables, one transaction':<58} "
               f"{rate:12,.0f} rows/s  goal >= 1,000,000 rows/s  "
               f"{'OK' if rate >= 1e6 else 'MISSED'}", rate >= 1e6)
    yield ratio_line("  result writes vs a plain DuckDB insert of the same rows", mine_s,
                      base_s, goal="(reference)", met=True)
