"""Daily and weekly summaries of a trader's closed trades: results in R, process, issues.

Intervals: the mean R and the mean process score carry a 95% bootstrap percentile interval
(``n_boot`` resamples with a fixed seed), the win rate a 95% Wilson score interval. With
fewer than 2 values an interval is None ("n too small"), never a guess. Trades are in the
period when they closed in it: [start, end) in UTC, a day or an ISO week (Monday first).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from buddy.store.trades import read_intent_evaluations, read_reviews, read_trades
from buddy.trades.review import REVIEW_VERSION

if TYPE_CHECKING:
    from buddy.store import Store

PERIODS: tuple[str, ...] = ("day", "week")
INTERVAL_METHOD = "bootstrap percentile 95%"
_Z95 = 1.959963984540054


@dataclass(frozen=True, slots=True, kw_only=True)
class Stat:
    """A statistic with its sample size and interval (None when n is too small)."""

    value: float | None
    n: int
    low: float | None = None
    high: float | None = None
    method: str = ""

    def text(self, unit: str = "", digits: int = 2) -> str:
        """Return 'value unit [low, high] (n=..)'."""
        if self.value is None:
            return f"n/a (n={self.n})"
        interval = ("no interval: n too small" if self.low is None else
                    f"95% [{self.low:.{digits}f}, {self.high:.{digits}f}]")
        return f"{self.value:.{digits}f}{unit} ({interval}, n={self.n})"


@dataclass(frozen=True, slots=True, kw_only=True)
class PeriodSummary:
    """What a trader's closed trades of one day or week add up to."""

    user_id: str
    period: str
    start: datetime
    end: datetime
    n_trades: int
    n_with_r: int
    mean_r: Stat
    total_r: float | None
    win_rate: Stat
    pnl: float
    process_score: Stat
    grades: dict[str, int]
    process_outcome: dict[str, int]
    issue_codes: list[tuple[str, int]]
    rule_breaks: list[tuple[str, int]]
    best_by_process: list[dict[str, Any]]
    worst_by_process: list[dict[str, Any]]
    r_values: list[float] = field(default_factory=list)
    equity_r: list[float] = field(default_factory=list)
    interval_method: str = INTERVAL_METHOD


def period_bounds(period: str, day: date) -> tuple[datetime, datetime]:
    """Return [start, end) in UTC of the day, or the ISO week, holding ``day``."""
    if period not in PERIODS:
        raise ValueError(f"period: must be one of {', '.join(PERIODS)} (got {period!r})")
    start = day if period == "day" else day - timedelta(days=day.weekday())
    length = timedelta(days=1 if period == "day" else 7)
    begin = datetime(start.year, start.month, start.day, tzinfo=UTC)
    return begin, begin + length


def bootstrap_mean(values: np.ndarray, *, n_boot: int = 2000, seed: int = 0) -> Stat:
    """Return the mean with a 95% bootstrap percentile interval (None below n=2)."""
    n = len(values)
    if n == 0:
        return Stat(value=None, n=0, method=INTERVAL_METHOD)
    mean = float(values.mean())
    if n < 2:
        return Stat(value=mean, n=n, method=INTERVAL_METHOD)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)
    low, high = np.quantile(means, [0.025, 0.975])
    return Stat(value=mean, n=n, low=float(low), high=float(high), method=INTERVAL_METHOD)


def wilson(successes: int, n: int) -> Stat:
    """Return a proportion with its 95% Wilson score interval."""
    if n == 0:
        return Stat(value=None, n=0, method="Wilson 95%")
    p = successes / n
    centre = (p + _Z95**2 / (2 * n)) / (1 + _Z95**2 / n)
    half = _Z95 * math.sqrt(p * (1 - p) / n + _Z95**2 / (4 * n * n)) / (1 + _Z95**2 / n)
    return Stat(value=p, n=n, low=centre - half, high=centre + half, method="Wilson 95%")


_CHECK_BREAKS = {"stop_honoured": "STOP_NOT_HONOURED", "risk_within_budget": "RISK_ABOVE_BUDGET",
                 "size_as_planned": "SIZE_ABOVE_PLAN", "exit_by_plan": "EXIT_OFF_PLAN",
                 "top_issues_acted_on": "ISSUES_NOT_ACTED_ON"}


