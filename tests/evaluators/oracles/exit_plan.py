"""ExitPlan's rules as a plain loop over one intent and its pack: the oracle the column form
(``ExitPlanEvaluator.evaluate_batch``) is checked against.

``scan(intent, pack, config)`` returns ``(issues, explain)``: each issue as (code, severity,
{fact name: (value, unit)}) in the module's order, evidence and action facts together, and
the explain facts by name. Values are unrounded (None: not available).
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

from buddy.context.pack import ContextPack
from buddy.domain import Severity, TradeIntent
from buddy.evaluators.exit_plan import ExitPlanConfig
from buddy.evidence import round_to_tick
from buddy.users.model import AccountContext

Facts = dict[str, tuple[Any, str]]
Issue = tuple[str, Severity, Facts]


def scan(intent: TradeIntent, ctx: ContextPack, cfg: ExitPlanConfig
         ) -> tuple[list[Issue], dict[str, Any]]:
    """Return the issues and explain facts of ``intent`` against ``ctx``."""
    market, acct, inst = ctx.market, ctx.account, ctx.instrument
    assert market is not None and isinstance(acct, AccountContext)
    atr = market.latest_features.get("atr_14")
    atr = atr if atr is not None and math.isfinite(atr) and atr > 0 else None
    sign, entry, tick = intent.side.sign, intent.proposed_entry, inst.tick_size
    template = acct.exit_template(intent.exit_template)
    target_r = intent.reward_risk
    if target_r is None and template is not None:
        target_r = template.target_r
    horizon, source = intent.holding_horizon, "intent"
    if horizon is None and template is not None and template.time_stop_bars is not None:
        horizon, source = template.time_stop_bars, "template"
    reward = intent.reward_distance
    if reward is None and target_r is not None and intent.stop_distance is not None:
        reward = target_r * intent.stop_distance
    has_target = intent.proposed_target is not None or (
        template is not None and template.target_r is not None)
    legs = (intent.proposed_stop is not None) + has_target + (horizon is not None)
    max_bars = cfg.max_horizon_bars(intent.timeframe)
    issues: list[Issue] = []

    if intent.proposed_stop is None:
        issues.append(("EXIT_NO_STOP",
                       Severity.HIGH if acct.rules.stop_required else Severity.MEDIUM,
                       {"exit_legs_present": (legs, ""), "entry": (entry, "price"),
                        "atr_14": (atr, "price")}))
    if not has_target:
        min_rr = acct.rules.min_reward_risk
        target = None
        if intent.stop_distance is not None:
            target = round_to_tick(entry + sign * min_rr * intent.stop_distance, tick,
                                   direction="up" if sign > 0 else "down")
        issues.append(("EXIT_NO_TARGET", Severity.MEDIUM, {
            "exit_legs_present": (legs, ""), "min_reward_risk": (min_rr, "R"),
            "min_rr_target": (target if target is not None and target > 0 else None,
                              "price")}))
    if horizon is None:
        issues.append(("EXIT_NO_TIME_STOP", Severity.LOW, {
            "exit_legs_present": (legs, ""), "max_horizon_bars": (max_bars, "bars"),
            "timeframe": (intent.timeframe.value, "")}))

    held = intent.holding_horizon
    if held is not None and not cfg.min_horizon_bars <= held <= max_bars:
        issues.append(("HORIZON_INCONSISTENT", Severity.MEDIUM, {
            "holding_horizon": (held, "bars"), "min_horizon_bars": (cfg.min_horizon_bars, "bars"),
            "max_horizon_bars": (max_bars, "bars"), "timeframe": (intent.timeframe.value, ""),
            "suggested_horizon": (min(max(held, cfg.min_horizon_bars), max_bars), "bars")}))

    required = reward / atr if reward is not None and atr is not None else None
    reach = cfg.reach_k * math.sqrt(horizon) if horizon is not None else None
    if required is not None and reach is not None and required > reach:
        assert atr is not None and horizon is not None
        target = round_to_tick(entry + sign * reach * atr, tick,
                               direction="down" if sign > 0 else "up")
        issues.append(("TARGET_BEYOND_REACH",
                       Severity.HIGH if required > 2 * reach else Severity.MEDIUM, {
                           "required_move_atr": (required, "ATR"), "reach_atr": (reach, "ATR"),
                           "holding_horizon": (horizon, "bars"), "horizon_source": (source, ""),
                           "atr_14": (atr, "price"),
                           "reach_k": (cfg.reach_k, "ATR per sqrt(bar)"),
                           "suggested_target": (target if target > 0 else None, "price"),
                           "bars_for_reach": (math.ceil(round((required / cfg.reach_k) ** 2, 9)),
                                              "bars")}))

    name = intent.exit_template or acct.rules.default_exit_template
    if name is not None and template is None:
        named = bool(intent.exit_template)
        issues.append(("EXIT_TEMPLATE_UNKNOWN", Severity.MEDIUM if named else Severity.LOW, {
            "template_name": (name, ""),
            "template_source": ("named by the intent" if named else "the rules' default", ""),
            "n_templates": (len(acct.exit_templates), ""),
            "available_templates": (", ".join(t.name for t in acct.exit_templates)
                                    or "none saved", "")}))

    if template is not None and template.partials:
        size, lot = intent.proposed_size, inst.lot_size
        unit = "shares" if inst.asset_class == "equity" else "units"
        fractions = [p.fraction for p in template.partials]
        bad = [f for f in fractions
               if f <= 0 or not _whole_lots(size * f, lot, size,
                                            cfg.partial_rounding_tolerance_pct)]
        over = sum(fractions) > 1 + 1e-9
        if bad or over:
            lcm = math.lcm(*(Fraction(f).limit_denominator(1000).denominator
                             for f in fractions if f > 0))
            issues.append(("PARTIALS_INCONSISTENT", Severity.MEDIUM if over else Severity.LOW, {
                "n_inconsistent": (len(bad), ""), "n_partials": (len(fractions), ""),
                "fraction_sum_pct": (100.0 * sum(fractions), "%"),
                "smallest_partial": (min(size * f for f in fractions), unit),
                "size": (size, unit), "lot_size": (lot, unit),
                "template_name": (template.name, ""),
                "partial_rounding_tolerance_pct": (cfg.partial_rounding_tolerance_pct, "%"),
                "size_step": (lot * lcm, unit)}))

    if template is not None and (bool(intent.exit_template) or cfg.compare_default_template):
        rr, time_stop = intent.reward_risk, template.time_stop_bars
        target_off = (rr is not None and template.target_r is not None
                      and abs(rr - template.target_r) > cfg.template_target_tolerance_r + 1e-9)
        horizon_off = (held is not None and time_stop is not None and time_stop > 0
                       and 100.0 * abs(held - time_stop) / time_stop
                       > cfg.template_horizon_tolerance_pct + 1e-9)
        if target_off or horizon_off:
            target = None
            if template.target_r is not None and intent.stop_distance is not None:
                target = round_to_tick(entry + sign * template.target_r * intent.stop_distance,
                                       tick)
            issues.append(("EXIT_TEMPLATE_MISMATCH", Severity.LOW, {
                "template_name": (template.name, ""), "target_r": (rr, "R"),
                "template_target_r": (template.target_r, "R"), "holding_horizon": (held, "bars"),
                "template_time_stop_bars": (time_stop, "bars"),
                "target_r_tolerance": (cfg.template_target_tolerance_r, "R"),
                "horizon_tolerance_pct": (cfg.template_horizon_tolerance_pct, "%"),
                "template_target": (target if target is not None and target > 0 else None,
                                    "price")}))

    if template is None and name is None:
        issues.append(("EXIT_TEMPLATE_NOT_SET", Severity.INFO,
                       {"n_templates": (len(acct.exit_templates), "")}))

    explain = {"exit_legs_present": legs, "has_stop": intent.proposed_stop is not None,
               "target_r": target_r, "holding_horizon": horizon,
               "horizon_source": source if horizon is not None else None,
               "exit_template": template.name if template is not None else None,
               "required_move_atr": required, "reach_atr": reach}
    return issues, explain


def _whole_lots(units: float, lot: float, size: float, tolerance_pct: float) -> bool:
    """Return True when the nearest whole-lot size of ``units`` is at least one lot and
    within ``tolerance_pct`` of ``size`` from ``units``."""
    nearest = math.floor(units / lot + 0.5) * lot
    return (nearest >= lot * (1 - 1e-9)
            and 100.0 * abs(nearest - units) / size <= tolerance_pct + 1e-9)
