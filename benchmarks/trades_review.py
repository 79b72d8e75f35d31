"""Trade-history benchmarks: fills grouped into round trips, and reviews of many trades.

- grouping: N_FILLS synthetic fills (default 1,000,000; $BENCH_GROUP_FILLS) of one user over
  200 symbols through ``group_fills`` (FIFO), printed as fills/s; goal: under 10 s.
- reviews: N_TRADES synthetic closed trades (default 100,000; $BENCH_REVIEW_TRADES) on 1h
  bars: ``excursions`` (MAE/MFE, exit efficiency) alone, then ``generate_reviews`` (process
  checks and lessons too), printed as trades/s; goal: under 10 s each.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.suites import Line, Timer
from buddy.trades.grouping import group_fills
from buddy.trades.review import CONTEXT_COLUMNS, excursions, generate_reviews

N_FILLS = int(os.environ.get("BENCH_GROUP_FILLS", "1000000"))
N_TRADES = int(os.environ.get("BENCH_REVIEW_TRADES", "100000"))
GOAL_S = 10.0
BARS_PER_SERIES = 20_000
N_SERIES = 50


def synthetic_fills(n: int, *, seed: int = 5) -> pd.DataFrame:
    """Return ``n`` fills of one user over 200 symbols, buys and sells at random."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "user_id": "bench", "symbol": np.char.add("S", rng.integers(0, 200, n).astype(str)),
        "ts": pd.Timestamp("2015-01-02", tz="UTC") + pd.to_timedelta(
            np.sort(rng.integers(0, 10**9, n)), unit="s"),
        "side": np.where(rng.random(n) < 0.5, "buy", "sell"),
        "qty": rng.integers(1, 5, n) * 100.0, "price": rng.uniform(10, 100, n).round(2),
        "commission": 1.0, "fees": 0.0, "exec_id": np.char.add("E", np.arange(n).astype(str))})


def synthetic_reviews_input(n: int, *, seed: int = 7
                            ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Return (trades, context, bars): ``n`` closed trades of 2-12 hours on 1h random walks."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2020-01-01", tz="UTC")
    ts = start + pd.to_timedelta(np.arange(BARS_PER_SERIES), unit="h")
    frames = []
    for k in range(N_SERIES):
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.004, BARS_PER_SERIES)))
        frames.append(pd.DataFrame({
            "symbol": f"S{k}", "timeframe": "1h", "ts": ts, "ts_close": ts + pd.Timedelta("1h"),
            "session": ts.floor("D").tz_localize(None), "high": close * 1.003,
            "low": close * 0.997, "close": close}))
    bars = pd.concat(frames, ignore_index=True)
    series = rng.integers(0, N_SERIES, n)
    first = rng.integers(0, BARS_PER_SERIES - 30, n)
    held = rng.integers(2, 12, n)
    at = series * BARS_PER_SERIES
    entry = bars["close"].to_numpy()[at + first]
    exit_price = bars["close"].to_numpy()[at + first + held]
    side = np.where(rng.random(n) < 0.7, "long", "short")
    d = np.where(side == "long", 1.0, -1.0)
    open_ts = ts[first] + pd.Timedelta("30min")
    trades = pd.DataFrame({
        "trade_id": np.char.add("T", np.arange(n).astype(str)), "user_id": "bench",
        "symbol": np.char.add("S", series.astype(str)), "side": side,
        "open_ts": open_ts, "close_ts": ts[first + held] + pd.Timedelta("30min"),
        "avg_entry": entry, "avg_exit": exit_price, "initial_stop": entry * (1 - 0.01 * d),
        "initial_risk": entry * 0.01 * 100, "qty": 100.0, "max_position": 100.0,
        "multiplier": 1.0, "pnl": (exit_price - entry) * d * 100, "match_method": "fifo",
        "r_source": "intent"})
    context = pd.DataFrame({c: np.nan for c in CONTEXT_COLUMNS}, index=trades.index)
    context = context.astype(object)
    context["timeframe"] = "1h"
    context["last_exec_ts"] = open_ts
    context["currency"] = "USD"
    for c, v in (("equity", 100_000.0), ("budget_pct", 1.0), ("proposed_size", 100.0),
                 ("plan_target_r", 2.0), ("top_issues", 1.0), ("top_size_actions", 1.0),
                 ("top_stop_actions", 0.0), ("time_stop_bars", np.nan)):
        context[c] = v
    context["top_issue_codes"] = "RISK_ABOVE_BUDGET"
    context["linked_eval_id"] = None
    return trades, context, bars


def trades_review_suite(workdir: Path, timer: Timer) -> Iterator[Line]:
    """Grouping N fills; MAE/MFE and full reviews of N trades."""
    fills = synthetic_fills(N_FILLS)
    seconds = timer(lambda: group_fills(fills), repeat=3)
    yield Line(f"{'group fills into trades (FIFO), ' + f'{N_FILLS:,} fills':<58} "
               f"{N_FILLS / seconds:12,.0f} fills/s  {seconds:6.2f} s  goal < {GOAL_S:g} s  "
               f"{'OK' if seconds < GOAL_S else 'MISSED'}", seconds < GOAL_S)
    trades, context, bars = synthetic_reviews_input(N_TRADES)
    frame = pd.concat([trades, context], axis=1)
    seconds = timer(lambda: excursions(frame, bars), repeat=3)
    yield Line(f"{'MAE/MFE + exit efficiency, ' + f'{N_TRADES:,} trades':<58} "
               f"{N_TRADES / seconds:12,.0f} trades/s  {seconds:6.2f} s  goal < {GOAL_S:g} s"
               f"  {'OK' if seconds < GOAL_S else 'MISSED'}", seconds < GOAL_S)
    stamp = pd.Timestamp("2026-01-01", tz="UTC")
    seconds = timer(lambda: generate_reviews(trades, context, bars, generated_at=stamp),
                    repeat=1)
    yield Line(f"{'full reviews (checks, lessons), ' + f'{N_TRADES:,} trades':<58} "
               f"{N_TRADES / seconds:12,.0f} trades/s  {seconds:6.2f} s  goal < {GOAL_S:g} s"
               f"  {'OK' if seconds < GOAL_S else 'MISSED'}", seconds < GOAL_S)
