"""MTFA: does the trade go with or against the trends of the instrument's timeframe stack?

Reads the ``mtfa`` piece (the trend of each stack timeframe from its last closed bar, an
ADX-weighted alignment score in [-1, 1] and the opposed pairs; see ``buddy.mtfa.compute``) and
audits the intent's side against it:

- AGAINST_HIGHER_TIMEFRAME: the highest timeframe trends against the side (a long while the
  weekly trend is down);
- LOW_ALIGNMENT: the stack's alignment, signed by the side (+1 every timeframe trends the
  trade's way), is below ``min_alignment``;
- MTFA_CONFLICT: timeframes of the stack trend in opposite directions.

``evaluate_batch`` reads each distinct snapshot once and applies the side column-wise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from buddy.batch.columns import evidence_once, severity_blocks, side_values
from buddy.batch.result import BatchResult, FactColumn, IssueBlock, issues_frame
from buddy.config import ModuleConfig, param
from buddy.context.pack import ContextPack
from buddy.context.pieces import MTFASnapshot
from buddy.domain import EvaluationResult, Fact, Issue, Severity, TradeIntent
from buddy.errors import ConfigError, FieldError
from buddy.evaluators.base import Evaluator, IssueTemplate
from buddy.evaluators.registry import register
from buddy.mtfa.compute import TREND_SIGN

if TYPE_CHECKING:
    from buddy.batch.context import BatchContext


@dataclass(frozen=True, slots=True, kw_only=True)
class MTFAConfig(ModuleConfig):
    """Thresholds of the multi-timeframe checks; alignment is the score signed by the side."""

    config_name = "mtfa"

    min_alignment: float = param(0.25, lo=-1.0, hi=1.0, unit="score (-1..1)",
                                 doc="side-signed alignment below this is flagged as low")
    against_alignment: float = param(-0.25, lo=-1.0, hi=1.0, unit="score (-1..1)",
                                     doc="side-signed alignment below this (the stack leans "
                                         "against the trade) raises LOW_ALIGNMENT to medium")
    strong_trend_adx: float = param(30.0, lo=0.0, hi=100.0, unit="ADX",
                                    doc="a highest-timeframe trend against the trade at least "
                                        "this strong is high severity, else medium")

    def __post_init__(self) -> None:
        ModuleConfig.__post_init__(self)
        if self.against_alignment > self.min_alignment:
            raise ConfigError([FieldError("mtfa.against_alignment",
                                          f"must be <= min_alignment ({self.min_alignment})",
                                          self.against_alignment)])


@register
class MTFAEvaluator(Evaluator):
    """Check the intent's side against the trends of the timeframe stack."""

    name = "mtfa"
    version = "1.0.0"
    requires = frozenset({"mtfa"})
    config_cls = MTFAConfig
    templates: ClassVar = {
        "AGAINST_HIGHER_TIMEFRAME": IssueTemplate(
            "Against the higher-timeframe trend",
            "This {side} trade goes against the {higher_timeframe} trend, which reads "
            "{higher_direction} on the last closed {higher_timeframe} bar (ADX "
            "{higher_strength_adx}, close {higher_close_vs_ema50_atr} from its EMA50).",
            "Check the idea against the {higher_timeframe} chart, or size it as a "
            "counter-trend trade."),
        "LOW_ALIGNMENT": IssueTemplate(
            "Timeframes not aligned with the trade",
            "The timeframe stack ({stack}) has an alignment of {side_alignment} for this "
            "{side} trade, below {min_alignment} (+1 means every timeframe trends the "
            "trade's way).",
            "Look for a setup where more of {stack} trend the same way, or treat this as a "
            "lower-conviction trade."),
        "MTFA_CONFLICT": IssueTemplate(
            "Timeframes in conflict",
            "The stack has {n_conflicts} opposed timeframe pair(s): {conflicts}.",
            "Decide which timeframe the trade is based on and plan the stop and horizon "
            "for that one."),
    }

    def evaluate(self, intent: TradeIntent, ctx: ContextPack) -> EvaluationResult:
        """Return multi-timeframe issues for ``intent``."""
        snapshot = ctx.mtfa
        assert isinstance(snapshot, MTFASnapshot)  # guaranteed by requires
        sign = intent.side.sign
        side_alignment = round(sign * snapshot.alignment_score, 2)
        stack = "/".join(t.timeframe for t in snapshot.stack)
        issues = [*self._higher_timeframe(intent, snapshot),
                  *self._alignment(intent, side_alignment, stack),
                  *self._conflicts(snapshot)]
        facts = [Fact(name="alignment_score", value=round(snapshot.alignment_score, 4)),
                 Fact(name="side_alignment", value=side_alignment),
                 Fact(name="n_conflicts", value=len(snapshot.conflicts)),
                 *(Fact(name=f"trend_{t.timeframe}", value=t.direction)
                   for t in snapshot.stack)]
        return self.result(issues, facts)

    def evaluate_batch(self, ctx: BatchContext) -> BatchResult:
        """Return ``evaluate``'s verdicts on every row of ``ctx``, column-wise.

        What a check needs of a snapshot (rounded the scalar way, strings joined) is read
        once per distinct snapshot; the side-dependent comparisons run on the columns.
        Rounding is odd-symmetric, so ``round(sign * score, 2) == sign * round(score, 2)``.
        Rounded values stay Python objects, so an int stays an int in the evidence.
        """
        cfg = self.config
        snapshots: list[MTFASnapshot] = []

        def number(snapshot: MTFASnapshot) -> int:
            snapshots.append(snapshot)
            return len(snapshots) - 1

        snap = ctx.piece_values("mtfa", number, dtype=np.int64, default=-1)
        if (snap < 0).any():
            raise ValueError("mtfa: a row has no mtfa piece")
        per = _snapshot_columns(snapshots)
        sign = ctx.intents["sign"].to_numpy(np.float64)
        blocks: list[IssueBlock] = []

        rows = np.flatnonzero(per["has_stack"][snap] & (per["higher_sign"][snap] * sign < 0))
        if len(rows):
            blocks += severity_blocks(
                "AGAINST_HIGHER_TIMEFRAME", rows,
                per["higher_strength"][snap[rows]] >= cfg.strong_trend_adx, Severity.HIGH,
                Severity.MEDIUM, evidence_once(rows, (snap[rows], sign[rows]), lambda r: [
                    FactColumn("side", side_values(sign[r])),
                    FactColumn("higher_timeframe", per["higher_timeframe"][snap[r]]),
                    FactColumn("higher_direction", per["higher_direction"][snap[r]]),
                    FactColumn("higher_strength_adx", per["higher_strength_r2"][snap[r]],
                               threshold=cfg.strong_trend_adx),
                    FactColumn("higher_close_vs_ema50_atr", per["higher_close_r2"][snap[r]],
                               "ATR"),
                    FactColumn("higher_bar_ts", per["higher_bar_ts"][snap[r]])]))

        side_alignment = sign * per["score_r2"].astype(np.float64)[snap]
        rows = np.flatnonzero(~(side_alignment >= cfg.min_alignment))
        if len(rows):
            blocks += severity_blocks(
                "LOW_ALIGNMENT", rows, side_alignment[rows] < cfg.against_alignment,
                Severity.MEDIUM, Severity.LOW, evidence_once(
                    rows, (snap[rows], sign[rows]), lambda r: [
                        FactColumn("side_alignment", np.where(
                            sign[r] > 0, per["score_r2"][snap[r]], -per["score_r2"][snap[r]]),
                            threshold=cfg.min_alignment),
                        FactColumn("min_alignment", cfg.min_alignment),
                        FactColumn("side", side_values(sign[r])),
                        FactColumn("stack", per["stack"][snap[r]])]))

        rows = np.flatnonzero(per["n_conflicts"][snap] > 0)
        if len(rows):
            blocks.append(IssueBlock("MTFA_CONFLICT", rows, Severity.LOW, evidence_once(
                rows, (snap[rows],), lambda r: [
                    FactColumn("n_conflicts", per["n_conflicts"][snap[r]]),
                    FactColumn("conflicts", per["conflicts"][snap[r]])])))
        return BatchResult.from_issues(self.name, self.version, ctx.n, issues_frame(blocks))

    def _higher_timeframe(self, intent: TradeIntent, snapshot: MTFASnapshot) -> list[Issue]:
        if not snapshot.stack:
            return []
        higher = snapshot.stack[0]
        if TREND_SIGN[higher.direction] * intent.side.sign >= 0:
            return []
        strong = higher.strength >= self.config.strong_trend_adx
        return [self.issue(
            "AGAINST_HIGHER_TIMEFRAME", Severity.HIGH if strong else Severity.MEDIUM,
            [Fact(name="side", value=intent.side.value),
             Fact(name="higher_timeframe", value=higher.timeframe),
             Fact(name="higher_direction", value=higher.direction),
             Fact(name="higher_strength_adx", value=round(higher.strength, 2),
                  threshold=self.config.strong_trend_adx),
             Fact(name="higher_close_vs_ema50_atr", value=round(higher.close_vs_ema50_atr, 2),
                  unit="ATR"),
             Fact(name="higher_bar_ts", value=higher.bar_ts.isoformat())],
            "CHECK_HIGHER_TIMEFRAME")]

    def _alignment(self, intent: TradeIntent, side_alignment: float, stack: str
                   ) -> list[Issue]:
        cfg = self.config
        if side_alignment >= cfg.min_alignment:
            return []
        severity = Severity.MEDIUM if side_alignment < cfg.against_alignment else Severity.LOW
        return [self.issue(
            "LOW_ALIGNMENT", severity,
            [Fact(name="side_alignment", value=side_alignment, threshold=cfg.min_alignment),
             Fact(name="min_alignment", value=cfg.min_alignment),
             Fact(name="side", value=intent.side.value),
             Fact(name="stack", value=stack)],
            "SEEK_ALIGNMENT")]

    def _conflicts(self, snapshot: MTFASnapshot) -> list[Issue]:
        if not snapshot.conflicts:
            return []
        return [self.issue(
            "MTFA_CONFLICT", Severity.LOW,
            [Fact(name="n_conflicts", value=len(snapshot.conflicts)),
             Fact(name="conflicts", value="; ".join(snapshot.conflicts))],
            "CHOOSE_DECIDING_TIMEFRAME")]


