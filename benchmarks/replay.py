"""Replay benchmarks (issue 15, section 5): a batch replay of 1,000,000 intents end to end,
against a floor the bench measures in the same run, the result-write rate, and how replay
time scales with the number of intents.

Setup (timed, printed apart, never part of a replay's time): the synthetic universe
(``BENCH_SYMBOLS`` x ``BENCH_YEARS`` of daily bars), its features, regime and key-level
snapshots, a replay account, and the random-entry generator's intents over every bar with
each intent's mirror on the other side, shuffled and cut to ``N_INTENTS``. The setup's
database file and intents are cached in ``CACHE_DIR`` under a key hashing the ``buddy``
package's sources (and ``replay/intents.py``, which makes the intents) with the setup's
parameters: a rerun with unchanged sources copies the file instead of rebuilding it. A setup
is built in a process of its own and then copied from the cache like a cached one, so the
replay's process is the same either way (the jobs' worker pools would otherwise have started
its fork server with their modules instead of the replay's).

Timed: ``run_replay`` end to end as ``buddy replay`` runs it (validation, the intents hash,
the run's rows, context, every module of the default config with every standard piece,
outcome labelling, the writes, two local worker processes started and stopped by the call).
The floor it is compared with is ``benchmarks.replay_floor`` (its docstring says exactly what
it contains). ``$BUDDY_BENCH_REPLAY_INTENTS`` runs a smaller scale (every line says which);
the scaling runs are then at the same fractions of it (1 %, 10 %, 100 %).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa

from benchmarks.replay_floor import (
    Floor,
    insert_tables,
    measure_floor,
    run_result_tables,
    run_row,
)
from benchmarks.suites import Line, Timer
from buddy.config import default_scoring_config
from buddy.jobs.features import run_features_job
from buddy.jobs.levels import run_levels_job
from buddy.jobs.load import synth_into
from buddy.jobs.regime import run_regime_job
from buddy.store import Store
from buddy.store.core import vacuum_deferred
from buddy.store.tables import forget_process_reads
from buddy.timeframes import Timeframe
from buddy.users.store import set_user
from replay.engine import (
    ChunkFiles,
    ChunkRows,
    ReplayRun,
    run_replay,
    standard_providers,
    write_chunk,
)
from replay.executors import LocalProcessExecutor
from replay.intents import generate_intents
from replay.model import EXIT_REASONS, OUTCOME_COLUMNS, OUTCOME_SOURCES

BENCH_SYMBOLS, BENCH_YEARS, UNIVERSE_SEED, INTENT_SEED, CUT_SEED = 200, 10, 11, 3, 1
#: The issue's scale; $BUDDY_BENCH_REPLAY_INTENTS runs a smaller one (the lines say which).
FULL_SCALE = 1_000_000
N_INTENTS = int(os.environ.get("BUDDY_BENCH_REPLAY_INTENTS", FULL_SCALE))
#: Where setups are cached between bench runs ($BUDDY_BENCH_CACHE, else ~/.cache).
CACHE_DIR = Path(os.environ.get("BUDDY_BENCH_CACHE",
                                Path.home() / ".cache" / "trading-buddy" / "bench"))
USER = "replay"
#: Goals of issue 15, section 5.
END_TO_END_GOAL_S = 20.0
FLOOR_RATIO_GOAL = 3.0
WRITE_RATE_GOAL = 2_000_000.0
#: The scaling runs, as fractions of N_INTENTS (10k, 100k and 1M at the issue's scale).
SCALING = (0.01, 0.1, 1.0)
ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")
R = TypeVar("R")


def replay_suite(workdir: Path, timer: Timer) -> Iterator[Line]:
    """Yield the 1M-intent batch replay end to end (goal <= 20 s), its ratio to the floor
    (goal <= 3x), the result-write rate (goal >= 2,000,000 rows/s) and the time's fixed and
    per-intent parts from 1 % to 100 % of the intents."""
    store, intents, setup_s, how = _setup(workdir)
    config = default_scoring_config()
    n = len(intents)
    scale = "" if n == FULL_SCALE else " (scale set by $BUDDY_BENCH_REPLAY_INTENTS)"
    recorder = RecordingExecutor()
    run, replay_s = _replay(store, intents, "bench-batch", recorder)
    met = replay_s <= END_TO_END_GOAL_S
    yield Line(f"{f'batch replay, {n:,} intents, {len(config.modules)} modules, 2 processes':<58}"
               f" {replay_s:9.1f} s  ({n / replay_s:,.0f} intents/s)  goal <= "
               f"{END_TO_END_GOAL_S:.0f} s  {'PASS' if met else 'MISS'}{scale}", met)
    yield Line(f"{'  setup, not in the replay time':<58} {setup_s:9.1f} s  {how}", True)

    empty = workdir / "replay_empty.duckdb"
    Store(empty)  # an empty migrated file: the floor's and the writes' target
    floor = measure_floor(store.path, intents, run.run_id, empty, workdir)
    yield _floor_line(replay_s, floor)
    yield from _writes(workdir, store, run.run_id, empty, recorder.rows)
    yield from _scaling(store, intents, replay_s)


# ---------------------------------------------------------------------------- setup
def _setup(workdir: Path) -> tuple[Store, pd.DataFrame, float, str]:
    """Return the bench's store (a copy of the cached setup), its N_INTENTS intents, the
    setup's seconds and how it was made."""
    started = time.perf_counter()
    key = setup_key()
    cached = CACHE_DIR / f"replay-{key[:16]}"
    path = workdir / "replay_bench.duckdb"
    how = f"copied from the cache {cached} (key: buddy sources + parameters)"
    if not (cached / "done").exists():
        # built in a process of its own: the jobs' worker pools would start this process's
        # fork server with their modules, not the replay's, and leave their heap behind;
        # the replay then runs as it does after a cached setup
        subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; from "
                        "benchmarks.replay import build_setup; build_setup(Path(sys.argv[1]),"
                        " Path(sys.argv[2]))", str(cached), str(workdir / "replay_built.duckdb")],
                       check=True, cwd=ROOT)
        how = f"built apart, then cached in {cached} (key: buddy sources + parameters)"
    shutil.copy(cached / "replay_bench.duckdb", path)
    both = pd.read_parquet(cached / "intents.parquet")
    store = Store(path)
    intents = both.sample(min(N_INTENTS, len(both)), random_state=CUT_SEED).reset_index(
        drop=True)
    return store, intents, time.perf_counter() - started, how


