"""A run's setup: batch chunks cut so that every worker has one, and the modules a local
pool's fork server imports once for its workers."""

from __future__ import annotations

from replay.engine import (
    DEFAULT_BATCH_CHUNK_SIZE,
    MIN_BATCH_CHUNK_SIZE,
    batch_chunk_size,
    standard_providers,
    worker_modules,
)
from replay.executors import LocalProcessExecutor, SerialExecutor


def test_batch_chunks_keep_every_worker_busy_within_bounds() -> None:
    two = LocalProcessExecutor(workers=2)  # never started: no process
    assert batch_chunk_size(10_000, two) == 5_000
    assert batch_chunk_size(10_001, two) == 5_001  # no third chunk of one intent
    # a million: ten chunks of 100,000, five per worker (not nine of a row group, the last
    # one smaller, on which one worker would wait for the other)
    assert batch_chunk_size(1_000_000, two) == 100_000
    assert batch_chunk_size(4 * DEFAULT_BATCH_CHUNK_SIZE, two) == DEFAULT_BATCH_CHUNK_SIZE
    assert batch_chunk_size(1_000_000, SerialExecutor()) == DEFAULT_BATCH_CHUNK_SIZE
    assert batch_chunk_size(100, two) == MIN_BATCH_CHUNK_SIZE
    assert batch_chunk_size(10_000, SerialExecutor()) == 10_000  # one process: one chunk


def test_a_worker_imports_the_engine_and_each_provider_module() -> None:
    modules = worker_modules(standard_providers())
    assert modules[0] < modules[-1] and "replay.engine" in modules
    assert {"buddy.levels.provider", "buddy.regime.provider"} <= set(modules)
    assert worker_modules({}) == ("replay.engine",)
