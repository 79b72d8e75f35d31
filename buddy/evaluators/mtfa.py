"""MTFA: does the trade go with or against the trends of the instrument's timeframe stack?

Reads the ``mtfa`` piece (the trend of each stack timeframe from its last closed bar, an
ADX-weighted alignment score in [-1, 1] and the opposed pairs; see ``buddy.mtfa.compute``) and
audits the intent's side against it:

- AGAINST_HIGHER_TIMEFRAME: the highest timeframe trends against the side (a long while the
  weekly trend is down);
- LOW_ALIGNMENT: the stack's alignment, signed by the side (+1 every timeframe trends the
  trade's way), is below ``min_alignment``;
- MTFA_CONFLICT: timeframes of the stack trend in opposite directions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from buddy.config import ModuleConfig, param
from buddy.context.pack import ContextPack
from buddy.context.pieces import MTFASnapshot
from buddy.domain import EvaluationResult, Fact, Issue, Severity, TradeIntent
from buddy.errors import ConfigError, FieldError
from buddy.evaluators.base import Evaluator, IssueTemplate
from buddy.evaluators.registry import register
from buddy.mtfa.compute import TREND_SIGN


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