def setup_key() -> str:
    """Return the SHA-256 of the setup's inputs: every source file of the buddy package
    (.py, .sql, .json), replay/intents.py, and the setup's parameters."""
    digest = hashlib.sha256(f"symbols={BENCH_SYMBOLS} years={BENCH_YEARS} seeds="
                            f"{UNIVERSE_SEED},{INTENT_SEED} user={USER}\n".encode())
    files = sorted(p for suffix in ("*.py", "*.sql", "*.json")
                   for p in (ROOT / "buddy").rglob(suffix) if "__pycache__" not in p.parts)
    for path in [*files, ROOT / "replay" / "intents.py"]:
        digest.update(f"{path.relative_to(ROOT)}\n".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def build_setup(cached: Path, path: Path) -> None:
    """Build the setup in ``path`` and cache it as ``cached`` (what ``_setup`` runs in a
    process of its own)."""
    _store_cache(cached, path, _build(path))
    for made in (path, path.with_name(f"{path.name}.wal")):
        made.unlink(missing_ok=True)


def _build(path: Path) -> pd.DataFrame:
    store = Store(path)
    synth_into(store, n_symbols=BENCH_SYMBOLS, years=BENCH_YEARS, timeframe=Timeframe.D1,
               seed=UNIVERSE_SEED)
    run_features_job(store, progress=False)
    run_regime_job(store, workers=2, progress=False)
    run_levels_job(store, workers=2, progress=False)
    set_user(store, USER, equity=1_000_000.0, base_currency="USD")
    intents = generate_intents(store, "random", timeframe="1d", seed=INTENT_SEED, user_id=USER,
                               entry_probability=1.0)
    mirror = intents.copy()
    mirror["side"] = np.where(intents["side"] == "long", "short", "long")
    mirror["proposed_stop"] = 2 * intents["proposed_entry"] - intents["proposed_stop"]
    mirror["proposed_target"] = 2 * intents["proposed_entry"] - intents["proposed_target"]
    mirror["intent_id"] = intents["intent_id"] + "-m"
    mirror = mirror[(mirror["proposed_stop"] > 0) & ~(mirror["proposed_target"] <= 0)]
    return pd.concat([intents, mirror], ignore_index=True)


def _store_cache(cached: Path, path: Path, intents: pd.DataFrame) -> None:
    """Cache the setup (one entry: earlier keys' entries are removed to bound the disk)."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    for old in CACHE_DIR.glob("replay-*"):
        shutil.rmtree(old, ignore_errors=True)
    partial = CACHE_DIR / f".{cached.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    shutil.copy(path, partial / "replay_bench.duckdb")
    intents.to_parquet(partial / "intents.parquet", index=False)
    (partial / "done").touch()
    partial.rename(cached)


# ---------------------------------------------------------------------------- replay
def _replay(store: Store, intents: pd.DataFrame, name: str,
            executor: RecordingExecutor | None = None) -> tuple[ReplayRun, float]:
    """Replay ``intents`` in batch mode as `buddy replay` does (a two-process pool started
    and stopped inside the timing, default config, standard providers); return the run and
    its wall seconds."""
    config = default_scoring_config()
    started = time.perf_counter()
    if executor is None:
        run = run_replay(store, intents, config=config, name=name, mode="batch",
                         providers=standard_providers(), progress=False)
    else:
        with executor:
            run = run_replay(store, intents, config=config, name=name, mode="batch",
                             executor=executor, providers=standard_providers(),
                             progress=False)
    return run, time.perf_counter() - started


def _floor_line(replay_s: float, floor: Floor) -> Line:
    ratio = replay_s / floor.total_s
    met = ratio <= FLOOR_RATIO_GOAL
    return Line(f"{'batch replay vs the floor measured now (replay_floor.py)':<58} replay "
                f"{replay_s:7.1f} s  floor {floor.total_s:6.2f} s  ratio {ratio:6.2f}x  "
                f"goal <= {FLOOR_RATIO_GOAL:.0f}x  {'PASS' if met else 'MISS'}  (floor = Arrow "
                f"reads {floor.read_s:.2f} s of {floor.rows_read:,} rows + numpy "
                f"{floor.numpy_s:.2f} s / 2 processes, {floor.flagged:,} rule firings + bulk "
                f"write {floor.write_s:.2f} s of {floor.result_rows:,} rows)", met)


# ---------------------------------------------------------------------------- writes
#: The result tables the engine's chunk writer writes (the others are written at run creation).
CHUNK_TABLES = ("replay_results", "replay_issues", "replay_facts")


class RecordingExecutor:
    """Two local worker processes (what ``run_replay`` starts by default) that keep every
    chunk's rows as the workers hand them to the writer (loaded from the files they wrote):
    the write bench's input."""

    def __init__(self) -> None:
        self.inner = LocalProcessExecutor(workers=2)
        self.workers = self.inner.workers  # run_replay cuts chunks for this many
        self.rows: list[ChunkRows] = []

    def start(self, preload: Iterable[str] = ()) -> None:
        """Start the workers early, as ``run_replay`` asks of its own pool."""
        self.inner.start(preload)

    def map(self, fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[tuple[int, R]]:
        """Yield the inner executor's ``(index, rows)``, keeping the rows."""
        for index, handed in self.inner.map(fn, tasks):
            rows: Any = handed.load() if isinstance(handed, ChunkFiles) else handed
            if isinstance(rows, ChunkRows):
                self.rows.append(rows)
            yield index, rows

    def close(self) -> None:
        """Stop the worker processes."""
        self.inner.close()

    def __enter__(self) -> RecordingExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def chunk_outcomes(results: pa.Table, chunks: list[ChunkRows]) -> list[pd.DataFrame | None]:
    """Return each chunk's outcomes as the labeller hands them to the writer (OUTCOME_COLUMNS
    + intent_no, exit_reason and outcome_source as text), from the run's stored results
    (``results``: its replay_results rows); None for a chunk whose rows carry their
    outcomes already (labelled by the worker, as a run labels them)."""
    outcome_columns = [c for c in results.column_names if c in OUTCOME_COLUMNS]
    if not outcome_columns or all("exit_reason" in chunk.results.column_names
                                  for chunk in chunks):
        return [None for _ in chunks]
    outcomes = results.select(["intent_no", *outcome_columns]).to_pandas()
    outcomes = outcomes[outcomes["exit_reason"].notna()].reset_index(drop=True)
    for column, names in (("exit_reason", EXIT_REASONS), ("outcome_source", OUTCOME_SOURCES)):
        coded = outcomes[column].to_numpy(dtype=np.int64)
        outcomes[column] = np.asarray(names, dtype=object)[coded]
    intent_no = outcomes["intent_no"].to_numpy(np.int64)
    return [outcomes[np.isin(intent_no, chunk.results.column("intent_no").to_numpy())
                     ].reset_index(drop=True) for chunk in chunks]


def _writes(workdir: Path, store: Store, run_id: str, empty: Path,
            chunks: list[ChunkRows]) -> Iterator[Line]:
    """The engine's chunk writer (``write_chunk``, one transaction per chunk, as a batch run
    writes them: in ``vacuum_deferred``) on the rows the run's workers handed it
    (``chunks``) with the run's outcomes, into a fresh copy of an
    empty migrated file holding what run creation writes (the run's row, modules, codes),
    against a plain DuckDB insert of the same rows as stored (CHUNK_TABLES
    read back as Arrow) in one transaction into another copy. Both timed from connect to
    close (the checkpoint); median of three."""
    every = run_result_tables(store.path, run_id)
    tables = {name: every[name] for name in CHUNK_TABLES}
    n_rows = sum(t.num_rows for t in tables.values())
    results = tables["replay_results"]
    run_key = int(results.column("run_key")[0].as_py()) if results.num_rows else 0
    outcomes = chunk_outcomes(results, chunks)
    # what run creation writes before any chunk: the run's row, its modules and codes
    seeded = workdir / "writes_seeded.duckdb"
    shutil.copy(empty, seeded)
    insert_tables(seeded, {"replay_runs": run_row(store.path, run_id),
                           **{name: t for name, t in every.items() if name not in tables}})
    copies = iter(range(1_000))

    def fresh() -> Path:
        path = workdir / f"writes_{next(copies)}.duckdb"
        shutil.copy(seeded, path)
        return path

    def timed(write: Callable[[Path], None]) -> float:
        path = fresh()
        started = time.perf_counter()
        write(path)
        elapsed = time.perf_counter() - started
        path.unlink()
        return elapsed

    def engine(path: Path) -> None:
        writer = Store(path, migrate=False)
        with vacuum_deferred():  # as a batch run writes its chunks (run_replay)
            for rows, labelled in zip(chunks, outcomes, strict=True):
                write_chunk(writer, run_key, rows, labelled)

    ours = statistics.median(timed(engine) for _ in range(3))
    plain = statistics.median(timed(lambda p: insert_tables(p, tables)) for _ in range(3))
    rate, plain_rate = n_rows / ours, n_rows / plain
    met = rate >= WRITE_RATE_GOAL
    label = f"result writes, {n_rows:,} rows in {len(tables)} tables, {len(chunks)} chunk(s)"
    yield Line(f"{label:<58} {rate:12,.0f} rows/s  goal >= {WRITE_RATE_GOAL:,.0f} rows/s  "
               f"{'PASS' if met else 'MISS'}  (the engine's write_chunk, one transaction per "
               "chunk)", met)
    yield Line(f"{'  (reference) plain DuckDB insert of the same rows as Arrow':<58} "
               f"{plain_rate:12,.0f} rows/s  ours/plain time {ours / plain:5.2f}x  (one "
               f"transaction; {', '.join(f'{k} {t.num_rows:,}' for k, t in tables.items())})",
               True)


# ---------------------------------------------------------------------------- scaling
def _scaling(store: Store, intents: pd.DataFrame, full_s: float) -> Iterator[Line]:
    """Replay the first 1 % and 10 % of the (shuffled) intents as runs of their own; fit
    seconds = fixed + per_intent x n by least squares over those and the full run. Each run
    reads its tables anew (``forget_process_reads``); the workers' fork server, started by
    the full run, serves them all (a run in a new process starts its own: about a second)."""
    sizes, seconds = [], []
    for fraction in SCALING:
        n = max(1, round(len(intents) * fraction))
        if fraction == 1.0:
            elapsed = full_s
        else:
            # each run reads its tables as the full run did (not from the files the earlier
            # runs of this process shared): the points differ only in their intents
            forget_process_reads()
            _, elapsed = _replay(store, intents.iloc[:n], f"bench-scaling-{n}")
        sizes.append(n)
        seconds.append(elapsed)
    design = np.column_stack([np.ones(len(sizes)), np.asarray(sizes, dtype=np.float64)])
    (fixed, per_intent), *_ = np.linalg.lstsq(design, np.asarray(seconds), rcond=None)
    at_full = fixed + per_intent * FULL_SCALE
    met = at_full <= END_TO_END_GOAL_S
    points = ", ".join(f"{n:,}: {s:.1f} s" for n, s in zip(sizes, seconds, strict=True))
    yield Line(f"{'replay time scaling (least squares: fixed + per-intent x n)':<58} fixed "
               f"{fixed:6.2f} s  per intent {per_intent * 1e6:7.2f} us  ({points})  goal: "
               f"fit at {FULL_SCALE:,} <= {END_TO_END_GOAL_S:.0f} s (fit {at_full:.1f} s)  "
               f"{'PASS' if met else 'MISS'}", met)
