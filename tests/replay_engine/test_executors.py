"""Executors: same replay, same result table hash, whether chunks run in this process, in
local worker processes or on a dask.distributed LocalCluster."""

from __future__ import annotations

import operator
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from buddy.config import ScoringConfig
from buddy.store import Store
from buddy.store.core import threads_limit
from buddy.store.tables import process_reads_directory, reads_shared
from replay.engine import (
    DEFAULT_LOOKBACK_BARS,
    ChunkFiles,
    ChunkRows,
    ChunkTask,
    OutcomeRules,
    evaluate_chunk,
    normalize_intents,
    result_table_hash,
    run_replay,
)
from replay.executors import (
    DaskExecutor,
    Executor,
    LocalProcessExecutor,
    SerialExecutor,
    make_executor,
)

from .conftest import ACCOUNT, Reference, same_values


def _worker_settings(db_path: str) -> tuple[int, str]:
    """Return the DuckDB threads and Arrow's memory pool as a worker has them."""
    import pyarrow as pa

    from buddy.store import Store

    threads = Store(db_path, migrate=False).query(
        "SELECT current_setting('threads') AS threads")["threads"].iloc[0]
    return int(threads), pa.default_memory_pool().backend_name


def _fails_on_three(value: int) -> int:
    if value == 3:
        raise ArithmeticError("three")
    return value


def test_map_yields_every_task_once_with_its_index(local_executor: LocalProcessExecutor
                                                   ) -> None:
    for executor in (SerialExecutor(), local_executor):
        pairs = list(executor.map(operator.neg, range(7)))
        assert sorted(pairs) == [(i, -i) for i in range(7)]
        assert isinstance(executor, Executor)


def test_a_failing_task_raises_in_the_caller(local_executor: LocalProcessExecutor) -> None:
    with pytest.raises(ArithmeticError):
        list(local_executor.map(_fails_on_three, range(6)))
    assert sorted(local_executor.map(operator.neg, range(3))) == [(0, 0), (1, -1), (2, -2)]


def test_a_local_worker_queries_on_one_thread_and_allocates_from_the_c_heap(
        local_executor: LocalProcessExecutor, replay_store: Store) -> None:
    # its run's parallelism is across processes; its freed memory serves its next chunk
    ((_, (threads, pool)),) = list(local_executor.map(_worker_settings,
                                                      [str(replay_store.path)]))
    assert (threads, pool) == (1, "system")


def test_worker_memory_settings_are_taken_by_glibc() -> None:
    code = ("import pyarrow as pa\n"
            "from replay.executors import keep_worker_memory\n"
            "print(keep_worker_memory(), pa.default_memory_pool().backend_name)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    glibc = platform.libc_ver()[0] == "glibc"
    assert out.stdout.split() == [str(glibc), "system"]


def test_make_executor_refuses_an_unknown_kind() -> None:
    with pytest.raises(ValueError, match="serial, local, dask"):
        make_executor("threads")


def test_a_run_in_local_processes_equals_the_in_process_run(
        subset_reference: Reference, config: ScoringConfig,
        local_executor: LocalProcessExecutor) -> None:
    store = subset_reference.store
    run = run_replay(store, subset_reference.intents, config=config, name="local-processes",
                     executor=local_executor, chunk_size=7, providers=ACCOUNT, progress=False)
    assert run.run_id != subset_reference.run_id
    assert result_table_hash(store, run.run_id) == subset_reference.hash
    # the chunks the workers handed over as files were each loaded and removed
    assert not list(process_reads_directory().glob("chunk-*"))


@pytest.mark.slow
def test_a_dask_local_cluster_gives_the_in_process_result(
        subset_reference: Reference, config: ScoringConfig) -> None:
    store = subset_reference.store
    with DaskExecutor(None, workers=2, startup_timeout_s=120) as executor:
        run = run_replay(store, subset_reference.intents, config=config, name="dask",
                         executor=executor, chunk_size=6, providers=ACCOUNT, progress=False)
        assert len(executor.client.scheduler_info()["workers"]) == 2
    assert result_table_hash(store, run.run_id) == subset_reference.hash


def test_a_run_with_workers_gives_this_process_its_duckdb_threads_back(
        subset_reference: Reference, config: ScoringConfig,
        local_executor: LocalProcessExecutor) -> None:
    # the run's own reads and writes ran on one thread beside its workers
    before = threads_limit()
    run_replay(subset_reference.store, subset_reference.intents.head(5), config=config,
               name="threads-back", executor=local_executor, providers=ACCOUNT,
               progress=False)
    assert threads_limit() == before is None


def test_a_worker_hands_files_only_where_the_writers_directory_is(
        replay_store: Store, subset: pd.DataFrame, config: ScoringConfig,
        tmp_path: Path) -> None:
    # a worker of a cluster elsewhere has no such directory: its rows come back pickled
    frame = normalize_intents(subset.head(6))
    frame["intent_no"] = np.arange(len(frame), dtype=np.int32)

    def task(shared: Path) -> ChunkTask:
        return ChunkTask(chunk_no=3, db_path=str(replay_store.path), mode="batch",
                         config_json=config.to_json(), lookback_bars=DEFAULT_LOOKBACK_BARS,
                         providers=tuple(sorted(ACCOUNT.items())), intents=frame,
                         shared_tables=str(shared), outcome_rules=OutcomeRules())

    with reads_shared(None):  # (a worker sets its run's directory: this process gets it back)
        elsewhere = evaluate_chunk(task(tmp_path / "not-here"))
        here = evaluate_chunk(task(tmp_path))
    assert isinstance(elsewhere, ChunkRows) and isinstance(here, ChunkFiles)
    loaded = here.load()
    assert not list(tmp_path.glob("chunk-*"))
    assert loaded.facts is not None and elsewhere.facts is not None
    for table in ("results", "issues", "facts"):  # NaN scores of skipped modules too
        mine, theirs = getattr(loaded, table), getattr(elsewhere, table)
        assert mine.schema.equals(theirs.schema)
        assert same_values(mine.to_pydict(), theirs.to_pydict())
