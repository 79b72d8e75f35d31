"""The HTTP service under load (issue #20): `python -m benchmarks --only service`.

Setup (timed apart, printed for reference): the bundled data, features and regime snapshots,
the demo trader with its whole history and entry facts (what `make demo` gives the demo
user), and one API key. Then a real uvicorn serves the app on that file in a child process on
a free loopback port, and ``buddy.service.loadtest.run_load`` sends evaluate requests for the
demo's sample ideas (inline intents, logged) at 1, 4 and 16 concurrent clients,
``REQUESTS_PER_LEVEL`` each after a warm-up of one request per idea (each idea's context
pack built once, as a server that has run for a while has them). Each level prints its
throughput and its p50 and p99 latency with 95% order-statistic intervals, and where the
answered evaluations' rows went (logged, or queued durably while the file was busy). The
goal is the issue's: 0 errors and 0 lost evaluation rows (every answered eval_id has its
trade_evaluations row once the server stopped); the figures themselves are for reference:
one Python process serves them all and the service runs one request's store work at a
time, so more clients wait longer at about the same throughput.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.suites import Line, Timer

if TYPE_CHECKING:  # imported when the suite runs: `python -m benchmarks` loads every suite
    from buddy.service.loadtest import Quantile

LEVELS = (1, 4, 16)
REQUESTS_PER_LEVEL = 64
USER = "demo"


def _in_process_p50(db: Path, bodies: list[dict[str, Any]]) -> Quantile:
    """Return the p50 of the same evaluations (validated, warm, logged) through ``Buddy``
    in this process with the production config the service resolves: what the service and
    HTTP add is the rest."""
    from buddy.api import Buddy
    from buddy.config_sources import PRODUCTION, resolve_scoring_config
    from buddy.service.loadtest import quantile
    from buddy.store import Store

    buddy = Buddy(Store(db), resolve_scoring_config(PRODUCTION))
    for body in bodies:  # each idea's pack built once, as the service's warm-up does
        buddy.evaluate_intent(buddy.make_intent(user=USER, **body["intent"]), log=True)
    times = []
    for i in range(REQUESTS_PER_LEVEL):
        # a new intent each time (its own trade_intents row), as each request makes one
        start = time.perf_counter()
        intent = buddy.make_intent(user=USER, **bodies[i % len(bodies)]["intent"])
        buddy.evaluate_intent(intent, log=True)
        times.append(time.perf_counter() - start)
    return quantile(times, 0.5)


def service_suite(workdir: Path, timer: Timer) -> Iterator[Line]:
    """Serve the demo database over HTTP and print evaluate's throughput, p50 and p99 at each
    level of concurrent clients, and whether every answered evaluation was logged
    (``timer`` is not used: these are latencies of single requests under load)."""
    from buddy.demo import prepare_store
    from buddy.jobs.strategy import refresh_entry_facts
    from buddy.service.auth import create_key
    from buddy.service.loadtest import (
        ServiceProcess,
        evaluation_bodies,
        lost_evaluations,
        run_load_sync,
    )
    from buddy.store import Store
    from buddy.trades.demo_history import load_demo_history

    started = time.perf_counter()
    db = workdir / "service.duckdb"
    store = Store(db)
    prepare_store(store, echo=lambda _: None, progress=False)
    load_demo_history(store, user_id=USER, folder=workdir / "service-demo-files")
    refresh_entry_facts(store, USER)
    key = create_key(store, USER, label="bench").key
    bodies = evaluation_bodies(db)
    del store  # the service is the single writer while it runs
    setup_s = time.perf_counter() - started
    in_process = _in_process_p50(db, bodies)

    with ServiceProcess(db, log_path=workdir / "service.log") as service:
        warm, levels = run_load_sync(service.base_url, key, bodies, levels=LEVELS,
                                     requests_per_level=REQUESTS_PER_LEVEL, warmup=len(bodies))
        startup_s = service.startup_s or float("nan")
    answered = [e for result in (warm, *levels) for e in result.eval_ids]
    lost = lost_evaluations(db, USER, answered)
    yield Line(f"{'  (for reference) setup: demo data, trader history, key':<58} "
               f"{setup_s:9.1f} s; service ready in {startup_s:.1f} s; {len(bodies)} ideas", True)
    for result in levels:
        for error in result.errors[:3]:
            print(f"    {error}", flush=True)
        yield Line(result.text(), not result.errors)
    over_http = levels[0].p50.value_s
    yield Line(f"{'  (for reference) the same make_intent + evaluate in process':<58} "
               f"{in_process.text('p50')} (n {in_process.n}); HTTP at 1 client adds "
               f"{(over_http - in_process.value_s) * 1e3:.1f} ms at p50", True)
    errors = sum(len(r.errors) for r in (warm, *levels))
    sent = sum(r.n for r in (warm, *levels))
    yield Line(f"{'evaluate over HTTP: errors and lost evaluation rows':<58} errors {errors} "
               f"of {sent}, lost {len(lost)} of {len(answered)} answered  goal 0 and 0  "
               f"{'PASS' if not errors and not lost else 'MISS'}",
               not errors and not lost)
