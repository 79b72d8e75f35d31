"""MTFA: does the trade go with or against the trends of the instrument's timeframe stack?

Reads the ``mtfa`` piece (the trend of each stack timeframe from its last closed bar, an
ADX-weighted alignment score in [-1, 1] and the opposed pairs; see ``buddy.mtfa.compute``) and
audits the intent's side against it:

- AGAINST_HIGHER_TIMEFRAME: the highest timeframe trends against the side (a long while the
  weekly trend is down) with ADX at or above ``min_higher_adx`` (20, the usual line between
  a weak and a real trend; the trend read itself starts at ADX 15);
- LOW_ALIGNMENT: the stack's alignment, signed by the side (+1 every timeframe trends the
  trade's way, 0 neutral or mixed), is below ``min_alignment`` (-0.25: the ADX-weighted stack
  leans against the trade, not merely short of agreeing with it), on a row
  AGAINST_HIGHER_TIMEFRAME does not already flag (there the stack leans against the trade
  because its highest timeframe does, and one warning says it);
- MTFA_CONFLICT: timeframes of the stack trend in opposite directions.

Each reads the last CLOSED bar of every stack timeframe at as_of (the provider's rule), so a
weekly bar still forming is never read. On 777 real intents over every bundled series
(every generator, 25 per series and generator) the defaults fire AGAINST_HIGHER_TIMEFRAME on
18%, LOW_ALIGNMENT on 7% and MTFA_CONFLICT on 17%; with each intent's mirror on the other
side added (the sample is mostly longs in rising markets) on 29%, 18% and 17%.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from buddy.batch.columns import choose
from buddy.batch.result import BatchResult, IssueBlock
from buddy.config import ModuleConfig, param
from buddy.context.pieces import MTFASnapshot
from buddy.domain import Severity, Side
from buddy.errors import ConfigError, FieldError
from buddy.evaluators.base import Code, Evaluator, Evidence, severity_where
from buddy.evaluators.registry import register
from buddy.mtfa.compute import TREND_SIGN

if TYPE_CHECKING:
    from buddy.batch.context import BatchContext


@dataclass(frozen=True, slots=True, kw_only=True)
class MTFAConfig(ModuleConfig):
    """Thresholds of the multi-timeframe checks; alignment is the score signed by the side."""

    config_name = "mtfa"

    min_alignment: float = param(-0.25, lo=-1.0, hi=1.0, unit="score (-1..1)",
                                 doc="side-signed alignment below this (the stack leans "
                                     "against the trade) is flagged as low")
    against_alignment: float = param(-0.6, lo=-1.0, hi=1.0, unit="score (-1..1)",
                                     doc="side-signed alignment below this (most of the "
                                         "stack's trend strength against the trade) raises "
                                         "LOW_ALIGNMENT to medium")
    min_higher_adx: float = param(20.0, lo=0.0, hi=100.0, unit="ADX",
                                  doc="a highest-timeframe trend against the trade is "
                                      "flagged from this strength (below it the trend is "
                                      "weak)")
    strong_trend_adx: float = param(30.0, lo=0.0, hi=100.0, unit="ADX",
                                    doc="a highest-timeframe trend against the trade at least "
                                        "this strong is high severity, else medium")

    def __post_init__(self) -> None:
        ModuleConfig.__post_init__(self)
        if self.against_alignment > self.min_alignment:
            raise ConfigError([FieldError("mtfa.against_alignment",
                                          f"must be <= min_alignment ({self.min_alignment})",
                                          self.against_alignment)])
        if self.strong_trend_adx < self.min_higher_adx:
            raise ConfigError([FieldError("mtfa.strong_trend_adx",
                                          f"must be >= min_higher_adx ({self.min_higher_adx})",
                                          self.strong_trend_adx)])


@register
class MTFAEvaluator(Evaluator[MTFAConfig]):
    """Check the intent's side against the trends of the timeframe stack."""

    name = "mtfa"
    version = "2.1.0"
    requires = frozenset({"mtfa"})
    config_cls = MTFAConfig
    codes: ClassVar = {
        "AGAINST_HIGHER_TIMEFRAME": Code(
            "Against the higher-timeframe trend",
            "This {side} trade goes against the {higher_timeframe} trend, which reads "
            "{higher_direction} on the last closed {higher_timeframe} bar (ADX "
            "{higher_strength_adx}, close {higher_close_vs_ema50_atr} from its EMA50).",
            "Check the idea against the {higher_timeframe} chart, or size it as a "
            "counter-trend trade.",
            evidence=(Evidence("side"), Evidence("higher_timeframe"),
                      Evidence("higher_direction"),
                      Evidence("higher_strength_adx", digits=2, threshold="min_higher_adx"),
                      Evidence("higher_close_vs_ema50_atr", "ATR", digits=2),
                      Evidence("higher_bar_ts")),
            action="CHECK_HIGHER_TIMEFRAME",
            harm="the larger trend pushes against the position, so the trade goes deeper "
                 "against its entry before it exits",
            measure="adverse_excursion"),
        "LOW_ALIGNMENT": Code(
            "Timeframes not aligned with the trade",
            "The timeframe stack ({stack}) has an alignment of {side_alignment} for this "
            "{side} trade, below {min_alignment} (+1 means every timeframe trends the "
            "trade's way).",
            "Look for a setup where more of {stack} trend the same way, or treat this as a "
            "lower-conviction trade.",
            evidence=(Evidence("side_alignment", digits=2, threshold="min_alignment"),
                      Evidence("min_alignment"), Evidence("side"), Evidence("stack")),
            action="SEEK_ALIGNMENT",
            harm="most of the stack's trend strength points the other way, so the move the "
                 "trade needs has less behind it and the target is reached less often",
            measure="target_reached"),
        "MTFA_CONFLICT": Code(
            "Timeframes in conflict",
            "The stack has {n_conflicts} opposed timeframe pair(s): {conflicts}.",
            "Decide which timeframe the trade is based on and plan the stop and horizon "
            "for that one.",
            evidence=(Evidence("n_conflicts"), Evidence("conflicts")),
            action="CHOOSE_DECIDING_TIMEFRAME",
            harm="timeframes pulling in opposite directions leave the price chopping between "
                 "them, so the trade runs out its horizon without reaching stop or target",
            measure="time_stopped"),
    }
    explain = (Evidence("alignment_score", digits=4), Evidence("side_alignment", digits=2),
               Evidence("n_conflicts"), Evidence("trends"))

    def evaluate_batch(self, ctx: BatchContext) -> BatchResult:
        """Flag a highest timeframe trending against the side, a side-signed alignment below
        the minimum and opposed timeframe pairs. What a check needs of a snapshot is read once
        per distinct snapshot; the side-dependent comparisons run on the columns."""
        cfg = self.config
        snap, snapshots = ctx.distinct_pieces("mtfa")
        per = _snapshot_columns(snapshots)
        sign = ctx.intents["sign"].to_numpy(np.float64)
        side = choose(sign > 0, Side.LONG.value, Side.SHORT.value)
        # alignment is rounded before the comparison, as the report shows it
        side_alignment = sign * np.round(per["score"][snap], 2)
        blocks: list[IssueBlock] = []

        against = (per["has_stack"][snap] & (per["higher_sign"][snap] * sign < 0)
                   & (per["higher_strength"][snap] >= cfg.min_higher_adx))
        rows = np.flatnonzero(against)
        if len(rows):
            at = snap[rows]
            blocks.append(self.fire(
                "AGAINST_HIGHER_TIMEFRAME", rows,
                severity_where(per["higher_strength"][at] >= cfg.strong_trend_adx,
                               Severity.HIGH, Severity.MEDIUM),
                side=side[rows], higher_timeframe=per["higher_timeframe"][at],
                higher_direction=per["higher_direction"][at],
                higher_strength_adx=per["higher_strength"][at],
                higher_close_vs_ema50_atr=per["higher_close_vs_ema50_atr"][at],
                higher_bar_ts=per["higher_bar_ts"][at]))

        rows = np.flatnonzero(~(side_alignment >= cfg.min_alignment) & ~against)
        if len(rows):
            blocks.append(self.fire(
                "LOW_ALIGNMENT", rows,
                severity_where(side_alignment[rows] < cfg.against_alignment, Severity.MEDIUM,
                               Severity.LOW),
                side_alignment=side_alignment[rows], min_alignment=cfg.min_alignment,
                side=side[rows], stack=per["stack"][snap[rows]]))

        rows = np.flatnonzero(per["n_conflicts"][snap] > 0)
        if len(rows):
            blocks.append(self.fire("MTFA_CONFLICT", rows, Severity.LOW,
                                    n_conflicts=per["n_conflicts"][snap[rows]],
                                    conflicts=per["conflicts"][snap[rows]]))
        return self.result(ctx.n, blocks, explain={
            "alignment_score": per["score"][snap], "side_alignment": side_alignment,
            "n_conflicts": per["n_conflicts"][snap], "trends": per["trends"][snap]})


