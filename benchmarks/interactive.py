"""The interactive path in one process (issue 15, section 5): a cold ContextPack from stored
snapshots on an open read connection, the cost of logging an evaluation, and a warm evaluate.

Setup (timed apart, not reported): the demo data, then the regime and key-levels jobs for the
evaluated symbol, so the pack reads stored snapshots instead of fitting on demand. Each figure
is the p50 of single calls (wall, judged against the goal; CPU alongside).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from benchmarks.suites import Line, Timer

#: Goals of issue 15, section 5 (seconds).
COLD_PACK_GOAL_S = 0.050
LOGGING_GOAL_S = 0.050
WARM_GOAL_S = 0.010
SYMBOL = "AAPL"


def _line(label: str, seconds: float, detail: str, goal_s: float) -> Line:
    met = seconds <= goal_s
    return Line(f"{label:<58} {seconds * 1e3:9.3f} ms  {detail}goal <= {goal_s * 1e3:g} ms  "
                f"{'PASS' if met else 'MISS'}", met)


def _p50(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Return the p50 wall and CPU seconds of ``repeat`` single calls (CPU shows what the
    call costs when the machine is shared and the wall clock includes waiting)."""
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def interactive_suite(workdir: Path, timer: Timer) -> Iterator[Line]:
    """Time a cold pack on an open connection, logged minus unlogged, and a warm evaluate
    (``timer`` is not used: these are p50s of single calls, wall and CPU, see ``_p50``)."""
    from buddy.api import Buddy
    from buddy.demo import SAMPLE_IDEAS, place_idea, prepare_store
    from buddy.jobs.levels import run_levels_job
    from buddy.jobs.regime import run_regime_job
    from buddy.store import Store

    store = Store(workdir / "interactive.duckdb")
    prepare_store(store, echo=lambda _: None, progress=False)
    run_regime_job(store, [SYMBOL], workers=1, progress=False)
    run_levels_job(store, [SYMBOL], progress=False)
    buddy = Buddy(store)
    idea = next(i for i in SAMPLE_IDEAS if i.symbol == SYMBOL)
    intent = buddy.make_intent(**place_idea(buddy, idea))
    buddy.evaluate_intent(intent, log=False)  # imports, calendars, the catalogue

    def cold_pack() -> None:
        buddy.builder.clear()
        buddy.builder.build(intent.user_id, intent.symbol, intent.timeframe, intent.as_of)

    with store.reading():
        store.tickers()  # the shared connection is open: the pack pays no connect
        cold, cold_cpu = _p50(cold_pack, 15)
    cold_connect, _ = _p50(cold_pack, 9)
    pack = buddy.builder.build(intent.user_id, intent.symbol, intent.timeframe, intent.as_of)
    stored = "stored snapshots" if not {"regime", "levels"} & set(pack.missing) else \
        f"missing {sorted(pack.missing)}"
    yield _line(f"cold ContextPack p50 (open connection, {stored})", cold,
                f"cpu {cold_cpu * 1e3:7.1f} ms  with its connect {cold_connect * 1e3:7.1f} ms  ",
                COLD_PACK_GOAL_S)

    warm, warm_cpu = _p50(lambda: buddy.evaluate_intent(intent, log=False), 31)
    logged, logged_cpu = _p50(lambda: buddy.evaluate_intent(intent, log=True), 21)
    yield _line("logged evaluation p50 minus unlogged (warm pack)", logged - warm,
                f"cpu {(logged_cpu - warm_cpu) * 1e3:6.1f} ms  logged {logged * 1e3:7.1f} ms, "
                f"unlogged {warm * 1e3:6.2f} ms  ", LOGGING_GOAL_S)
    yield _line("warm evaluate p50 (pack and catalogue cached, no log)", warm,
                f"cpu {warm_cpu * 1e3:6.2f} ms  ", WARM_GOAL_S)