def _snapshot_columns(snapshots: list[MTFASnapshot]) -> dict[str, np.ndarray]:
    """Return what the checks read of each snapshot, as arrays indexed like ``snapshots``:
    values rounded and strings built exactly as ``evaluate`` rounds and builds them (object
    arrays of what ``evaluate`` writes; float arrays of what it compares)."""
    rows: list[dict[str, Any]] = []
    for snapshot in snapshots:
        row: dict[str, Any] = {
            "score_r2": round(snapshot.alignment_score, 2),
            "stack": "/".join(t.timeframe for t in snapshot.stack),
            "n_conflicts": len(snapshot.conflicts),
            "conflicts": "; ".join(snapshot.conflicts),
            "has_stack": bool(snapshot.stack), "higher_sign": 0, "higher_timeframe": None,
            "higher_direction": None, "higher_strength": math.nan,
            "higher_strength_r2": math.nan, "higher_close_r2": math.nan, "higher_bar_ts": None}
        if snapshot.stack:
            higher = snapshot.stack[0]
            row.update(higher_sign=TREND_SIGN[higher.direction],
                       higher_timeframe=higher.timeframe, higher_direction=higher.direction,
                       higher_strength=higher.strength,
                       higher_strength_r2=round(higher.strength, 2),
                       higher_close_r2=round(higher.close_vs_ema50_atr, 2),
                       higher_bar_ts=higher.bar_ts.isoformat())
        rows.append(row)
    columns: dict[str, np.ndarray] = {}
    for name, dtype in (("n_conflicts", np.int64), ("has_stack", bool),
                        ("higher_sign", np.float64), ("higher_strength", np.float64)):
        columns[name] = np.array([r[name] for r in rows], dtype=dtype)
    for name in ("score_r2", "higher_strength_r2", "higher_close_r2", "stack", "conflicts",
                 "higher_timeframe", "higher_direction", "higher_bar_ts"):
        values = np.empty(len(rows), dtype=object)
        values[:] = [r[name] for r in rows]
        columns[name] = values
    return columns
