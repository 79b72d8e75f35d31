"""DataQuality: is the market data behind this evaluation fit to judge by?

Flags a last bar that is stale against as_of, missing TA features on the last bar, gaps in the
lookback window against the trading calendar, and too little history for the indicators.
``evaluate_batch`` runs the same checks column-wise on a BatchContext's market columns; the
column helpers after it are shared with the batch forms of mtfa and regime_fit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from buddy.batch.columns import evidence_once, isoformat, py_round, severity_blocks
from buddy.batch.result import BatchResult, FactColumn, IssueBlock, evidence_json, issues_frame
from buddy.config import ModuleConfig, param
from buddy.context.pack import ContextPack
from buddy.domain import EvaluationResult, Fact, Severity, TradeIntent
from buddy.evaluators.base import Evaluator, IssueTemplate
from buddy.evaluators.registry import register
from buddy.timeframes import Timeframe

if TYPE_CHECKING:
    from buddy.batch.context import BatchContext

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

    def evaluate_batch(self, ctx: BatchContext) -> BatchResult:
        """Return ``evaluate``'s verdicts on every row of ``ctx``, column-wise: the checks read
        only the market columns and the latest features, so each is one array comparison."""
        cfg = self.config
        n = ctx.n
        market = ctx.market
        stale = market["sessions_since_last_bar"].to_numpy(np.int64)
        window = market["window_sessions"].to_numpy(np.int64)
        n_gaps = market["n_missing_sessions"].to_numpy(np.int64)
        n_bars = market["n_bars"].to_numpy(np.int64)
        blocks: list[IssueBlock] = []

        rows = np.flatnonzero(stale > cfg.max_stale_sessions)
        if len(rows):
            timeframes = ctx.intents["timeframe"]
            closes = market["last_bar_close"]
            blocks += severity_blocks(
                "STALE_DATA", rows, stale[rows] > 5 * max(1, cfg.max_stale_sessions),
                Severity.HIGH, Severity.MEDIUM, evidence_once(
                    rows, (stale[rows], timeframes.iloc[rows], closes.iloc[rows]),
                    lambda r: [
                        FactColumn("sessions_since_last_bar", stale[r], "sessions",
                                   cfg.max_stale_sessions),
                        FactColumn("max_stale_sessions", cfg.max_stale_sessions, "sessions"),
                        FactColumn("timeframe", [str(Timeframe.parse(t))
                                                 for t in timeframes.iloc[r]]),
                        FactColumn("last_bar_close", isoformat(closes.iloc[r], pandas=False))]))

        missing = np.zeros(n, dtype=np.int64)  # bit k: CORE_FEATURES[k] is not finite
        for k, feature in enumerate(CORE_FEATURES):
            if feature in ctx.latest:
                missing |= np.where(np.isfinite(ctx.latest[feature].to_numpy(np.float64)),
                                    0, 1 << k)
            else:
                missing |= 1 << k
        rows = np.flatnonzero(missing)
        if len(rows):
            def missing_facts(r: np.ndarray) -> list[FactColumn]:
                names = [[f for k, f in enumerate(CORE_FEATURES) if bits >> k & 1]
                         for bits in missing[r].tolist()]
                return [FactColumn("n_missing", np.array([len(x) for x in names]), "features"),
                        FactColumn("missing_features", [", ".join(x) for x in names])]

            blocks.append(IssueBlock("MISSING_FEATURES", rows, Severity.MEDIUM, evidence_once(
                rows, (missing[rows],), missing_facts)))

        with np.errstate(divide="ignore", invalid="ignore"):
            gap_pct = np.where(window != 0, 100.0 * n_gaps / np.where(window != 0, window, 1),
                               0.0)
        rows = np.flatnonzero(gap_pct > cfg.max_gap_pct)
        if len(rows):
            blocks += severity_blocks(
                "DATA_GAPS", rows, gap_pct[rows] < 5 * cfg.max_gap_pct, Severity.LOW,
                Severity.MEDIUM, evidence_json([
                    FactColumn("n_missing_sessions", n_gaps[rows], "sessions"),
                    FactColumn("window_sessions", window[rows], "sessions"),
                    FactColumn("gap_pct", py_round(gap_pct[rows], 2), "%", cfg.max_gap_pct),
                    FactColumn("max_gap_pct", cfg.max_gap_pct, "%")], len(rows)))

        rows = np.flatnonzero(n_bars < cfg.min_history_bars)
        if len(rows):
            blocks.append(IssueBlock("SHORT_HISTORY", rows, Severity.LOW, evidence_once(
                rows, (n_bars[rows],), lambda r: [
                    FactColumn("n_bars", n_bars[r], "bars", cfg.min_history_bars),
                    FactColumn("min_history_bars", cfg.min_history_bars, "bars")])))
        return BatchResult.from_issues(self.name, self.version, n, issues_frame(blocks))
