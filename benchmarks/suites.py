"""Benchmark suites. Each yields Lines: a printed result and whether its goal was met."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from buddy.api import Buddy
from buddy.context.builder import ContextPackBuilder
from buddy.data.synth import synth_universe
from buddy.demo import SAMPLE_IDEAS, place_idea, prepare_store
from buddy.store import Store
from buddy.store.core import CONTEXT_ACTIONS_SQL, CONTEXT_BARS_SQL, CONTEXT_FEATURES_SQL
from buddy.timeframes import Timeframe

Timer = Callable[..., float]


@dataclass(frozen=True, slots=True)
class Line:
    """One printed benchmark result."""

    text: str
    met: bool


def ratio_line(label: str, ours: float, base: float, *, goal: str, met: bool,
               unit: str = "ms") -> Line:
    """Return a report line: our time against the baseline's (seconds), their ratio, the goal."""
    scale = 1e3 if unit == "ms" else 1e6
    return Line(f"{label:<58} ours {ours * scale:9.3f} {unit}  baseline {base * scale:9.3f} "
                f"{unit}  ratio {ours / base:6.2f}x  goal {goal}  "
                f"{'OK' if met else 'MISSED'}", met)


def _sample_store(workdir: Path) -> Store:
    store = Store(workdir / "sample.duckdb")
    prepare_store(store, echo=lambda _: None, progress=False)
    return store


def evaluation(workdir: Path, timer: Timer) -> Iterator[Line]:
    """Warm evaluation of one intent against the sum of the evaluator bodies alone."""
    store = _sample_store(workdir)
    buddy = Buddy(store)
    intent = buddy.make_intent(**place_idea(buddy, SAMPLE_IDEAS[0]))
    ctx = buddy.builder.build(intent.user_id, intent.symbol, intent.timeframe, intent.as_of)
    buddy.evaluate_intent(intent, log=False)  # warm the pack and catalogue caches
    warm = timer(lambda: buddy.evaluate_intent(intent, log=False), repeat=7, number=200)
    # modules whose context is missing are skipped by the orchestrator: no body to time
    evaluators = [e for e, _ in buddy.orchestrator.evaluators
                  if not ctx.missing_pieces(e.requires)]
    bodies = sum(timer(lambda e=e: e.evaluate(intent, ctx), repeat=7, number=200)
                 for e in evaluators)
    names = ", ".join(e.name for e in evaluators)
    yield ratio_line(f"warm evaluate vs evaluator bodies ({names})", warm, bodies,
                      goal="<= 1.5x", met=warm / bodies <= 1.5, unit="us")
    logged = timer(lambda: buddy.evaluate_intent(intent, log=True), repeat=5, number=3)
    yield Line(f"{'  (for reference) warm evaluate + logging in one transaction':<58} "
               f"{logged * 1e3:9.3f} ms", True)


def context_build(workdir: Path, timer: Timer) -> Iterator[Line]:
    """Cold ContextPack build against the raw DuckDB queries it needs."""
    store = _sample_store(workdir)
    builder = ContextPackBuilder(store)
    buddy = Buddy(store)
    intent = buddy.make_intent(**place_idea(buddy, SAMPLE_IDEAS[0]))
    args = (intent.symbol, intent.timeframe.value, intent.as_of, builder.lookback_bars)

    def cold() -> None:
        builder.clear()
        builder.build(intent.user_id, intent.symbol, Timeframe.D1, intent.as_of)

    def raw() -> None:
        con = duckdb.connect(str(store.path), read_only=True)
        try:
            con.execute("SELECT * FROM tickers WHERE symbol = ?", [intent.symbol]).df()
            con.execute(CONTEXT_BARS_SQL, list(args)).df()
            con.execute(CONTEXT_FEATURES_SQL, list(args)).df()
            con.execute(CONTEXT_ACTIONS_SQL, [intent.symbol, intent.as_of]).df()
            con.execute("SELECT value FROM store_meta WHERE key = 'market_data_version'"
                        ).fetchone()
        finally:
            con.close()

    cold()
    ours = timer(cold, repeat=9)
    base = timer(raw, repeat=9)
    yield ratio_line("cold ContextPack build vs its raw DuckDB queries", ours, base,
                      goal="<= 2.0x", met=ours / base <= 2.0)


def bulk_load(workdir: Path, timer: Timer) -> Iterator[Line]:
    """Bulk bar load rate against a plain DuckDB insert of the same Arrow table.

    Both write into a freshly migrated file with the same schema. Timed: open, insert in one
    transaction, commit, close (the checkpoint) for both; our path adds its range delete, the
    data-version bump and the cache stamp.
    """
    bars = synth_universe(n_symbols=400, years=10, timeframe=Timeframe.D1, seed=1).bars
    arrow_bars = pa.Table.from_pandas(bars, preserve_index=False)
    paths = (workdir / f"load{n}.duckdb" for n in range(100))

    def ours() -> float:
        store = Store(next(paths))
        start = time.perf_counter()
        store.write_market_data(bars=arrow_bars)
        return time.perf_counter() - start

    def plain() -> float:
        path = next(paths)
        Store(path)  # same schema
        start = time.perf_counter()
        con = duckdb.connect(str(path))
        try:
            con.register("arrow_bars", arrow_bars)
            con.execute("BEGIN")
            con.execute("INSERT INTO bars SELECT * FROM arrow_bars")
            con.execute("COMMIT")
        finally:
            con.close()  # closing checkpoints the WAL: part of a durable write for both
        return time.perf_counter() - start

    mine = statistics.median(ours() for _ in range(3))
    base = statistics.median(plain() for _ in range(3))
    ratio = base / mine  # rate ratio: ours rows/s over baseline rows/s
    yield Line(f"{'bulk bar load rate vs plain DuckDB insert of the Arrow table':<58} "
               f"ours {len(bars) / mine / 1e6:6.2f} M rows/s  baseline "
               f"{len(bars) / base / 1e6:6.2f} M rows/s  rate ratio {ratio:5.2f}x  "
               f"goal >= 0.8x  {'OK' if ratio >= 0.8 else 'MISSED'}  ({len(bars):,} bars)",
               ratio >= 0.8)


SUITES: dict[str, Callable[[Path, Timer], Iterator[Line]]] = {
    "evaluation": evaluation,
    "context": context_build,
    "bulk_load": bulk_load,
}