def _snapshot_columns(snapshots: list[MTFASnapshot]) -> dict[str, np.ndarray]:
    """Return what the checks read of each snapshot, as arrays indexed like ``snapshots``."""
    n = len(snapshots)
    higher = [s.stack[0] if s.stack else None for s in snapshots]
    text = {name: np.empty(n, dtype=object) for name in (
        "stack", "conflicts", "trends", "higher_timeframe", "higher_direction",
        "higher_bar_ts")}
    text["stack"][:] = ["/".join(t.timeframe for t in s.stack) for s in snapshots]
    text["conflicts"][:] = ["; ".join(s.conflicts) for s in snapshots]
    text["trends"][:] = ["/".join(f"{t.timeframe} {t.direction}" for t in s.stack)
                         for s in snapshots]
    text["higher_timeframe"][:] = [h.timeframe if h else None for h in higher]
    text["higher_direction"][:] = [h.direction if h else None for h in higher]
    text["higher_bar_ts"][:] = [h.bar_ts.isoformat() if h else None for h in higher]
    return {
        **text,
        "score": np.array([s.alignment_score for s in snapshots], dtype=np.float64),
        "n_conflicts": np.array([len(s.conflicts) for s in snapshots], dtype=np.int64),
        "has_stack": np.array([h is not None for h in higher], dtype=bool),
        "higher_sign": np.array([TREND_SIGN[h.direction] if h else 0 for h in higher],
                                dtype=np.float64),
        "higher_strength": np.array([h.strength if h else math.nan for h in higher],
                                    dtype=np.float64),
        "higher_close_vs_ema50_atr": np.array(
            [h.close_vs_ema50_atr if h else math.nan for h in higher], dtype=np.float64),
    }
