"""Fills import benchmark: broker fills into the store against a plain DuckDB bulk insert of the
same rows (goal: at least 0.3x the plain insert's fills/s).

Two measures on N synthetic canonical fills (N = $BENCH_FILLS, default 1,000,000):

- write path: a canonical frame checked (every rule of buddy.trades.fills) and written by the
  import's store function (anti-join on (user_id, exec_id), INSERT ... ON CONFLICT DO NOTHING
  into the keyed table) in one transaction;
- whole import: the same rows as a generic CSV file, parsed, checked and written by
  ``import_fills``.

The baseline inserts the same canonical frame into an unkeyed table of the same columns in one
statement. Every round uses fresh database files.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from benchmarks.suites import Line, Timer
from buddy.data.sample import load_sample
from buddy.store import Store
from buddy.store.fills import existing_exec_ids, insert_fills
from buddy.trades.fills import canonical, fill_errors
from buddy.trades.importer import import_fills

N_FILLS = int(os.environ.get("BENCH_FILLS", "1000000"))
GOAL_RATIO = 0.3
SYMBOLS = ("AAPL", "IBM", "MSFT", "GOOG", "EURUSD")


def synthetic_fills(n: int, *, seed: int = 3) -> pd.DataFrame:
    """Return ``n`` canonical fills of one user over the sample symbols, one a second."""
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2012-01-03 14:30", periods=n, freq="s", tz="UTC").astype(
        "datetime64[us, UTC]")
    return canonical(pd.DataFrame({
        "user_id": "bench", "account": "U1", "symbol": rng.choice(SYMBOLS, n), "ts": ts,
        "side": rng.choice(("buy", "sell"), n), "qty": rng.integers(1, 500, n).astype(float),
        "price": np.round(rng.uniform(10, 600, n), 2), "commission": 1.0, "fees": 0.0,
        "currency": "USD", "exec_id": [f"E{i:09d}" for i in range(n)], "source": "generic",
        "source_file": "bench.csv", "source_row": np.arange(1, n + 1), "open_close": None,
        "order_id": None, "venue": None, "imported_at": pd.Timestamp("2026-01-01", tz="UTC"),
    }))


def _fresh(workdir: Path, name: str) -> Path:
    path = workdir / name
    for stale in (path, path.with_name(path.name + ".wal")):
        stale.unlink(missing_ok=True)
    return path


def _timed(prepare: Callable[[], object], run: Callable[[object], object], repeat: int
           ) -> float:
    times = []
    for _ in range(repeat):
        arg = prepare()
        start = time.perf_counter()
        run(arg)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def trades_suite(workdir: Path, timer: Timer) -> Iterator[Line]:
    """Write path and whole import of N fills against a plain bulk insert of the same rows."""
    fills = synthetic_fills(N_FILLS)
    csv = workdir / "bench_fills.csv"
    fills.assign(ts=fills["ts"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"))[
        ["ts", "symbol", "side", "qty", "price", "commission", "currency", "exec_id",
         "account"]].to_csv(csv, index=False)
    template = Store(_fresh(workdir, "bench_template.duckdb"))
    tickers = load_sample().tickers
    template.write_market_data(tickers=tickers[tickers["symbol"].isin(SYMBOLS)])
    repeat = 3 if N_FILLS <= 200_000 else 1

    def plain_db() -> duckdb.DuckDBPyConnection:
        con = duckdb.connect(str(_fresh(workdir, "bench_plain.duckdb")))
        con.execute("SET TimeZone = 'UTC'")
        con.execute(
            "CREATE TABLE plain (user_id VARCHAR, account VARCHAR, symbol VARCHAR, "
            "ts TIMESTAMPTZ, side VARCHAR, qty DOUBLE, price DOUBLE, commission DOUBLE, "
            "fees DOUBLE, currency VARCHAR, exec_id VARCHAR, source VARCHAR, "
            "source_file VARCHAR, source_row INTEGER, open_close VARCHAR, order_id VARCHAR, "
            "venue VARCHAR, imported_at TIMESTAMPTZ)")
        return con

    def plain_insert(con: object) -> None:
        assert isinstance(con, duckdb.DuckDBPyConnection)
        con.register("incoming", fills)
        con.execute("INSERT INTO plain SELECT * FROM incoming")
        con.close()

    def fresh_store() -> Store:
        path = _fresh(workdir, "bench_fills.duckdb")
        path.write_bytes(template.path.read_bytes())
        return Store(path)

    def write_path(store: object) -> None:
        assert isinstance(store, Store)
        assert not fill_errors(fills)
        with store.transaction() as con:
            fresh = fills[~fills["exec_id"].isin(existing_exec_ids(con, fills))]
            assert insert_fills(con, fresh) == N_FILLS

    def whole_import(store: object) -> None:
        assert isinstance(store, Store)
        summary = import_fills(store, csv, user_id="bench", fmt="generic")
        assert summary.new == N_FILLS

    base = _timed(plain_db, plain_insert, repeat)
    for label, run in (("write path", write_path), ("whole import (CSV parse)", whole_import)):
        ours = _timed(fresh_store, run, repeat)
        ratio = base / ours
        met = ratio >= GOAL_RATIO
        text = (f"fills {label} ({N_FILLS:,} fills)"[:58])
        yield Line(f"{text:<58} ours {N_FILLS / ours:12,.0f} fills/s  plain insert "
                   f"{N_FILLS / base:12,.0f} fills/s  ratio {ratio:5.2f}x  goal >= "
                   f"{GOAL_RATIO:g}x  {'OK' if met else 'MISSED'}", met)