def summarize(user_id: str, period: str, start: datetime, end: datetime, trades: pd.DataFrame,
              reviews: pd.DataFrame, items: pd.DataFrame, *, n_boot: int = 2000,
              seed: int = 0, top: int = 3) -> PeriodSummary:
    """Summarise closed ``trades`` with their ``reviews`` and their linked evaluations'
    ``items`` (pure)."""
    merged = trades.merge(reviews.drop(columns=["user_id"], errors="ignore"), on="trade_id",
                          how="left") if len(trades) else trades.assign(
        process_score=pd.Series(dtype=float), process_grade=pd.Series(dtype=object),
        process_outcome=pd.Series(dtype=object), review_json=pd.Series(dtype=object))
    merged = merged.sort_values(["close_ts", "trade_id"]) if len(merged) else merged
    r = merged["pnl_r"].dropna().to_numpy(np.float64) if len(merged) else np.array([])
    scores = merged["process_score"].dropna().to_numpy(np.float64) if len(merged) else r[:0]
    wins = int((merged["pnl"] > 0).sum()) if len(merged) else 0
    breaks: Counter[str] = Counter()
    for text in merged.get("review_json", pd.Series(dtype=object)).dropna():
        for check, value in json.loads(text)["checks"].items():
            if value == 0:
                breaks[_CHECK_BREAKS[check]] += 1
    codes = Counter(items["issue_code"]) if len(items) else Counter()
    graded = merged[merged["process_score"].notna()] if len(merged) else merged
    ranked = graded.sort_values(["process_score", "pnl"], ascending=[False, False]) if len(
        graded) else graded

    def brief(rows: pd.DataFrame) -> list[dict[str, Any]]:
        return [{"trade_id": row["trade_id"], "symbol": row["symbol"], "side": row["side"],
                 "process_grade": row["process_grade"], "process_score": row["process_score"],
                 "pnl_r": None if pd.isna(row["pnl_r"]) else float(row["pnl_r"]),
                 "pnl": float(row["pnl"])} for row in rows.to_dict("records")]

    return PeriodSummary(
        user_id=user_id, period=period, start=start, end=end, n_trades=len(merged),
        n_with_r=len(r), mean_r=bootstrap_mean(r, n_boot=n_boot, seed=seed),
        total_r=float(r.sum()) if len(r) else None,
        win_rate=wilson(wins, len(merged)),
        pnl=float(merged["pnl"].sum()) if len(merged) else 0.0,
        process_score=bootstrap_mean(scores, n_boot=n_boot, seed=seed),
        grades=dict(sorted(Counter(merged["process_grade"].fillna("not reviewed")).items()))
        if len(merged) else {},
        process_outcome=dict(sorted(Counter(merged["process_outcome"].dropna()).items()))
        if len(merged) else {},
        issue_codes=codes.most_common(), rule_breaks=breaks.most_common(),
        best_by_process=brief(ranked.head(top)),
        worst_by_process=brief(ranked.iloc[::-1].head(top)),
        r_values=[float(x) for x in r], equity_r=[float(x) for x in np.cumsum(r)])


def load_summary(store: Store, user_id: str, period: str, day: date, *,
                 version: str = REVIEW_VERSION, n_boot: int = 2000, seed: int = 0
                 ) -> PeriodSummary:
    """Read a user's trades closed in the period, their reviews and evaluation items, and
    summarise them."""
    start, end = period_bounds(period, day)
    with store.reading():
        trades = read_trades(store, user_id, status="closed", closed_from=start, closed_to=end)
        reviews = read_reviews(store, user_id, trade_ids=trades["trade_id"].tolist(),
                               version=version)
        linked = sorted(set(trades["linked_intent_id"].dropna())) if len(trades) else []
        items = read_intent_evaluations(store, user_id, linked)["items"]
    keep = ["trade_id", "process_score", "process_grade", "process_outcome", "review_json"]
    return summarize(user_id, period, start, end, trades,
                     reviews[keep] if len(reviews) else pd.DataFrame(columns=keep), items,
                     n_boot=n_boot, seed=seed)


def render_summary(summary: PeriodSummary) -> str:
    """Return a summary as text."""
    s = summary
    lines = [f"Summary for {s.user_id}, {s.period} {s.start:%Y-%m-%d} to {s.end:%Y-%m-%d} "
             f"(UTC, by close time): {s.n_trades} closed trades, pnl {s.pnl:.2f}",
             f"  mean R: {s.mean_r.text(' R')}; total {_r_text(s.total_r)} over "
             f"{s.n_with_r} trades with a known stop",
             f"  win rate: {s.win_rate.text(digits=2)} (Wilson)",
             f"  process score: {s.process_score.text()}; grades {s.grades or 'none'}",
             f"  process vs outcome: {s.process_outcome or 'none'}",
             f"  intervals: {s.interval_method}"]
    lines.append("  recurring issue codes: " + (", ".join(
        f"{c} x{n}" for c, n in s.issue_codes) or "none"))
    lines.append("  rule breaks: " + (", ".join(f"{c} x{n}" for c, n in s.rule_breaks)
                                      or "none"))
    for title, rows in (("best by process", s.best_by_process),
                        ("worst by process", s.worst_by_process)):
        lines.append(f"  {title}:")
        lines += [f"    {t['trade_id']} {t['symbol']} {t['side']} grade {t['process_grade']} "
                  f"({t['process_score']:.2f}), {_r_text(t['pnl_r'])}"
                  for t in rows] or ["    none graded"]
    return "\n".join(lines)


def _r_text(value: float | None) -> str:
    return "n/a R" if value is None else f"{value:.2f} R"
