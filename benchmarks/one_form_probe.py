"""Probe run by ``benchmarks.one_form`` in a subprocess, against one source tree.

It uses only what both the one-form code and the two-form baseline offer, builds its own store
from the bundled sample data and prints one JSON line: warm and cold evaluate p50, the module
bodies on the same pack, and each module's batch form on ``BUDDY_BENCH_ROWS`` rows.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np


def p50(fn: Callable[[], object], *, repeat: int = 9, number: int = 20) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - start) / number)
    return statistics.median(times)


def main(db: str) -> None:
    # run as a script, this folder is first on sys.path and its replay.py would shadow replay/
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    import buddy
    from buddy.api import Buddy, default_providers
    from buddy.batch.builder import build_batch_context
    from buddy.demo import SAMPLE_IDEAS, place_idea, prepare_store
    from buddy.jobs.levels import run_levels_job
    from buddy.jobs.regime import run_regime_job
    from buddy.store import Store
    from replay.intents import generate_intents

    store = Store(Path(db))
    prepare_store(store, echo=lambda _: None, progress=False)
    symbols = ["AAPL", "MSFT"]  # stored snapshots for the intents' series: a cold pack reads them
    run_regime_job(store, symbols, progress=False)
    run_levels_job(store, symbols, progress=False)
    api = Buddy(store)
    intent = api.make_intent(**place_idea(api, SAMPLE_IDEAS[0]))
    ctx = api.builder.build(intent.user_id, intent.symbol, intent.timeframe, intent.as_of)
    api.evaluate_intent(intent, log=False)
    warm = p50(lambda: api.evaluate_intent(intent, log=False), number=50)
    evaluators = [e for e, _ in api.orchestrator.evaluators
                  if not ctx.missing_pieces(e.requires)]
    try:  # the one form: the module bodies run on the prebuilt row
        from buddy.batch.context import from_pack
        row = from_pack(intent, ctx)
        bodies = sum(p50(lambda e=e: e.evaluate_batch(row), number=50) for e in evaluators)
    except ImportError:  # the two-form baseline: the scalar bodies
        bodies = sum(p50(lambda e=e: e.evaluate(intent, ctx), number=50) for e in evaluators)

    def cold() -> None:
        api.builder.clear()
        api.evaluate_intent(intent, log=False)

    cold_p50 = p50(cold, repeat=7, number=3)

    intents = generate_intents(store, "random", symbols=symbols, seed=1, user_id="demo")
    intents = intents.iloc[:2000].reset_index(drop=True)
    base = build_batch_context(store, intents, providers=default_providers())
    rows = int(os.environ.get("BUDDY_BENCH_ROWS", "100000"))
    tiled = base.take(np.resize(np.arange(base.n), rows))
    batch, batch_rows = {}, {}
    for evaluator, _ in api.orchestrator.evaluators:
        present = np.flatnonzero(np.all([tiled.present(p) for p in evaluator.requires], axis=0)
                                 if evaluator.requires else np.ones(tiled.n, dtype=bool))
        part = tiled.take(present)
        batch_rows[evaluator.name] = int(part.n)
        evaluator.evaluate_batch(part.take(np.arange(min(100, part.n))))  # warm imports
        batch[evaluator.name] = p50(lambda e=evaluator, c=part: e.evaluate_batch(c),
                                    repeat=3, number=1)
    print(json.dumps({"buddy_file": buddy.__file__, "warm_p50": warm, "bodies_p50": bodies,
                      "cold_p50": cold_p50, "rows": rows, "batch": batch,
                      "batch_rows": batch_rows}))


if __name__ == "__main__":
    main(sys.argv[1])
