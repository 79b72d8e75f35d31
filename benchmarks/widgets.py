"""Benchmark of the widget workbench: click-to-report against the evaluation alone.

Both sides evaluate the same idea with a warm ContextPack cache and log it, as the Evaluate
button does. The click adds reading the form, building the report model and widgets and
drawing the chart; the goal is that this costs no more than the evaluation itself (<= 2x).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

from benchmarks.suites import Line, Timer
from buddy.api import Buddy
from buddy.demo import SAMPLE_IDEAS, place_idea, prepare_store
from buddy.store import Store
from buddy.widgets.app import WorkbenchApp, install_providers
from buddy.widgets.chart import chart_model

GOAL_RATIO = 2.0


def widgets_suite(workdir: Path, timer: Timer) -> Iterator[Line]:
    """Yield click-to-report (warm cache) against ``Buddy.evaluate`` of the same idea."""
    store = Store(workdir / "sample.duckdb")
    prepare_store(store, echo=lambda _: None, progress=False)
    buddy = Buddy(store)
    install_providers(buddy.builder)
    fields = place_idea(buddy, SAMPLE_IDEAS[0])
    app = WorkbenchApp(buddy, user=str(fields["user"]))
    for name in ("symbol", "side", "timeframe", "as_of", "entry", "stop", "target", "size",
                 "horizon"):
        app.fields[name].value = str(fields[name])
    app.evaluate_button.click()  # warm the pack and catalogue caches
    if app.report is None:
        raise RuntimeError(f"the benchmark idea does not validate: {app.errors}")
    misses = buddy.builder.misses

    ours = timer(app.evaluate_button.click, repeat=5, number=3)
    base = timer(lambda: buddy.evaluate(**fields), repeat=5, number=3)
    warm = buddy.builder.misses == misses
    ratio = ours / base
    met = warm and ratio <= GOAL_RATIO
    label = "click-to-report (warm cache) vs Buddy.evaluate alone"
    yield Line(f"{label:<58} ours {ours * 1e3:9.3f} ms  baseline {base * 1e3:9.3f} ms  "
               f"ratio {ratio:6.2f}x  goal <= {GOAL_RATIO:g}x  {'OK' if met else 'MISSED'}"
               + ("" if warm else "  (the pack was rebuilt: cache not warm)"), met)

    ctx, intent = app.model.context, app.model.report.intent
    chart = timer(lambda: chart_model(ctx, intent), repeat=5, number=3)
    bare = timer(lambda: buddy.evaluate(**fields, log=False), repeat=5, number=20)
    start = time.perf_counter()
    app.model.evaluate()
    model_only = time.perf_counter() - start
    yield Line(f"{'  (for reference) chart drawing / evaluation without logging':<58} "
               f"{chart * 1e3:9.3f} ms / {bare * 1e3:9.3f} ms; view-model alone "
               f"{model_only * 1e3:.1f} ms", True)
