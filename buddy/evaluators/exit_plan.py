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
from dataclasses import dataclass
from fractions import Fraction
from typing import ClassVar

from buddy.config import ModuleConfig, param
from buddy.context.pack import ContextPack, Instrument
from buddy.domain import EvaluationResult, Fact, Issue, Severity, TradeIntent
from buddy.errors import ConfigError, FieldError
from buddy.evaluators.base import Evaluator, IssueTemplate
from buddy.evaluators.registry import register
from buddy.evidence import round_to_tick
from buddy.timeframes import Timeframe
from buddy.users.model import AccountContext, ExitTemplate


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
            *self._template_unknown(intent, acct),
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

    def _template_unknown(self, intent: TradeIntent, acct: AccountContext) -> list[Issue]:
        name = intent.exit_template or acct.rules.default_exit_template
        if name is None or acct.exit_template(intent.exit_template) is not None:
            return []
        named = intent.exit_template is not None
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


def _whole_lots(units: float, lot: float) -> bool:
    lots = units / lot
    return lots >= 1 - 1e-9 and abs(lots - round(lots)) < 1e-6


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)
