"""Portfolio risk benchmark (issue #18).

- Exposure computation for a 200-position book on 10 years of daily closes (2,520 days,
  seeded synthetic prices from a market + sector factor model, every day observed): log
  returns, pairwise moments, betas on a benchmark column, average-linkage correlation
  clusters, volatility, Euler risk contributions, parametric and historical VaR, through
  ``buddy.portfolio.risk``, against the same numpy/scipy operations written out alone with
  no checks (goal <= 2x). A reference line times the same book with 10% of days missing (the
  pairwise-complete path; the bare operations cannot take gaps).
- Batch incremental risk: 100,000 candidate intents against that book (vol, parametric and
  historical VaR before and after, each candidate's contribution after entry), historical VaR
  on the last 250 days; intents/s printed (goal: 100k in well under a second, >= 200,000/s).
- The ``portfolio`` piece on the simulated demo trader (1,861 fills, 776 logged intents, each
  its own t): every intent's piece from a fresh provider (the fills read and grouped once
  per split basis, each t a slice), CPU ms per distinct t (goal <= 20: the 776 pieces in
  about 15 s; a regroup of the fills at each t cost about 236 ms per t), with one regroup
  of the fills by t (``build_trade_rows``) for reference.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from scipy import stats
from scipy.cluster import hierarchy
from scipy.spatial.distance import squareform

from benchmarks.suites import Line, Timer, ratio_line
from buddy.portfolio import risk

N_POSITIONS = 200
N_EXTRA = 50  # instruments candidates may trade that the book does not hold
DAYS = 2520
N_CANDIDATES = 100_000
GOAL_RATIO = 2.0
GOAL_RATE = 200_000.0
GOAL_PIECE_MS = 20.0


def synthetic_closes(n: int, days: int, *, seed: int = 18) -> np.ndarray:
    """Return (days + 1, n + 1) closes: n stocks in 10 sectors, and the market in the last
    column."""
    rng = np.random.default_rng(seed)
    market = rng.normal(0.0002, 0.01, (days, 1))
    sectors = rng.normal(0, 0.008, (days, 10))
    loadings = rng.uniform(0.5, 1.5, (1, n))
    stocks = market * loadings + sectors[:, np.arange(n) % 10] + rng.normal(0, 0.012,
                                                                           (days, n))
    log_paths = np.vstack([np.zeros((1, n + 1)), np.cumsum(np.hstack([stocks, market]), 0)])
    return 50.0 * np.exp(log_paths)


def book_weights(n: int, *, seed: int = 18) -> np.ndarray:
    """Return (n,) signed weights: fractions of equity, 1.5x gross, some shorts."""
    rng = np.random.default_rng(seed)
    w = rng.uniform(0.2, 1.0, n) * np.where(rng.random(n) < 0.2, -1.0, 1.0)
    return 1.5 * w / np.abs(w).sum()


def exposure(closes: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """Compute what an exposure snapshot needs through buddy.portfolio.risk."""
    r = risk.log_returns(closes)
    stocks, market = r[:, :-1], r[:, -1]
    mom = risk.moments(stocks, min_obs=60)
    risk.betas(stocks, market)
    risk.correlation_clusters(mom, max_distance=0.5, min_obs=60)
    risk.risk_contributions(w, mom.cov)
    parametric = risk.var_parametric(w, mom.cov, 0.95, 1)
    historical = risk.var_historical(w, stocks, 0.95)
    return parametric, historical.var


def bare(closes: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """Compute the same with the numpy/scipy operations alone (complete data, no checks)."""
    r = np.log(closes[1:] / closes[:-1])
    stocks, market = r[:, :-1], r[:, -1]
    t = stocks.shape[0]
    xc = stocks - stocks.mean(axis=0)
    cov = xc.T @ xc / (t - 1)
    sd = np.sqrt(np.diag(cov))
    corr = cov / np.outer(sd, sd)
    mc = market - market.mean()
    sxx = mc @ mc
    beta = mc @ xc / sxx
    se = np.sqrt(np.clip((xc * xc).sum(axis=0) - beta * beta * sxx, 0, None) / (t - 2) / sxx)
    t_crit = stats.t.ppf(0.975, t - 2)
    _ = beta - t_crit * se, beta + t_crit * se
    dist = np.sqrt(np.clip((1 - corr) / 2, 0, 1))
    np.fill_diagonal(dist, 0.0)
    hierarchy.fcluster(hierarchy.linkage(squareform(dist, checks=False), method="average"),
                       t=0.5, criterion="distance")
    sigma_w = cov @ w
    sigma = float(np.sqrt(w @ sigma_w))
    _ = w * sigma_w / sigma
    parametric = float(stats.norm.ppf(0.95)) * sigma
    historical = -float(np.quantile(np.expm1(stocks) @ w, 0.05))
    return parametric, historical


def portfolio_suite(workdir: Path, timer: Timer) -> Iterator[Line]:
    """Exposure computation against its bare numpy operations; batch candidates per second;
    the portfolio piece per t on the demo trader (its store in ``workdir``)."""
    closes = synthetic_closes(N_POSITIONS, DAYS)
    w = book_weights(N_POSITIONS)
    ours, base = exposure(closes, w), bare(closes, w)
    assert np.allclose(ours, base, rtol=1e-9), (ours, base)
    mine = timer(lambda: exposure(closes, w), repeat=7)
    plain = timer(lambda: bare(closes, w), repeat=7)
    yield ratio_line(f"exposure, {N_POSITIONS} positions x {DAYS} days vs bare numpy", mine,
                     plain, goal=f"<= {GOAL_RATIO:g}x", met=mine / plain <= GOAL_RATIO)

    gappy = closes.copy()
    rng = np.random.default_rng(3)
    gappy[1:, :-1][rng.random((DAYS, N_POSITIONS)) < 0.1] = np.nan
    with_gaps = timer(lambda: exposure(gappy, w), repeat=5)
    yield Line(f"{'  (for reference) the same with 10% of days missing':<58} "
               f"{with_gaps * 1e3:9.3f} ms", True)

    universe = synthetic_closes(N_POSITIONS + N_EXTRA, DAYS, seed=19)[:, :-1]
    r = risk.log_returns(universe)
    cov = risk.moments(r, min_obs=60).cov
    book = np.concatenate([w, np.zeros(N_EXTRA)])
    cand_index = rng.integers(0, N_POSITIONS + N_EXTRA, N_CANDIDATES)
    cand_weight = rng.normal(0, 0.02, N_CANDIDATES)
    for window, repeat in ((250, 5), (DAYS, 1)):
        recent = r[-window:]
        risk.with_candidates(book, cov, recent, cand_index[:100], cand_weight[:100])
        elapsed = timer(lambda recent=recent: risk.with_candidates(
            book, cov, recent, cand_index, cand_weight), repeat=repeat)
        rate = N_CANDIDATES / elapsed
        if window == 250:
            met = rate >= GOAL_RATE
            yield Line(f"{'batch incremental risk, 100k intents, hist. VaR 250 days':<58} "
                       f"{rate:12,.0f} intents/s  ({elapsed:.3f} s)  goal >= "
                       f"{GOAL_RATE:,.0f}/s  {'OK' if met else 'MISSED'}", met)
        else:
            yield Line(f"{f'  (for reference) the same, hist. VaR on {window} days':<58} "
                       f"{rate:12,.0f} intents/s  ({elapsed:.3f} s)", True)
    yield from demo_piece_lines(workdir, timer)



def demo_piece_lines(workdir: Path, timer: Timer) -> Iterator[Line]:
    """Time the portfolio piece at every demo intent's t, and one regroup at t."""
    import pandas as pd

    from buddy.jobs.load import load_sample_into
    from buddy.portfolio.positions import FillInputs
    from buddy.portfolio.provider import PortfolioProvider
    from buddy.store import Store
    from buddy.store.bars import instrument_row
    from buddy.store.portfolio import record_equity
    from buddy.store.trades import read_link_inputs
    from buddy.trades.demo_history import EQUITY, load_demo_history
    from buddy.trades.service import build_trade_rows

    started = time.perf_counter()
    store = Store(workdir / "portfolio-demo.duckdb")
    load_sample_into(store)
    load_demo_history(store, user_id="demo", folder=workdir / "portfolio-demo-files")
    record_equity(store, "demo", pd.Timestamp("2000-01-03T00:00Z").to_pydatetime(), EQUITY,
                  "USD", "demo account (simulated at constant equity)")
    link = read_link_inputs(store, "demo")
    intents = link["intents"].drop_duplicates(["as_of", "symbol"])
    benchmark = {s: (instrument_row(store, s) or {}).get("benchmark")
                 for s in intents["symbol"].unique()}
    setup_s = time.perf_counter() - started
    provider = PortfolioProvider()
    cpu = time.process_time()
    wall = time.perf_counter()
    missing = 0
    for as_of, symbol in zip(intents["as_of"], intents["symbol"], strict=True):
        bench = benchmark[symbol]
        piece, _ = provider.piece_at(store, "demo", pd.Timestamp(as_of).to_pydatetime(),
                                     symbol, None if pd.isna(bench) else str(bench))
        missing += piece is None
    per_t = (time.process_time() - cpu) / len(intents)
    wall_per_t = (time.perf_counter() - wall) / len(intents)
    met = per_t * 1e3 <= GOAL_PIECE_MS and not missing
    yield Line(f"{'  (for reference) setup: sample data, demo trader, equity':<58} "
               f"{setup_s:9.1f} s", True)
    yield Line(f"{f'portfolio piece, demo trader, {len(intents)} distinct t':<58} "
               f"{per_t * 1e3:9.1f} ms CPU per t ({wall_per_t * 1e3:.1f} ms wall, "
               f"{missing} not built)  goal <= {GOAL_PIECE_MS:g} ms  "
               f"{'OK' if met else 'MISSED'}", met)
    inputs = FillInputs.read(store, "demo")
    t = pd.Timestamp(intents["as_of"].iloc[len(intents) // 2])
    fills = inputs.fills[pd.to_datetime(inputs.fills["ts"], utc=True) <= t]
    regroup = timer(lambda: build_trade_rows(fills, {**link, "tags": {}}, now=t), repeat=3)
    yield Line(f"{'  (for reference) one regroup of the fills by t':<58} "
               f"{regroup * 1e3:9.1f} ms", True)
