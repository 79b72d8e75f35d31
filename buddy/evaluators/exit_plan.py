"""ExitPlan: does the trade have a complete, coherent way out?

Checks that a stop, a target and a time stop (holding horizon) are present; that the horizon
fits the timeframe; that the target is within reach of the horizon by a volatility-scaling
check on the instrument's own recent ATR; that the exit template's partial exits split the
size into whole lots; and that the intent fits the exit template it names (or the rules'
default one).

The reach check is a yardstick, not a forecast: a price path whose bars move about one ATR
spans roughly ATR x sqrt(bars) over a horizon, so a target needing more than
``reach_k`` x ATR x sqrt(horizon) asks for an unusually large move for this instrument.

A target or time stop the intent leaves out may come from its exit template (``target_r``,
``time_stop_bars``); the checks then use the template's.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from buddy.batch.columns import py_round
from buddy.batch.result import (
    BatchResult,
    FactColumn,
    IssueBlock,
    evidence_json,
    issue_evidence_json,
    issues_frame,
)
from buddy.config import ModuleConfig, param
from buddy.context.pack import ContextPack, Instrument
from buddy.domain import EvaluationResult, Fact, Issue, Severity, TradeIntent
from buddy.errors import ConfigError, FieldError
from buddy.evaluators.base import Evaluator, IssueTemplate
from buddy.evaluators.registry import register
from buddy.evidence import round_to_tick
from buddy.timeframes import Timeframe
from buddy.users.model import AccountContext, ExitTemplate

if TYPE_CHECKING:
    from buddy.batch.context import BatchContext


@dataclass(frozen=True, slots=True, kw_only=True)
class ExitPlanConfig(ModuleConfig):
    """Thresholds of the exit-plan checks; horizon bounds are in bars of each timeframe."""

    config_name = "exit_plan"

    min_horizon_bars: int = param(1, lo=1, hi=10_000, unit="bars",
                                  doc="shortest holding horizon on any timeframe")
    max_horizon_bars_1m: int = param(390, lo=1, hi=100_000, unit="bars",
                                     doc="longest horizon on 1m bars (one equity session)")
    max_horizon_bars_5m: int = param(390, lo=1, hi=100_000, unit="bars",
                                     doc="longest horizon on 5m bars (five equity sessions)")
    max_horizon_bars_15m: int = param(260, lo=1, hi=100_000, unit="bars",
                                      doc="longest horizon on 15m bars (ten equity sessions)")
    max_horizon_bars_30m: int = param(130, lo=1, hi=100_000, unit="bars",
                                      doc="longest horizon on 30m bars (ten equity sessions)")
    max_horizon_bars_1h: int = param(120, lo=1, hi=100_000, unit="bars",
                                     doc="longest horizon on 1h bars")
    max_horizon_bars_4h: int = param(120, lo=1, hi=100_000, unit="bars",
                                     doc="longest horizon on 4h bars")
    max_horizon_bars_1d: int = param(250, lo=1, hi=100_000, unit="bars",
                                     doc="longest horizon on 1d bars (about a year)")
    max_horizon_bars_1w: int = param(104, lo=1, hi=100_000, unit="bars",
                                     doc="longest horizon on 1w bars (about two years)")
    reach_k: float = param(1.5, lo=0.1, hi=10.0, unit="ATR per sqrt(bar)",
                           doc="reach of the horizon: k x ATR(14) x sqrt(horizon bars)")
    template_target_tolerance_r: float = param(0.25, lo=0.0, hi=10.0, unit="R",
                                               doc="allowed gap between the intent's target "
                                                   "and the template's target_r")
    template_horizon_tolerance_pct: float = param(25.0, lo=0.0, hi=1_000.0, unit="%",
                                                  doc="allowed gap between the holding "
                                                      "horizon and the template's time stop")

    def __post_init__(self) -> None:
        ModuleConfig.__post_init__(self)
        errors = [FieldError(f"exit_plan.max_horizon_bars_{tf.value}",
                             f"must be >= min_horizon_bars ({self.min_horizon_bars})",
                             self.max_horizon_bars(tf))
                  for tf in Timeframe if self.max_horizon_bars(tf) < self.min_horizon_bars]
        if errors:
            raise ConfigError(errors)

    def max_horizon_bars(self, timeframe: Timeframe) -> int:
        """Return the longest holding horizon, in bars, allowed on ``timeframe``."""
        return getattr(self, f"max_horizon_bars_{timeframe.value}")


@register
class ExitPlanEvaluator(Evaluator):
    """Check presence and coherence of stop, target, time stop, partials and exit template."""

    name = "exit_plan"
    version = "1.0.0"
    requires = frozenset({"market", "account"})
    config_cls = ExitPlanConfig
    templates: ClassVar = {
        "EXIT_NO_STOP": IssueTemplate(
            "Exit plan has no stop",
            "The plan has {exit_legs_present} of its 3 exit legs and no stop-loss, so a losing "
            "trade has no planned exit (the recent ATR is {atr_14}).",
            "Set a stop before entering."),
        "EXIT_NO_TARGET": IssueTemplate(
            "Exit plan has no target",
            "The plan has {exit_legs_present} of its 3 exit legs: no profit target, and its "
            "exit template sets none.",
            "Set a target; {min_reward_risk} from this stop sits at {min_rr_target}."),
        "EXIT_NO_TIME_STOP": IssueTemplate(
            "Exit plan has no time stop",
            "The plan has {exit_legs_present} of its 3 exit legs: no holding horizon, and its "
            "exit template has no time stop.",
            "Set a holding horizon of at most {max_horizon_bars} on {timeframe} bars."),
        "HORIZON_INCONSISTENT": IssueTemplate(
            "Horizon does not fit the timeframe",
            "A holding horizon of {holding_horizon} is outside {min_horizon_bars} to "
            "{max_horizon_bars} for {timeframe} bars.",
            "Use a horizon of {suggested_horizon}, or plan the trade on a timeframe whose bars "
            "fit the horizon."),
        "TARGET_BEYOND_REACH": IssueTemplate(
            "Target beyond the horizon's reach",
            "The target needs a move of {required_move_atr}; the reach check for "
            "{holding_horizon} spans {reach_atr} (the instrument's recent ATR of {atr_14} "
            "scaled by the square root of the horizon).",
            "Bring the target in to {suggested_target}, or allow a horizon of about "
            "{bars_for_reach}."),
        "PARTIALS_INCONSISTENT": IssueTemplate(
            "Partial exits do not fit the size",
            "{n_inconsistent} of {n_partials} partial exits of template {template_name} do not "
            "split {size} into whole lots of {lot_size} (fractions sum to {fraction_sum_pct}).",
            "Use a size that is a multiple of {size_step}, and keep the template's fractions "
            "at or below 100% in total."),
        "EXIT_TEMPLATE_MISMATCH": IssueTemplate(
            "Plan differs from its exit template",
            "The plan differs from exit template {template_name}: target {target_r} against "
            "{template_target_r}, horizon {holding_horizon} against "
            "{template_time_stop_bars}.",
            "Align the plan with the template (target at {template_target}, time stop "
            "{template_time_stop_bars}), or choose a template that fits it."),
        "EXIT_TEMPLATE_UNKNOWN": IssueTemplate(
            "Unknown exit template",
            "The exit template {template_name} ({template_source}) is not among your "
            "{n_templates} saved templates.",
            "Choose one of: {available_templates}."),
    }

    def evaluate(self, intent: TradeIntent, ctx: ContextPack) -> EvaluationResult:
        """Return exit-plan issues for ``intent``."""
        market, acct = ctx.market, ctx.account
        assert market is not None and isinstance(acct, AccountContext)  # guaranteed by requires
        atr = market.latest_features.get("atr_14")
        atr = atr if atr is not None and math.isfinite(atr) and atr > 0 else None
        template = acct.exit_template(intent.exit_template)
        target_r = intent.reward_risk
        if target_r is None and template is not None and template.target_r is not None:
            target_r = template.target_r  # the template's target stands in for the intent's
        horizon = intent.holding_horizon
        horizon_source = "intent"
        if horizon is None and template is not None and template.time_stop_bars is not None:
            horizon, horizon_source = template.time_stop_bars, "template"
        reward = (intent.reward_distance if intent.reward_distance is not None
                  else target_r * intent.stop_distance
                  if target_r is not None and intent.stop_distance is not None else None)
        has_target = intent.proposed_target is not None or (
            template is not None and template.target_r is not None)
        legs = sum((intent.proposed_stop is not None, has_target, horizon is not None))
        issues = [
            *self._missing_legs(intent, ctx.instrument, acct, atr, has_target, horizon, legs),
            *self._horizon(intent),
            *self._reach(intent, ctx.instrument, atr, reward, horizon, horizon_source),
            *self._template_unknown(intent.exit_template, acct),
        ]
        if template is not None:
            issues += self._partials(intent, ctx.instrument, template)
            issues += self._template_fit(intent, ctx.instrument, template)
        facts = [
            Fact(name="exit_legs_present", value=legs),
            Fact(name="has_stop", value=intent.proposed_stop is not None),
            Fact(name="target_r", value=_round(target_r), unit="R"),
            Fact(name="holding_horizon", value=horizon, unit="bars"),
            Fact(name="horizon_source", value=horizon_source if horizon else None),
            Fact(name="exit_template", value=template.name if template else None),
            Fact(name="required_move_atr", value=_round(reward / atr)
                 if reward is not None and atr else None, unit="ATR"),
            Fact(name="reach_atr", value=_round(self.config.reach_k * math.sqrt(horizon))
                 if horizon else None, unit="ATR"),
        ]
        return self.result(issues, facts)

    # ------------------------------------------------------------------------------ checks
    def _missing_legs(self, intent: TradeIntent, inst: Instrument, acct: AccountContext,
                      atr: float | None, has_target: bool, horizon: int | None,
                      legs: int) -> list[Issue]:
        issues = []
        legs_fact = Fact(name="exit_legs_present", value=legs)
        if intent.proposed_stop is None:
            issues.append(self.issue(
                "EXIT_NO_STOP", Severity.HIGH if acct.rules.stop_required else Severity.MEDIUM,
                [legs_fact, Fact(name="entry", value=intent.proposed_entry, unit="price"),
                 Fact(name="atr_14", value=atr, unit="price")],
                "SET_STOP"))
        if not has_target:
            min_rr = acct.rules.min_reward_risk
            action_facts = [Fact(name="min_reward_risk", value=min_rr, unit="R")]
            if intent.stop_distance is not None:
                target = round_to_tick(
                    intent.proposed_entry + intent.side.sign * min_rr * intent.stop_distance,
                    inst.tick_size, direction="up" if intent.side.sign > 0 else "down")
                if target > 0:
                    action_facts.append(Fact(name="min_rr_target", value=target, unit="price"))
            issues.append(self.issue(
                "EXIT_NO_TARGET", Severity.MEDIUM,
                [legs_fact, Fact(name="min_reward_risk", value=min_rr, unit="R")],
                "SET_TARGET", action_facts))
        if horizon is None:
            max_bars = self.config.max_horizon_bars(intent.timeframe)
            issues.append(self.issue(
                "EXIT_NO_TIME_STOP", Severity.LOW,
                [legs_fact, Fact(name="max_horizon_bars", value=max_bars, unit="bars"),
                 Fact(name="timeframe", value=intent.timeframe.value)],
                "SET_TIME_STOP",
                [Fact(name="max_horizon_bars", value=max_bars, unit="bars"),
                 Fact(name="timeframe", value=intent.timeframe.value)]))
        return issues

    def _horizon(self, intent: TradeIntent) -> list[Issue]:
        cfg = self.config
        horizon = intent.holding_horizon
        max_bars = cfg.max_horizon_bars(intent.timeframe)
        if horizon is None or cfg.min_horizon_bars <= horizon <= max_bars:
            return []
        return [self.issue(
            "HORIZON_INCONSISTENT", Severity.MEDIUM,
            [Fact(name="holding_horizon", value=horizon, unit="bars",
                  threshold=max_bars if horizon > max_bars else cfg.min_horizon_bars),
             Fact(name="min_horizon_bars", value=cfg.min_horizon_bars, unit="bars"),
             Fact(name="max_horizon_bars", value=max_bars, unit="bars"),
             Fact(name="timeframe", value=intent.timeframe.value)],
            "ADJUST_HORIZON",
            [Fact(name="suggested_horizon", value=min(max(horizon, cfg.min_horizon_bars),
                                                      max_bars), unit="bars")])]

    def _reach(self, intent: TradeIntent, inst: Instrument, atr: float | None,
               reward: float | None, horizon: int | None, horizon_source: str) -> list[Issue]:
        if reward is None or horizon is None or atr is None:
            return []
        k = self.config.reach_k
        required = reward / atr
        reach = k * math.sqrt(horizon)
        if required <= reach:
            return []
        sign = intent.side.sign
        target = round_to_tick(intent.proposed_entry + sign * reach * atr, inst.tick_size,
                               direction="down" if sign > 0 else "up")
        return [self.issue(
            "TARGET_BEYOND_REACH", Severity.HIGH if required > 2 * reach else Severity.MEDIUM,
            [Fact(name="required_move_atr", value=_round(required), unit="ATR",
                  threshold=_round(reach)),
             Fact(name="reach_atr", value=_round(reach), unit="ATR"),
             Fact(name="holding_horizon", value=horizon, unit="bars"),
             Fact(name="horizon_source", value=horizon_source),
             Fact(name="atr_14", value=atr, unit="price"),
             Fact(name="reach_k", value=k, unit="ATR per sqrt(bar)")],
            "BRING_TARGET_IN_OR_EXTEND_HORIZON",
            [Fact(name="suggested_target", value=target if target > 0 else None, unit="price"),
             Fact(name="bars_for_reach", value=math.ceil(round((required / k) ** 2, 9)),
                  unit="bars")])]

    def _template_unknown(self, exit_template: str | None, acct: AccountContext
                          ) -> list[Issue]:
        """The intent's ``exit_template`` (or the rules' default) names no saved template."""
        name = exit_template or acct.rules.default_exit_template
        if name is None or acct.exit_template(exit_template) is not None:
            return []
        named = exit_template is not None
        available = ", ".join(t.name for t in acct.exit_templates) or "none saved"
        return [self.issue(
            "EXIT_TEMPLATE_UNKNOWN", Severity.MEDIUM if named else Severity.LOW,
            [Fact(name="template_name", value=name),
             Fact(name="template_source", value="named by the intent" if named
                  else "the rules' default"),
             Fact(name="n_templates", value=len(acct.exit_templates))],
            "CHOOSE_TEMPLATE", [Fact(name="available_templates", value=available)])]

    def _partials(self, intent: TradeIntent, inst: Instrument, template: ExitTemplate
                  ) -> list[Issue]:
        if not template.partials:
            return []
        size, lot = intent.proposed_size, inst.lot_size
        fraction_sum = sum(p.fraction for p in template.partials)
        bad = [p for p in template.partials
               if p.fraction <= 0 or not _whole_lots(size * p.fraction, lot)]
        over = fraction_sum > 1 + 1e-9
        if not bad and not over:
            return []
        size_unit = "shares" if inst.asset_class == "equity" else "units"
        denominators = [Fraction(p.fraction).limit_denominator(1000).denominator
                        for p in template.partials if p.fraction > 0]
        step = lot * math.lcm(*denominators) if denominators else lot
        smallest = min((size * p.fraction for p in template.partials), default=0.0)
        return [self.issue(
            "PARTIALS_INCONSISTENT", Severity.MEDIUM if over else Severity.LOW,
            [Fact(name="n_inconsistent", value=len(bad)),
             Fact(name="n_partials", value=len(template.partials)),
             Fact(name="fraction_sum_pct", value=_round(100.0 * fraction_sum), unit="%",
                  threshold=100.0),
             Fact(name="smallest_partial", value=_round(smallest), unit=size_unit),
             Fact(name="size", value=size, unit=size_unit),
             Fact(name="lot_size", value=lot, unit=size_unit),
             Fact(name="template_name", value=template.name)],
            "RESIZE_PARTIALS", [Fact(name="size_step", value=step, unit=size_unit)])]

    def _template_fit(self, intent: TradeIntent, inst: Instrument, template: ExitTemplate
                      ) -> list[Issue]:
        cfg = self.config
        target_r = intent.reward_risk
        horizon = intent.holding_horizon
        target_off = (target_r is not None and template.target_r is not None
                      and abs(target_r - template.target_r)
                      > cfg.template_target_tolerance_r + 1e-9)
        time_stop = template.time_stop_bars
        horizon_off = (horizon is not None and time_stop is not None and time_stop > 0
                       and 100.0 * abs(horizon - time_stop) / time_stop
                       > cfg.template_horizon_tolerance_pct + 1e-9)
        if not (target_off or horizon_off):
            return []
        template_target = None
        if template.target_r is not None and intent.stop_distance is not None:
            template_target = round_to_tick(
                intent.proposed_entry + intent.side.sign * template.target_r
                * intent.stop_distance, inst.tick_size)
        return [self.issue(
            "EXIT_TEMPLATE_MISMATCH", Severity.LOW,
            [Fact(name="template_name", value=template.name),
             Fact(name="target_r", value=_round(target_r), unit="R",
                  threshold=template.target_r),
             Fact(name="template_target_r", value=template.target_r, unit="R"),
             Fact(name="holding_horizon", value=horizon, unit="bars",
                  threshold=template.time_stop_bars),
             Fact(name="template_time_stop_bars", value=template.time_stop_bars, unit="bars"),
             Fact(name="target_r_tolerance", value=cfg.template_target_tolerance_r, unit="R"),
             Fact(name="horizon_tolerance_pct", value=cfg.template_horizon_tolerance_pct,
                  unit="%")],
            "ALIGN_WITH_TEMPLATE",
            [Fact(name="template_target", value=template_target
                  if template_target and template_target > 0 else None, unit="price"),
             Fact(name="template_time_stop_bars", value=template.time_stop_bars,
                  unit="bars")])]

    # -------------------------------------------------------------------------- batch form
    def evaluate_batch(self, ctx: BatchContext) -> BatchResult:
        """Return ``evaluate``'s verdicts on every row of ``ctx``, column-wise.

        Account-level inputs are resolved once per distinct (account, template name) pair
        (``_BatchTemplates``), partial exits once per distinct template over its rows, and
        every other check is array operations over all rows. Raises (ValueError, TypeError)
        where the scalar form would raise on some row, so the orchestrator runs the module
        row by row and that row gets its MODULE_ERROR.
        """
        cfg = self.config
        n = ctx.n
        frame = ctx.intents
        entry = _floats(frame, "proposed_entry")
        has_stop = ~np.isnan(_floats(frame, "proposed_stop"))
        has_intent_target = ~np.isnan(_floats(frame, "proposed_target"))
        stop_distance = _floats(frame, "stop_distance")
        reward_distance = _floats(frame, "reward_distance")
        reward_risk = _floats(frame, "reward_risk")
        intent_horizon = _floats(frame, "holding_horizon")
        has_intent_horizon = ~np.isnan(intent_horizon)
        atr = (ctx.latest["atr_14"].to_numpy(np.float64) if "atr_14" in ctx.latest.columns
               else np.full(n, math.nan))
        with np.errstate(invalid="ignore"):
            has_atr = np.isfinite(atr) & (atr > 0)
        atr = np.where(has_atr, atr, math.nan)
        tick = ctx.instrument["tick_size"].to_numpy(np.float64)
        if not (np.isfinite(tick) & (tick > 0)).all():
            raise ValueError("exit_plan: a tick size is not a positive number (the scalar form "
                             "cannot round to it)")

        plans = _BatchTemplates.resolve(self, ctx)
        template = plans.row_template  # -1: none
        has_template_target = plans.has_target_r[template]
        template_target_r = plans.target_r[template]
        has_template_stop = plans.has_time_stop[template]
        template_time_stop = plans.time_stop[template]

        # the intent's legs, or the template's in their place
        has_reward_risk = ~np.isnan(reward_risk)
        target_r = np.where(has_reward_risk, reward_risk, template_target_r)
        from_template = ~has_intent_horizon & has_template_stop
        horizon = np.where(from_template, template_time_stop, intent_horizon)
        has_horizon = has_intent_horizon | from_template
        if (has_horizon & (horizon < 0)).any():
            raise ValueError("exit_plan: a negative time stop (the scalar form cannot take its "
                             "square root)")
        has_reward = ~np.isnan(reward_distance) | (
            (has_reward_risk | has_template_target) & has_stop)
        reward = np.where(~np.isnan(reward_distance), reward_distance, target_r * stop_distance)
        has_target = has_intent_target | has_template_target
        legs = (has_stop.astype(np.int64) + has_target.astype(np.int64)
                + has_horizon.astype(np.int64))

        timeframe_codes, labels = pd.factorize(frame["timeframe"].to_numpy(dtype=object))
        timeframes = [Timeframe.parse(label) for label in labels]
        max_bars = np.array([float(cfg.max_horizon_bars(t)) for t in timeframes],
                            dtype=np.float64)[timeframe_codes]

        blocks: list[IssueBlock] = []
        rows = np.flatnonzero(~has_stop)
        if len(rows):
            blocks.append(IssueBlock("EXIT_NO_STOP", rows, np.where(
                plans.stop_required[plans.row_pair[rows]], Severity.HIGH.value,
                Severity.MEDIUM.value), evidence_json([
                    FactColumn("exit_legs_present", legs[rows]),
                    FactColumn("entry", entry[rows], "price"),
                    FactColumn("atr_14", atr[rows], "price")], len(rows))))
        rows = np.flatnonzero(~has_target)
        if len(rows):
            blocks.append(IssueBlock("EXIT_NO_TARGET", rows, Severity.MEDIUM, evidence_json([
                FactColumn("exit_legs_present", legs[rows]),
                FactColumn("min_reward_risk", plans.min_reward_risk[plans.row_pair[rows]],
                           "R")], len(rows))))
        rows = np.flatnonzero(~has_horizon)
        if len(rows):
            blocks.append(IssueBlock("EXIT_NO_TIME_STOP", rows, Severity.LOW, _evidence_by(
                timeframe_codes[rows], lambda part, code, rows=rows: [
                    FactColumn("exit_legs_present", legs[rows[part]]),
                    FactColumn("max_horizon_bars", cfg.max_horizon_bars(timeframes[code]),
                               "bars"),
                    FactColumn("timeframe", timeframes[code].value)])))

        with np.errstate(invalid="ignore"):
            inside = (cfg.min_horizon_bars <= intent_horizon) & (intent_horizon <= max_bars)
        rows = np.flatnonzero(has_intent_horizon & ~inside)
        if len(rows):
            def horizon_facts(part: np.ndarray, code: int, rows: np.ndarray = rows
                              ) -> list[FactColumn]:
                held = intent_horizon[rows[part]]
                most = cfg.max_horizon_bars(timeframes[code])
                return [
                    FactColumn("holding_horizon", held.astype(np.int64), "bars",
                               _choose(held > most, most, cfg.min_horizon_bars)),
                    FactColumn("min_horizon_bars", cfg.min_horizon_bars, "bars"),
                    FactColumn("max_horizon_bars", most, "bars"),
                    FactColumn("timeframe", timeframes[code].value)]

            blocks.append(IssueBlock("HORIZON_INCONSISTENT", rows, Severity.MEDIUM,
                                     _evidence_by(timeframe_codes[rows], horizon_facts)))

        k = cfg.reach_k
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            required = reward / atr
            reach = k * np.sqrt(horizon)
            beyond = has_reward & has_horizon & has_atr & ~(required <= reach)
        rows = np.flatnonzero(beyond)
        if len(rows):
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                if not np.isfinite((required[rows] / k) ** 2).all():
                    raise ValueError("exit_plan: a required move too large for the scalar "
                                     "form's bars-for-reach")

            def reach_facts(part: np.ndarray, source: int, rows: np.ndarray = rows
                            ) -> list[FactColumn]:
                at = rows[part]
                rounded_reach = py_round(reach[at], 4)
                return [
                    FactColumn("required_move_atr", py_round(required[at], 4), "ATR",
                               rounded_reach),
                    FactColumn("reach_atr", rounded_reach, "ATR"),
                    FactColumn("holding_horizon", intent_horizon[at].astype(np.int64)
                               if source < 0 else plans.templates[source].time_stop_bars,
                               "bars"),
                    FactColumn("horizon_source", "intent" if source < 0 else "template"),
                    FactColumn("atr_14", atr[at], "price"),
                    FactColumn("reach_k", k, "ATR per sqrt(bar)")]

            blocks.append(IssueBlock("TARGET_BEYOND_REACH", rows, np.where(
                required[rows] > 2 * reach[rows], Severity.HIGH.value, Severity.MEDIUM.value),
                _evidence_by(np.where(from_template[rows], template[rows], -1), reach_facts)))

        rows = np.flatnonzero(plans.unknown_severity[plans.row_pair] != "")
        if len(rows):
            pairs = plans.row_pair[rows]
            blocks.append(IssueBlock("EXIT_TEMPLATE_UNKNOWN", rows,
                                     plans.unknown_severity[pairs],
                                     plans.unknown_evidence[pairs]))

        blocks.append(_partials_block(ctx, plans))

        target_off = has_reward_risk & has_template_target & (
            np.abs(reward_risk - template_target_r) > cfg.template_target_tolerance_r + 1e-9)
        with np.errstate(invalid="ignore", divide="ignore"):
            horizon_off = has_intent_horizon & has_template_stop & (template_time_stop > 0) & (
                100.0 * np.abs(intent_horizon - template_time_stop) / template_time_stop
                > cfg.template_horizon_tolerance_pct + 1e-9)
        rows = np.flatnonzero((template >= 0) & (target_off | horizon_off))
        if len(rows):
            def fit_facts(part: np.ndarray, key: int, rows: np.ndarray = rows
                          ) -> list[FactColumn]:
                at = rows[part]
                tpl = plans.templates[key // 2]
                return [
                    FactColumn("template_name", tpl.name),
                    FactColumn("target_r", py_round(reward_risk[at], 4), "R", tpl.target_r),
                    FactColumn("template_target_r", tpl.target_r, "R"),
                    FactColumn("holding_horizon", intent_horizon[at].astype(np.int64)
                               if key % 2 else None, "bars", tpl.time_stop_bars),
                    FactColumn("template_time_stop_bars", tpl.time_stop_bars, "bars"),
                    FactColumn("target_r_tolerance", cfg.template_target_tolerance_r, "R"),
                    FactColumn("horizon_tolerance_pct", cfg.template_horizon_tolerance_pct,
                               "%")]

            blocks.append(IssueBlock("EXIT_TEMPLATE_MISMATCH", rows, Severity.LOW, _evidence_by(
                2 * template[rows] + has_intent_horizon[rows], fit_facts)))
        return BatchResult.from_issues(self.name, self.version, n, issues_frame(blocks))


def _partials_block(ctx: BatchContext, plans: _BatchTemplates) -> IssueBlock:
    """PARTIALS_INCONSISTENT column-wise: per distinct template with partial exits, a
    (rows x partials) check of whole lots over the rows that use it."""
    size = _floats(ctx.intents, "proposed_size")
    lot = ctx.instrument["lot_size"].to_numpy()
    lot_f = lot.astype(np.float64)
    equity = ctx.instrument["asset_class"].to_numpy(dtype=object) == "equity"
    found_rows, found_severity, found_evidence = [], [], []
    for number, tpl in enumerate(plans.templates):
        rows = np.flatnonzero(plans.row_template == number) if tpl.partials else []
        if not len(rows):
            continue
        fractions = [p.fraction for p in tpl.partials]
        if not all(math.isfinite(f) for f in fractions) or not (
            np.isfinite(lot_f[rows]) & (lot_f[rows] != 0)
        ).all():
            raise ValueError(f"exit_plan: template {tpl.name!r} has a fraction, or a row a lot "
                             "size, the scalar form cannot split by")
        units = size[rows, None] * np.array(fractions, dtype=np.float64)[None, :]
        lots = units / lot_f[rows, None]
        whole = (lots >= 1 - 1e-9) & (np.abs(lots - np.round(lots)) < 1e-6)
        n_bad = ((np.array(fractions, dtype=np.float64) <= 0)[None, :] | ~whole).sum(
            axis=1).astype(np.int64)
        fraction_sum = sum(fractions)
        over = fraction_sum > 1 + 1e-9
        fired = np.flatnonzero((n_bad > 0) | over)
        if not len(fired):
            continue
        smallest = units[fired].min(axis=1)
        picked = rows[fired]

        def facts(part: np.ndarray, is_equity: bool, tpl: ExitTemplate = tpl,
                  fired: np.ndarray = fired, picked: np.ndarray = picked,
                  n_bad: np.ndarray = n_bad, smallest: np.ndarray = smallest,
                  fraction_sum: float = fraction_sum) -> list[FactColumn]:
            unit = "shares" if is_equity else "units"
            return [FactColumn("n_inconsistent", n_bad[fired[part]]),
                    FactColumn("n_partials", len(tpl.partials)),
                    FactColumn("fraction_sum_pct", _round(100.0 * fraction_sum), "%", 100.0),
                    FactColumn("smallest_partial", py_round(smallest[part], 4), unit),
                    FactColumn("size", size[picked[part]], unit),
                    FactColumn("lot_size", lot[picked[part]], unit),
                    FactColumn("template_name", tpl.name)]

        found_rows.append(picked)
        found_severity.append(np.full(len(fired), (Severity.MEDIUM if over
                                                   else Severity.LOW).value, dtype=object))
        found_evidence.append(_evidence_by(equity[picked], facts))
    if not found_rows:
        return IssueBlock("PARTIALS_INCONSISTENT", np.array([], dtype=np.int64),
                          Severity.LOW, np.array([], dtype=object))
    rows = np.concatenate(found_rows)
    order = np.argsort(rows, kind="stable")
    return IssueBlock("PARTIALS_INCONSISTENT", rows[order],
                      np.concatenate(found_severity)[order],
                      np.concatenate(found_evidence)[order])


@dataclass(frozen=True, slots=True, kw_only=True)
class _BatchTemplates:
    """What each row's account says, resolved once per distinct (account, template name).

    Per pair (``row_pair``): ``stop_required``, ``min_reward_risk`` (typed as the rules hold
    it), the EXIT_TEMPLATE_UNKNOWN severity ("" where it does not fire) and evidence. Per
    template (``row_template``; -1, the last entry, stands for "none"): whether it has a
    target and a time stop, and their values as floats.
    """

    row_pair: np.ndarray
    row_template: np.ndarray
    stop_required: np.ndarray
    min_reward_risk: np.ndarray
    unknown_severity: np.ndarray
    unknown_evidence: np.ndarray
    templates: list[ExitTemplate]
    has_target_r: np.ndarray
    target_r: np.ndarray
    has_time_stop: np.ndarray
    time_stop: np.ndarray

    @classmethod
    def resolve(cls, evaluator: ExitPlanEvaluator, ctx: BatchContext) -> _BatchTemplates:
        """Resolve every row's account and exit template.

        Accounts are told apart by value (equal accounts resolve alike), so rows whose
        provider built one account object each still resolve once per distinct account.
        """
        accounts: list[AccountContext] = []
        numbers: dict[Any, int] = {}

        def number(account: Any) -> int:
            if not isinstance(account, AccountContext):
                raise TypeError(f"exit_plan: the account piece is a {type(account).__name__}")
            try:
                key: Any = (account,)
                hash(key)
            except TypeError:  # an unhashable field: tell it apart by identity
                key = id(account)
            if key not in numbers:
                numbers[key] = len(accounts)
                accounts.append(account)
            return numbers[key]

        account_no = ctx.piece_values("account", number, dtype=np.int64, default=-1)
        if (account_no < 0).any():
            raise ValueError("exit_plan: a row has no account piece")
        name_codes, names = pd.factorize(ctx.intents["exit_template"].to_numpy(dtype=object))
        width = len(names) + 1
        row_pair, pairs = pd.factorize(account_no * width + name_codes + 1)
        templates: list[ExitTemplate] = []
        template_no: dict[int, int] = {}
        pair_template, stop_required, min_rr, severity, evidence = [], [], [], [], []
        for key in pairs.tolist():
            account = accounts[key // width]
            name = None if key % width == 0 else names[key % width - 1]
            tpl = account.exit_template(name)
            if tpl is not None and id(tpl) not in template_no:
                template_no[id(tpl)] = len(templates)
                templates.append(tpl)
            pair_template.append(-1 if tpl is None else template_no[id(tpl)])
            stop_required.append(bool(account.rules.stop_required))
            min_rr.append(account.rules.min_reward_risk)
            issues = evaluator._template_unknown(name, account)
            severity.append(issues[0].severity.value if issues else "")
            evidence.append(issue_evidence_json(issues[0].evidence) if issues else "")
        for tpl in templates:
            if any(v is not None and not math.isfinite(v)
                   for v in (tpl.target_r, tpl.time_stop_bars)):
                raise ValueError(f"exit_plan: template {tpl.name!r} holds a non-finite number")
        target_r = [t.target_r for t in templates]
        time_stop = [t.time_stop_bars for t in templates]
        return cls(
            row_pair=row_pair.astype(np.int64),
            row_template=np.asarray(pair_template, dtype=np.int64)[row_pair],
            stop_required=np.asarray(stop_required, dtype=bool),
            min_reward_risk=_typed(min_rr),
            unknown_severity=np.asarray(severity, dtype=object),
            unknown_evidence=np.asarray(evidence, dtype=object),
            templates=templates,
            has_target_r=np.array([v is not None for v in target_r] + [False], dtype=bool),
            target_r=np.array([math.nan if v is None else float(v) for v in target_r]
                              + [math.nan], dtype=np.float64),
            has_time_stop=np.array([v is not None for v in time_stop] + [False], dtype=bool),
            time_stop=np.array([math.nan if v is None else float(v) for v in time_stop]
                               + [math.nan], dtype=np.float64))


def _floats(frame: pd.DataFrame, column: str) -> np.ndarray:
    """Return a numeric intent column as float64 (NaN where the field is None)."""
    return frame[column].to_numpy(np.float64)


def _evidence_by(keys: np.ndarray, facts: Callable[[np.ndarray, Any], list[FactColumn]]
                 ) -> np.ndarray:
    """Return each row's evidence JSON, built once per distinct value of ``keys`` (a few):
    ``facts(part, key)`` gives the facts of the rows ``part`` (positions in ``keys``) sharing
    ``key``, so what they share is a scalar, written once rather than row by row, and keeps
    the type the scalar form's Fact gives it."""
    out = np.empty(len(keys), dtype=object)
    uniques, inverse = np.unique(keys, return_inverse=True)
    for j, key in enumerate(uniques.tolist()):
        part = np.flatnonzero(inverse.reshape(-1) == j)
        out[part] = evidence_json(facts(part, key), len(part))
    return out


def _typed(values: list[Any]) -> np.ndarray:
    """Return ``values`` as int64 when all are ints, float64 when all are floats, else as
    objects: evidence writes each value with the type the scalar form's Fact holds."""
    if all(type(v) is int for v in values):
        return np.array(values, dtype=np.int64)
    if all(type(v) is float for v in values):
        return np.array(values, dtype=np.float64)
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _choose(where: np.ndarray, a: Any, b: Any) -> np.ndarray:
    """Return ``a`` where ``where`` else ``b`` (two scalars), keeping ints and floats apart."""
    if type(a) is type(b) and type(a) in (int, float):
        return np.where(where, a, b)
    out = np.full(len(where), b, dtype=object)
    out[where] = a
    return out


def _whole_lots(units: float, lot: float) -> bool:
    lots = units / lot
    return lots >= 1 - 1e-9 and abs(lots - round(lots)) < 1e-6


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)
