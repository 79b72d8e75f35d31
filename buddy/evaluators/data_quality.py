"""DataQuality: is the market data behind this evaluation fit to judge by?

Flags a last bar that is stale against as_of, missing TA features on the last bar, gaps in the
lookback window against the trading calendar, and too little history for the indicators.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from buddy.config import ModuleConfig, param
from buddy.context.pack import ContextPack
from buddy.domain import EvaluationResult, Fact, Severity, TradeIntent
from buddy.evaluators.base import Evaluator, IssueTemplate
from buddy.evaluators.registry import register

#: Features every evaluator leans on; missing any of them on the last bar is flagged.
CORE_FEATURES = ("atr_14", "rsi_14", "ema_20", "sma_50", "adx_14", "rv_20")


@dataclass(frozen=True, slots=True, kw_only=True)
class DataQualityConfig(ModuleConfig):
    """Thresholds of the data-quality checks."""

    config_name = "data_quality"

    max_stale_sessions: int = param(1, lo=0, hi=30, unit="sessions",
                                    doc="sessions that may close after the last bar before "
                                        "the data counts as stale")
    max_gap_pct: float = param(2.0, lo=0.0, hi=100.0, unit="%",
                               doc="share of calendar sessions in the window with no bar")
    min_history_bars: int = param(200, lo=1, hi=5000, unit="bars",
                                  doc="bars needed before the longest indicator (SMA 200) "
                                      "is meaningful")


@register
class DataQualityEvaluator(Evaluator):
    """Check staleness, missing features, gaps and history length of the market data."""

    name = "data_quality"
    version = "1.0.0"
    requires = frozenset({"market"})
    config_cls = DataQualityConfig
    templates: ClassVar = {
        "STALE_DATA": IssueTemplate(
            "Stale market data",
            "{sessions_since_last_bar} closed after the last {timeframe} bar and before the "
            "evaluation time (allowed: {max_stale_sessions}).",
            "Load bars up to the evaluation time before relying on this report."),
        "MISSING_FEATURES": IssueTemplate(
            "Indicators missing on the last bar",
            "{n_missing} have no value on the last bar: {missing_features}.",
            "Run `buddy jobs features` for this symbol and timeframe."),
        "DATA_GAPS": IssueTemplate(
            "Gaps in the price history",
            "{n_missing_sessions} of {window_sessions} in the lookback window have no bar "
            "({gap_pct} against an allowed {max_gap_pct}).",
            "Check the data source for the missing sessions; indicators over the gap are "
            "less reliable."),
        "SHORT_HISTORY": IssueTemplate(
            "Short price history",
            "Only {n_bars} are available before the evaluation time "
            "(needed: {min_history_bars}).",
            "Treat trend and volatility readings with caution, or evaluate on a timeframe "
            "with more history."),
    }

    def evaluate(self, intent: TradeIntent, ctx: ContextPack) -> EvaluationResult:
        """Return data-quality issues for the market piece of ``ctx``."""
        market = ctx.market
        assert market is not None  # guaranteed by requires
        cfg = self.config
        issues = []
        n_bars = len(market.bars)
        if market.sessions_since_last_bar > cfg.max_stale_sessions:
            severity = (Severity.HIGH if market.sessions_since_last_bar > 5 * max(
                1, cfg.max_stale_sessions) else Severity.MEDIUM)
            issues.append(self.issue(
                "STALE_DATA", severity,
                [Fact(name="sessions_since_last_bar", value=market.sessions_since_last_bar,
                      unit="sessions", threshold=cfg.max_stale_sessions),
                 Fact(name="max_stale_sessions", value=cfg.max_stale_sessions,
                      unit="sessions"),
                 Fact(name="timeframe", value=str(ctx.timeframe)),
                 Fact(name="last_bar_close", value=market.last_bar_close.isoformat())],
                "LOAD_RECENT_BARS"))
        latest = market.latest_features
        missing = [f for f in CORE_FEATURES if not math.isfinite(latest.get(f, math.nan))]
        if missing:
            issues.append(self.issue(
                "MISSING_FEATURES", Severity.MEDIUM,
                [Fact(name="n_missing", value=len(missing), unit="features"),
                 Fact(name="missing_features", value=", ".join(missing))],
                "RUN_FEATURES_JOB"))
        n_gaps = len(market.missing_sessions)
        gap_pct = 100.0 * n_gaps / market.window_sessions if market.window_sessions else 0.0
        if gap_pct > cfg.max_gap_pct:
            issues.append(self.issue(
                "DATA_GAPS", Severity.LOW if gap_pct < 5 * cfg.max_gap_pct else Severity.MEDIUM,
                [Fact(name="n_missing_sessions", value=n_gaps, unit="sessions"),
                 Fact(name="window_sessions", value=market.window_sessions, unit="sessions"),
                 Fact(name="gap_pct", value=round(gap_pct, 2), unit="%",
                      threshold=cfg.max_gap_pct),
                 Fact(name="max_gap_pct", value=cfg.max_gap_pct, unit="%")],
                "CHECK_DATA_SOURCE"))
        if n_bars < cfg.min_history_bars:
            issues.append(self.issue(
                "SHORT_HISTORY", Severity.LOW,
                [Fact(name="n_bars", value=n_bars, unit="bars",
                      threshold=cfg.min_history_bars),
                 Fact(name="min_history_bars", value=cfg.min_history_bars, unit="bars")],
                "USE_MORE_HISTORY"))
        facts = [Fact(name="n_bars", value=n_bars, unit="bars"),
                 Fact(name="last_close", value=market.last_close, unit="price"),
                 Fact(name="sessions_since_last_bar", value=market.sessions_since_last_bar,
                      unit="sessions"),
                 Fact(name="gap_pct", value=round(gap_pct, 2), unit="%")]
        return self.result(issues, facts)
