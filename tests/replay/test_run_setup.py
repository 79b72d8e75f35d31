"""A run's setup: batch chunks of one row group, the last ones cut so that every worker has
one, and the modules a local pool's fork server imports once for its workers (all that a
worker's first chunk imports of ours)."""

from __future__ import annotations

import subprocess
import sys

from buddy.store import Store
from replay.engine import (
    DEFAULT_BATCH_CHUNK_SIZE,
    MIN_BATCH_CHUNK_SIZE,
    WORKER_IMPORTS,
    batch_chunk_sizes,
    standard_providers,
    worker_modules,
)
from replay.executors import LocalProcessExecutor, SerialExecutor


def test_batch_chunks_are_row_groups_then_keep_every_worker_busy() -> None:
    two = LocalProcessExecutor(workers=2)  # never started: no process
    group = DEFAULT_BATCH_CHUNK_SIZE
    assert group == 122_880  # one DuckDB row group of results: one result row per intent
    assert batch_chunk_sizes(10_000, two) == [5_000, 5_000]
    assert batch_chunk_sizes(10_001, two) == [5_001, 5_000]  # no third chunk of one intent
    # a million: row groups while more than one per worker remains, then the rest halved,
    # so that neither worker waits while the other computes a last chunk
    assert batch_chunk_sizes(1_000_000, two) == [group] * 7 + [69_920, 69_920]
    assert batch_chunk_sizes(4 * group, two) == [group] * 4
    assert batch_chunk_sizes(1_000_000, SerialExecutor()) == [group] * 8 + [16_960]
    assert batch_chunk_sizes(3_000, two) == [3_000]  # not two below MIN_BATCH_CHUNK_SIZE
    assert batch_chunk_sizes(100, two) == [100] and MIN_BATCH_CHUNK_SIZE > 100
    assert batch_chunk_sizes(10_000, SerialExecutor()) == [10_000]  # one process: one chunk
    for n in (1, 1_999, 2_000, 4_001, 245_761, 1_000_800):
        sizes = batch_chunk_sizes(n, two)
        assert sum(sizes) == n and max(sizes) <= group and min(sizes) >= 1


def test_a_worker_imports_the_engine_and_each_provider_module() -> None:
    modules = worker_modules(standard_providers())
    assert modules[0] < modules[-1] and "replay.engine" in modules
    assert {"buddy.levels.provider", "buddy.regime.provider"} <= set(modules)
    assert worker_modules({}) == tuple(sorted({"replay.engine", *WORKER_IMPORTS}))


def test_a_worker_that_imported_its_modules_imports_none_of_ours_for_a_chunk(
        sample_store: Store) -> None:
    # what the fork server imports once is all a worker's first chunk needs of the project
    # and of the calendars' rules (each worker importing them again costs it ~0.15 s)
    code = ("import importlib, sys\n"
            "import numpy as np\n"
            "from buddy.config import default_scoring_config\n"
            "from replay import engine\n"
            "from replay.intents import generate_intents\n"
            "from buddy.store import Store\n"
            "providers = engine.standard_providers()\n"
            "for name in engine.worker_modules(providers):\n"
            "    importlib.import_module(name)\n"
            "store = Store(sys.argv[1], migrate=False)\n"
            "intents = engine.normalize_intents(generate_intents(\n"
            "    store, 'random', timeframe='1d', seed=5, user_id='w', entry_probability=1.0\n"
            "    ).head(20))\n"
            "intents['intent_no'] = np.arange(len(intents), dtype=np.int32)\n"
            "config = default_scoring_config()\n"
            "before = set(sys.modules)\n"
            "engine.evaluate_chunk(engine.ChunkTask(\n"
            "    chunk_no=0, db_path=sys.argv[1], mode='batch',\n"
            "    config_json=config.to_json(), lookback_bars=engine.DEFAULT_LOOKBACK_BARS,\n"
            "    providers=tuple(sorted(providers.items())), intents=intents,\n"
            "    outcome_rules=engine.OutcomeRules()))\n"
            "ours = ('buddy', 'replay', 'exchange_calendars')\n"
            "print(sorted(m for m in set(sys.modules) - before if m.split('.')[0] in ours))\n")
    out = subprocess.run([sys.executable, "-c", code, str(sample_store.path)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
