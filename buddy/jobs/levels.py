"""The key-levels job: compute key_levels rows for every (symbol, timeframe) with new bars.

Incremental and idempotent, like the features job: each series with new bars is recomputed
over its full history (swings, clusters and anchored VWAPs reach far back, so every row equals
its point-in-time value), and only rows for bars newer than the last stored row are written. A
series whose stored rows come from another LEVELS_VERSION is rewritten whole. A second run with
no new bars writes nothing.

Symbols are spread over ``workers`` processes (one symbol, all its timeframes, per task); the
parent reads the bars once, sends each worker its series, and is the only writer: results are
written in batches of about ``WRITE_BATCH_ROWS`` rows, each in one transaction, the nested
levels as typed columns (``buddy.store.levels.write_key_levels``: Arrow structs and lists go
in as they are, no JSON). Rows hold no user data: user anchors are added by the provider at
read time, never stored here.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa
from tqdm.auto import tqdm

from buddy.levels.compute import LEVELS_VERSION, compute_key_levels, levels_table
from buddy.store import Store
from buddy.store.bars import last_bar_ts, series_bars
from buddy.store.levels import stored_coverage, trading_calendars, write_key_levels

WRITE_BATCH_ROWS = 250_000

#: (timeframe, bars, last stored ts or None) of one symbol's series to compute.
_SeriesTask = tuple[str, pd.DataFrame, pd.Timestamp | None]


@dataclass(frozen=True, slots=True)
class LevelsJobResult:
    """What a key-levels run did."""

    series: int  # (symbol, timeframe) pairs examined
    series_updated: int
    rows_written: int


def run_levels_job(store: Store, symbols: Sequence[str] | None = None,
                   timeframes: Sequence[str] | None = None, workers: int = 2,
                   progress: bool = True) -> LevelsJobResult:
    """Compute and store key levels for new bars over ``workers`` processes; return counts."""
    coverage = last_bar_ts(store, symbols, timeframes)
    stored = stored_coverage(store)
    done = {(r.symbol, r.timeframe): r.last_ts for r in stored.itertuples()
            if r.oldest == LEVELS_VERSION and r.newest == LEVELS_VERSION}
    todo = {(r.symbol, r.timeframe): done.get((r.symbol, r.timeframe))
            for r in coverage.itertuples()
            if done.get((r.symbol, r.timeframe)) is None
            or r.last_ts > done[(r.symbol, r.timeframe)]}
    if not todo:
        return LevelsJobResult(series=len(coverage), series_updated=0, rows_written=0)
    tasks = _tasks(store, todo)
    computed_at = pd.Timestamp.now(tz="UTC")
    written = 0
    pending: list[pa.Table] = []
    with tqdm(total=len(todo), disable=not progress, desc="levels", unit="series") as bar:
        for tables in _results(tasks, workers):
            pending.extend(tables)
            bar.update(len(tables))
            if sum(t.num_rows for t in pending) >= WRITE_BATCH_ROWS:
                written += _write(store, pending, computed_at)
                pending = []
        written += _write(store, pending, computed_at)
    return LevelsJobResult(series=len(coverage), series_updated=len(todo), rows_written=written)


def levels_for_symbol(symbol: str, series: list[_SeriesTask], actions: pd.DataFrame,
                      calendar: str | None = None) -> list[pa.Table]:
    """Return the key_levels rows to write for one symbol's series (a worker's task);
    ``calendar``: the symbol's trading calendar (intraday bars: when a session is over)."""
    out = []
    for _timeframe, bars, since in series:
        frame = compute_key_levels(bars, actions=actions, calendar=calendar)
        table = levels_table(frame)
        if since is not None:
            table = table.filter(pa.array(frame["ts"] > since))
        out.append(table)
    return out


def _tasks(store: Store, todo: dict[tuple[str, str], pd.Timestamp | None]
           ) -> list[tuple[str, list[_SeriesTask], pd.DataFrame, str | None]]:
    symbols = sorted({s for s, _ in todo})
    timeframes = sorted({t for _, t in todo})
    # the symbols come from the bars table, so series_where's upper-casing leaves them as they are
    bars = series_bars(store, symbols, timeframes)
    actions = store.corporate_actions()
    calendars = trading_calendars(store)
    per_symbol: dict[str, list[_SeriesTask]] = {}
    for (symbol, timeframe), series in bars.groupby(["symbol", "timeframe"], sort=True):
        if (symbol, timeframe) in todo:
            per_symbol.setdefault(symbol, []).append(
                (timeframe, series.reset_index(drop=True), todo[(symbol, timeframe)]))
    return [(symbol, series, actions[actions["symbol"] == symbol].reset_index(drop=True),
             calendars.get(symbol)) for symbol, series in per_symbol.items()]


def _results(tasks: list[tuple[str, list[_SeriesTask], pd.DataFrame, str | None]],
             workers: int
             ) -> Iterator[list[pa.Table]]:
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            yield levels_for_symbol(*task)
        return
    # fork where there is one: unlike spawn it works from scripts with no __main__ guard.
    # Workers only run numpy, pandas and pyarrow code (Arrow re-creates its thread pools after
    # a fork) and never open the database.
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [pool.submit(levels_for_symbol, *task) for task in tasks]
        for future in as_completed(futures):
            yield future.result()


def _write(store: Store, tables: list[pa.Table], computed_at: pd.Timestamp) -> int:
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return 0
    table = pa.concat_tables(tables)
    table = table.append_column("computed_at", pa.array(
        [computed_at] * table.num_rows, pa.timestamp("us", tz="UTC")))
    return write_key_levels(store, table)
