"""DataQuality: is the market data behind this evaluation fit to judge by?

Flags a last bar that is stale against as_of, missing TA features on the last bar, gaps in the
lookback window against the trading calendar, and too little history for the indicators.

Gaps and staleness are counted in the periods a bar stands for: calendar sessions up to daily
bars, weeks on weekly bars (a weekly bar covers every session of its week, so counting
sessions there would call four of every five sessions missing, and a bar of last week stale
on a Wednesday). Every code warns about the report's own inputs: no trade outcome can judge
it (``measure`` None).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pandas as pd

from buddy.batch.columns import iso_utc
from buddy.batch.result import BatchResult, IssueBlock
from buddy.config import ModuleConfig, param
from buddy.domain import Severity
from buddy.evaluators.base import Code, Evaluator, Evidence, severity_where
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
class DataQualityEvaluator(Evaluator[DataQualityConfig]):
    """Check staleness, missing features, gaps and history length of the market data."""

    name = "data_quality"
    version = "1.1.0"
    requires = frozenset({"market"})
    config_cls = DataQualityConfig
    codes: ClassVar = {
        "STALE_DATA": Code(
            "Stale market data",
            "{sessions_since_last_bar} {period} closed after the last {timeframe} bar and "
            "before the evaluation time (allowed: {max_stale_sessions}).",
            "Load bars up to the evaluation time before relying on this report.",
            evidence=(Evidence("sessions_since_last_bar", threshold="max_stale_sessions"),
                      Evidence("max_stale_sessions"), Evidence("period"),
                      Evidence("timeframe"), Evidence("last_bar_close")),
            action="LOAD_RECENT_BARS",
            harm="the report judges the trade on prices that are no longer current; a fault "
                 "of the report's inputs that no trade outcome measures", measure=None),
        "MISSING_FEATURES": Code(
            "Indicators missing on the last bar",
            "{n_missing} have no value on the last bar: {missing_features}.",
            "Run `buddy jobs features` for this symbol and timeframe.",
            evidence=(Evidence("n_missing", "features"), Evidence("missing_features")),
            action="RUN_FEATURES_JOB",
            harm="checks that read these indicators ran without them, so the report's "
                 "figures are incomplete; a fault of the inputs that no outcome measures",
            measure=None),
        "DATA_GAPS": Code(
            "Gaps in the price history",
            "{n_missing_sessions} of {window_sessions} {period} in the lookback window have "
            "no bar ({gap_pct} against an allowed {max_gap_pct}).",
            "Check the data source for the missing sessions; indicators over the gap are "
            "less reliable.",
            evidence=(Evidence("n_missing_sessions"), Evidence("window_sessions"),
                      Evidence("period"),
                      Evidence("gap_pct", "%", digits=2, threshold="max_gap_pct"),
                      Evidence("max_gap_pct", "%")),
            action="CHECK_DATA_SOURCE",
            harm="indicators, levels and ranges are computed over missing bars, so the "
                 "report's figures rest on incomplete data; no outcome measures that",
            measure=None),
        "SHORT_HISTORY": Code(
            "Short price history",
            "Only {n_bars} are available before the evaluation time "
            "(needed: {min_history_bars}).",
            "Treat trend and volatility readings with caution, or evaluate on a timeframe "
            "with more history.",
            evidence=(Evidence("n_bars", "bars", threshold="min_history_bars"),
                      Evidence("min_history_bars", "bars")),
            action="USE_MORE_HISTORY",
            harm="long indicators (SMA 200, regimes) rest on too few bars, so the report's "
                 "trend and volatility figures are unreliable; no outcome measures that",
            measure=None),
    }
    explain = (Evidence("n_bars", "bars"), Evidence("last_close", "price"),
               Evidence("sessions_since_last_bar"), Evidence("period"),
               Evidence("gap_pct", "%", digits=2))

    def evaluate_batch(self, ctx: BatchContext) -> BatchResult:
        """Flag stale data, missing core features, calendar gaps and short history: each
        check is one comparison over the market columns."""
        cfg = self.config
        market = ctx.market
        stale = market["sessions_since_last_bar"].to_numpy(np.int64).copy()
        window = market["window_sessions"].to_numpy(np.int64).copy()
        n_gaps = market["n_missing_sessions"].to_numpy(np.int64).copy()
        n_bars = market["n_bars"].to_numpy(np.int64)
        weekly = (ctx.intents["timeframe"] == Timeframe.W1.value).to_numpy(bool, na_value=False)
        period = _PERIODS[weekly.astype(np.intp)]
        if weekly.any():
            _weekly_counts(ctx, np.flatnonzero(weekly), stale, window, n_gaps)
        with np.errstate(divide="ignore", invalid="ignore"):
            gap_pct = np.where(window != 0, 100.0 * n_gaps / np.where(window != 0, window, 1),
                               0.0)
        missing = np.zeros(ctx.n, dtype=np.int64)  # bit k: CORE_FEATURES[k] is not finite
        for k, feature in enumerate(CORE_FEATURES):
            finite = (np.isfinite(ctx.latest[feature].to_numpy(np.float64))
                      if feature in ctx.latest else np.zeros(ctx.n, dtype=bool))
            missing |= np.where(finite, 0, 1 << k)
        blocks: list[IssueBlock] = []

        rows = np.flatnonzero(stale > cfg.max_stale_sessions)
        if len(rows):
            blocks.append(self.fire(
                "STALE_DATA", rows,
                severity_where(stale[rows] > 5 * max(1, cfg.max_stale_sessions),
                               Severity.HIGH, Severity.MEDIUM),
                sessions_since_last_bar=stale[rows],
                max_stale_sessions=cfg.max_stale_sessions, period=period[rows],
                timeframe=ctx.intents["timeframe"].iloc[rows].to_numpy(object),
                last_bar_close=iso_utc(market["last_bar_close"].iloc[rows])))

        rows = np.flatnonzero(missing)
        if len(rows):
            # named once per distinct set of missing features
            sets, inverse = np.unique(missing[rows], return_inverse=True)
            names = [[f for k, f in enumerate(CORE_FEATURES) if bits >> k & 1]
                     for bits in sets.tolist()]
            inverse = inverse.reshape(-1)
            blocks.append(self.fire(
                "MISSING_FEATURES", rows, Severity.MEDIUM,
                n_missing=np.array([len(x) for x in names], dtype=np.int64)[inverse],
                missing_features=np.array([", ".join(x) for x in names], dtype=object)[inverse]))

        rows = np.flatnonzero(gap_pct > cfg.max_gap_pct)
        if len(rows):
            blocks.append(self.fire(
                "DATA_GAPS", rows,
                severity_where(gap_pct[rows] < 5 * cfg.max_gap_pct, Severity.LOW,
                               Severity.MEDIUM),
                n_missing_sessions=n_gaps[rows], window_sessions=window[rows],
                period=period[rows], gap_pct=gap_pct[rows], max_gap_pct=cfg.max_gap_pct))

        rows = np.flatnonzero(n_bars < cfg.min_history_bars)
        if len(rows):
            blocks.append(self.fire("SHORT_HISTORY", rows, Severity.LOW, n_bars=n_bars[rows],
                                    min_history_bars=cfg.min_history_bars))
        return self.result(ctx.n, blocks, explain={
            "n_bars": n_bars, "last_close": market["last_close"].to_numpy(np.float64),
            "sessions_since_last_bar": stale, "period": period, "gap_pct": gap_pct})


#: What a row's counts count: sessions, or weeks on weekly bars (indexed by ``weekly``).
_PERIODS = np.array(["sessions", "weeks"], dtype=object)

#: 1970-01-01 was a Thursday: (days since the epoch + 3) // 7 numbers Monday-based weeks.
_THURSDAY = 3


def _weeks(days: np.ndarray) -> np.ndarray:
    return (days + _THURSDAY) // 7


def _weekly_counts(ctx: BatchContext, rows: np.ndarray, stale: np.ndarray,
                   window: np.ndarray, n_gaps: np.ndarray) -> None:
    """Put weeks in place of sessions on ``rows`` (weekly bars): ``window`` the weeks from
    the window's first bar to its last, ``n_gaps`` those without a bar, ``stale`` the whole
    weeks between the last bar's week and the week of as_of (in the exchange's zone)."""
    bars = ctx.bars.take(rows)
    has = bars.lengths > 0
    window[rows[~has]] = 0
    n_gaps[rows[~has]] = 0
    if not has.any():
        return
    rows, bars = rows[has], bars.take(np.flatnonzero(has))
    days = np.asarray(pd.to_datetime(bars.column("session")), dtype="datetime64[D]").astype(
        np.int64)
    first, last = _weeks(days[bars.start]), _weeks(days[bars.stop - 1])
    bar_weeks = _weeks(days)
    # distinct weeks with a bar in each window (a week with two bars counts once)
    new_week = np.ones(len(bar_weeks), dtype=bool)
    new_week[1:] = bar_weeks[1:] != bar_weeks[:-1]
    before = np.concatenate([[0], np.cumsum(new_week)])
    have = before[bars.stop] - before[bars.start] + ~new_week[bars.start]
    window[rows] = last - first + 1
    n_gaps[rows] = np.maximum(window[rows] - have, 0)
    as_of = pd.to_datetime(ctx.intents["as_of"].iloc[rows], utc=True)
    zones = ctx.instrument["timezone"].to_numpy(object)[rows]
    local_days = np.array([
        (ts.tz_convert(zone).tz_localize(None).normalize() - pd.Timestamp(0)).days
        for ts, zone in zip(as_of, zones, strict=True)], dtype=np.int64)
    stale[rows] = np.maximum(_weeks(local_days) - last - 1, 0)
