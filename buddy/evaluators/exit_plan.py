"""ExitPlan: does the trade have a complete, coherent way out?

Checks that a stop, a target and a time stop (holding horizon) are present; that the horizon
fits the timeframe; that the target is within reach of the horizon by a volatility-scaling
check on the instrument's own recent ATR; that the exit template's partial exits split the
size into whole lots (within a tolerance: a half of 37 shares is 18 or 19, and nobody minds);
and that the intent fits the exit template it names.

The rules' default template fills the legs an intent leaves out (``RiskRules``: "exit template
used when the intent names none"); an intent that names no template and states its own legs
has made its own plan, so it is compared with the default only when
``compare_default_template`` is on. With no template at all to go by (none named, no default
in the rules) the fit is reported as not checked (EXIT_TEMPLATE_NOT_SET), never as a
mismatch.

The reach check is a yardstick, not a forecast: a price path whose bars move about one ATR
spans roughly ATR x sqrt(bars) over a horizon, so a target needing more than
``reach_k`` x ATR x sqrt(horizon) asks for an unusually large move for this instrument.

A target or time stop the intent leaves out may come from its exit template (``target_r``,
``time_stop_bars``); the checks then use the template's. Suggested prices are on the
instrument's tick grid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from buddy.batch.columns import choose
from buddy.batch.result import BatchResult, IssueBlock
from buddy.config import ModuleConfig, param
from buddy.domain import Severity
from buddy.errors import ConfigError, FieldError
from buddy.evaluators.base import Code, Evaluator, Evidence, severity_where
from buddy.evaluators.registry import register
from buddy.evidence import to_tick
from buddy.timeframes import Timeframe
from buddy.users.model import AccountContext, ExitTemplate

if TYPE_CHECKING:
    from buddy.batch.context import BatchContext

#: Unit of sizes, known only per row: 'shares' for equities, else 'units'.
SIZE = "<size>"
#: horizon_source by code: 0 the intent's horizon, 1 the template's, 2 none.
_SOURCES = np.array(["intent", "template", None], dtype=object)


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
    compare_default_template: bool = param(False, choices=(True, False),
                                           doc="also hold an intent that names no template "
                                               "to the rules' default template (off: the "
                                               "default only fills the legs it leaves out)")
    partial_rounding_tolerance_pct: float = param(10.0, lo=0.0, hi=100.0, unit="%",
                                                  doc="largest gap, as % of the position, "
                                                      "between a partial exit's planned "
                                                      "share and its nearest whole-lot size")

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



_LEGS = Evidence("exit_legs_present")
_TEMPLATE_NAME = Evidence("template_name")


@register
class ExitPlanEvaluator(Evaluator[ExitPlanConfig]):
    """Check presence and coherence of stop, target, time stop, partials and exit template."""

    name = "exit_plan"
    guards_risk = True
    version = "1.2.0"
    requires = frozenset({"market", "account"})
    config_cls = ExitPlanConfig
    codes: ClassVar = {
        "EXIT_NO_STOP": Code(
            "Exit plan has no stop",
            "The plan has {exit_legs_present} of its 3 exit legs and no stop-loss, so a losing "
            "trade has no planned exit (the recent ATR is {atr_14}).",
            "Set a stop before entering.",
            evidence=(_LEGS, Evidence("entry", "price"), Evidence("atr_14", "price")),
            action="SET_STOP",
            harm="a losing trade has no planned exit, so the loss has no limit; replay intents "
                 "always carry a stop, so no outcome there can judge it", measure=None),
        "EXIT_NO_TARGET": Code(
            "Exit plan has no target",
            "The plan has {exit_legs_present} of its 3 exit legs: no profit target, and its "
            "exit template sets none.",
            "Set a target; {min_reward_risk} from this stop sits at {min_rr_target}.",
            evidence=(_LEGS, Evidence("min_reward_risk", "R")),
            action="SET_TARGET", action_facts=(Evidence("min_rr_target", "price"),),
            harm="with no planned profit exit, gains are given back before the time stop, so "
                 "the realized R is lower", measure="realized_r"),
        "EXIT_NO_TIME_STOP": Code(
            "Exit plan has no time stop",
            "The plan has {exit_legs_present} of its 3 exit legs: no holding horizon, and its "
            "exit template has no time stop.",
            "Set a holding horizon of at most {max_horizon_bars} on {timeframe} bars.",
            evidence=(_LEGS, Evidence("max_horizon_bars", "bars"), Evidence("timeframe")),
            action="SET_TIME_STOP",
            harm="a trade with no time limit ties up risk indefinitely; replay always applies "
                 "a horizon, so no outcome there can judge it", measure=None),
        "HORIZON_INCONSISTENT": Code(
            "Horizon does not fit the timeframe",
            "A holding horizon of {holding_horizon} is outside {min_horizon_bars} to "
            "{max_horizon_bars} for {timeframe} bars.",
            "Use a horizon of {suggested_horizon}, or plan the trade on a timeframe whose bars "
            "fit the horizon.",
            evidence=(Evidence("holding_horizon", "bars"), Evidence("min_horizon_bars", "bars"),
                      Evidence("max_horizon_bars", "bars"), Evidence("timeframe")),
            action="ADJUST_HORIZON", action_facts=(Evidence("suggested_horizon", "bars"),),
            harm="a horizon that does not fit the bars: a long one on short bars ends the "
                 "trade on time rather than at its stop or target", measure="time_stopped"),
        "TARGET_BEYOND_REACH": Code(
            "Target beyond the horizon's reach",
            "The target needs a move of {required_move_atr}; the reach check for "
            "{holding_horizon} spans {reach_atr} (the instrument's recent ATR of {atr_14} "
            "scaled by the square root of the horizon).",
            "Bring the target in to {suggested_target}, or allow a horizon of about "
            "{bars_for_reach}.",
            evidence=(Evidence("required_move_atr", "ATR", 4), Evidence("reach_atr", "ATR", 4),
                      Evidence("holding_horizon", "bars"), Evidence("horizon_source"),
                      Evidence("atr_14", "price"), Evidence("reach_k", "ATR per sqrt(bar)")),
            action="BRING_TARGET_IN_OR_EXTEND_HORIZON",
            action_facts=(Evidence("suggested_target", "price"),
                          Evidence("bars_for_reach", "bars")),
            harm="the target asks for a move the instrument rarely makes within the horizon, "
                 "so it is reached less often", measure="target_reached"),
        "EXIT_TEMPLATE_UNKNOWN": Code(
            "Unknown exit template",
            "The exit template {template_name} ({template_source}) is not among your "
            "{n_templates} saved templates.",
            "Choose one of: {available_templates}.",
            evidence=(_TEMPLATE_NAME, Evidence("template_source"), Evidence("n_templates")),
            action="CHOOSE_TEMPLATE", action_facts=(Evidence("available_templates"),),
            harm="the plan relies on a template that does not exist, so its missing legs are "
                 "not what the trader expects; a naming error no outcome can judge",
            measure=None),
        "PARTIALS_INCONSISTENT": Code(
            "Partial exits do not fit the size",
            "{n_inconsistent} of {n_partials} partial exits of template {template_name} do not "
            "split {size} into whole lots of {lot_size} within "
            "{partial_rounding_tolerance_pct} of the position (fractions sum to "
            "{fraction_sum_pct}).",
            "Use a size that is a multiple of {size_step}, and keep the template's fractions "
            "at or below 100% in total.",
            evidence=(Evidence("n_inconsistent"), Evidence("n_partials"),
                      Evidence("fraction_sum_pct", "%", 4), Evidence("smallest_partial", SIZE, 4),
                      Evidence("size", SIZE), Evidence("lot_size", SIZE), _TEMPLATE_NAME,
                      Evidence("partial_rounding_tolerance_pct", "%")),
            action="RESIZE_PARTIALS", action_facts=(Evidence("size_step", SIZE),),
            harm="the planned partial exits cannot be executed as written; replay does not "
                 "simulate partial exits, so no outcome there can judge it", measure=None),
        "EXIT_TEMPLATE_MISMATCH": Code(
            "Plan differs from its exit template",
            "The plan differs from exit template {template_name}: target {target_r} against "
            "{template_target_r}, horizon {holding_horizon} against "
            "{template_time_stop_bars}.",
            "Align the plan with the template (target at {template_target}, time stop "
            "{template_time_stop_bars}), or choose a template that fits it.",
            evidence=(_TEMPLATE_NAME, Evidence("target_r", "R", 4),
                      Evidence("template_target_r", "R"), Evidence("holding_horizon", "bars"),
                      Evidence("template_time_stop_bars", "bars"),
                      Evidence("target_r_tolerance", "R"), Evidence("horizon_tolerance_pct", "%")),
            action="ALIGN_WITH_TEMPLATE", action_facts=(Evidence("template_target", "price"),),
            harm="the plan departs from the exit plan the trader named for it (process drift); "
                 "a departure from one's own plan, which no outcome measure judges",
            measure=None),
        "EXIT_TEMPLATE_NOT_SET": Code(
            "No exit template to compare with",
            "The plan names no exit template and your rules set no default "
            "({n_templates} saved), so its fit to a saved exit plan was not checked.",
            "Name one of your exit templates in the plan, or set a default exit template in "
            "your rules.",
            evidence=(Evidence("n_templates"),), action="SET_DEFAULT_TEMPLATE",
            kind="not_checked",
            harm="the plan's fit to a saved exit plan was not checked: no template applies"),
    }
    explain = (_LEGS, Evidence("has_stop"), Evidence("target_r", "R", 4),
               Evidence("holding_horizon", "bars"), Evidence("horizon_source"),
               Evidence("exit_template"), Evidence("required_move_atr", "ATR", 4),
               Evidence("reach_atr", "ATR", 4))

    def evaluate_batch(self, ctx: BatchContext) -> BatchResult:
        """Flag missing exit legs, a horizon outside the timeframe's bounds, a target beyond
        the horizon's reach, an unknown template, partial exits that do not split the size,
        and a plan that differs from its template.

        Accounts and templates are resolved once per distinct (account, template name);
        partial exits once per template over its rows; every other rule is array
        operations over all rows.
        """
        cfg = self.config
        it = ctx.intents
        entry = it["proposed_entry"].to_numpy(np.float64)
        sign = it["sign"].to_numpy(np.float64)
        stop_distance = it["stop_distance"].to_numpy(np.float64)  # NaN: no stop
        reward_distance = it["reward_distance"].to_numpy(np.float64)  # NaN: no target
        has_stop = ~np.isnan(stop_distance)
        has_intent_target = ~np.isnan(reward_distance)
        reward_risk = it["reward_risk"].to_numpy(np.float64)
        intent_horizon = it["holding_horizon"].to_numpy(np.float64)
        has_intent_horizon = ~np.isnan(intent_horizon)
        atr = (ctx.latest["atr_14"].to_numpy(np.float64) if "atr_14" in ctx.latest.columns
               else np.full(ctx.n, np.nan))
        with np.errstate(invalid="ignore"):
            atr = np.where(atr > 0, atr, np.nan)  # a zero, negative or missing ATR: none
        tick = ctx.instrument["tick_size"].to_numpy(np.float64)
        lot = ctx.instrument["lot_size"].to_numpy(np.float64)
        for field, values in (("tick_size", tick), ("lot_size", lot)):
            bad = ~(values > 0) | ~np.isfinite(values)
            if bad.any():
                raise ValueError(f"exit_plan: instrument.{field} must be a positive number, "
                                 f"got {values[bad][0]!r}")

        plans = _Plans.resolve(ctx)
        tpl = plans.template  # per row; -1: none
        has_tpl = tpl >= 0
        tpl_target_r = plans.target_r[tpl]  # the last entry (-1) is NaN: none
        tpl_time_stop = plans.time_stop[tpl]
        has_tpl_target = ~np.isnan(tpl_target_r)
        has_tpl_stop = ~np.isnan(tpl_time_stop)

        # the intent's legs, or the template's in their place
        has_reward_risk = ~np.isnan(reward_risk)
        target_r = np.where(has_reward_risk, reward_risk, tpl_target_r)
        from_template = ~has_intent_horizon & has_tpl_stop
        horizon = np.where(from_template, tpl_time_stop, intent_horizon)
        has_horizon = ~np.isnan(horizon)
        reward = np.where(np.isnan(reward_distance), target_r * stop_distance, reward_distance)
        has_target = has_intent_target | has_tpl_target
        legs = has_stop.astype(np.int64) + has_target + has_horizon
        source = _SOURCES[np.where(has_horizon, from_template, 2)]

        tf_code, labels = pd.factorize(it["timeframe"])
        labels = _objects(list(labels))
        max_bars = np.array([cfg.max_horizon_bars(Timeframe.parse(label)) for label in labels],
                            dtype=np.int64)[tf_code]
        blocks: list[IssueBlock] = []

        rows = np.flatnonzero(~has_stop)
        if len(rows):
            blocks.append(self.fire(
                "EXIT_NO_STOP", rows,
                severity_where(plans.stop_required[plans.pair[rows]], Severity.HIGH,
                               Severity.MEDIUM),
                exit_legs_present=legs[rows], entry=entry[rows], atr_14=atr[rows]))

        rows = np.flatnonzero(~has_target)
        if len(rows):
            min_rr = plans.min_reward_risk[plans.pair[rows]]
            target = to_tick(entry[rows] + sign[rows] * min_rr * stop_distance[rows],
                              tick[rows], up=sign[rows] > 0)
            blocks.append(self.fire(
                "EXIT_NO_TARGET", rows, Severity.MEDIUM, exit_legs_present=legs[rows],
                min_reward_risk=_one(min_rr), min_rr_target=np.where(target > 0, target, np.nan)))

        rows = np.flatnonzero(~has_horizon)
        if len(rows):
            blocks.append(self.fire(
                "EXIT_NO_TIME_STOP", rows, Severity.LOW, exit_legs_present=legs[rows],
                max_horizon_bars=_one(max_bars[rows]), timeframe=_one(labels[tf_code[rows]])))

        with np.errstate(invalid="ignore"):
            outside = (intent_horizon < cfg.min_horizon_bars) | (intent_horizon > max_bars)
        rows = np.flatnonzero(outside)
        if len(rows):
            held = intent_horizon[rows].astype(np.int64)
            most = max_bars[rows]
            blocks.append(self.fire(
                "HORIZON_INCONSISTENT", rows, Severity.MEDIUM,
                thresholds={"holding_horizon": np.where(held > most, most,
                                                        cfg.min_horizon_bars)},
                holding_horizon=held, min_horizon_bars=cfg.min_horizon_bars,
                max_horizon_bars=_one(most), timeframe=_one(labels[tf_code[rows]]),
                suggested_horizon=np.clip(held, cfg.min_horizon_bars, most)))

        k = cfg.reach_k
        with np.errstate(invalid="ignore"):
            required = reward / atr
            reach = k * np.sqrt(horizon)
            beyond = required > reach
        rows = np.flatnonzero(beyond)
        if len(rows):
            up = sign[rows] < 0  # rounded towards the entry: within the reach
            target = to_tick(entry[rows] + sign[rows] * reach[rows] * atr[rows], tick[rows],
                              up=up)
            blocks.append(self.fire(
                "TARGET_BEYOND_REACH", rows,
                severity_where(required[rows] > 2 * reach[rows], Severity.HIGH,
                               Severity.MEDIUM),
                thresholds={"required_move_atr": reach[rows]},
                required_move_atr=required[rows], reach_atr=reach[rows],
                holding_horizon=horizon[rows].astype(np.int64), horizon_source=_one(source[rows]),
                atr_14=atr[rows], reach_k=k,
                suggested_target=np.where(target > 0, target, np.nan),
                bars_for_reach=np.ceil(np.round((required[rows] / k) ** 2, 9)).astype(
                    np.int64)))

        rows = np.flatnonzero(plans.unknown[plans.pair])
        if len(rows):
            pair = plans.pair[rows]
            named = plans.named[pair]
            blocks.append(self.fire(
                "EXIT_TEMPLATE_UNKNOWN", rows,
                severity_where(named, Severity.MEDIUM, Severity.LOW),
                template_name=plans.name_in_use[pair],
                template_source=choose(named, "named by the intent", "the rules' default"),
                n_templates=plans.n_templates[pair], available_templates=plans.available[pair]))

        blocks += self._partials(ctx, plans, lot)

        with np.errstate(invalid="ignore", divide="ignore"):
            target_off = np.abs(reward_risk - tpl_target_r) > (
                cfg.template_target_tolerance_r + 1e-9)
            horizon_off = (tpl_time_stop > 0) & (
                100.0 * np.abs(intent_horizon - tpl_time_stop) / tpl_time_stop
                > cfg.template_horizon_tolerance_pct + 1e-9)
        held_to = plans.named[plans.pair] | cfg.compare_default_template
        rows = np.flatnonzero(has_tpl & held_to & (target_off | horizon_off))
        if len(rows):
            template_r = tpl_target_r[rows]
            time_stop = _bars(tpl_time_stop[rows])
            target = to_tick(entry[rows] + sign[rows] * template_r * stop_distance[rows],
                              tick[rows], up=None)
            blocks.append(self.fire(
                "EXIT_TEMPLATE_MISMATCH", rows, Severity.LOW,
                thresholds={"target_r": template_r, "holding_horizon": time_stop},
                template_name=plans.names[tpl[rows]], target_r=reward_risk[rows],
                template_target_r=template_r, holding_horizon=_bars(intent_horizon[rows]),
                template_time_stop_bars=time_stop,
                target_r_tolerance=cfg.template_target_tolerance_r,
                horizon_tolerance_pct=cfg.template_horizon_tolerance_pct,
                template_target=np.where(target > 0, target, np.nan)))

        rows = np.flatnonzero(~has_tpl & ~plans.unknown[plans.pair])
        if len(rows):
            blocks.append(self.fire("EXIT_TEMPLATE_NOT_SET", rows, Severity.INFO,
                                    n_templates=plans.n_templates[plans.pair[rows]]))

        return self.result(ctx.n, blocks, explain={
            "exit_legs_present": legs, "has_stop": has_stop, "target_r": target_r,
            "holding_horizon": horizon, "horizon_source": source,
            "exit_template": plans.names[tpl],
            "required_move_atr": required, "reach_atr": reach})

    def _partials(self, ctx: BatchContext, plans: _Plans, lot: np.ndarray
                  ) -> list[IssueBlock]:
        """PARTIALS_INCONSISTENT: per template with partial exits, a (rows x partials) check
        that each partial is a whole number of lots (at least one), and of the fractions'
        sum, over the rows using it."""
        with_partials = np.array([bool(t.partials) for t in plans.templates] + [False])
        rows = np.flatnonzero(with_partials[plans.template])
        if not len(rows):
            return []
        size = ctx.intents["proposed_size"].to_numpy(np.float64)[rows]
        lots_of = lot[rows]
        template = plans.template[rows]
        n_bad = np.zeros(len(rows), dtype=np.int64)
        n_partials = np.zeros(len(rows), dtype=np.int64)
        fraction_sum, smallest, step = (np.full(len(rows), np.nan) for _ in range(3))
        for number in np.unique(template).tolist():
            at = np.flatnonzero(template == number)
            fractions = np.array([p.fraction for p in plans.templates[number].partials])
            units = size[at, None] * fractions[None, :]
            nearest = np.floor(units / lots_of[at, None] + 0.5) * lots_of[at, None]
            # a partial of at least one lot whose nearest whole-lot size stays within the
            # tolerance of its planned share splits well enough to execute
            gap_pct = 100.0 * np.abs(nearest - units) / size[at, None]
            whole = (nearest >= lots_of[at, None] * (1 - 1e-9)) & (
                gap_pct <= self.config.partial_rounding_tolerance_pct + 1e-9)
            n_bad[at] = ((fractions <= 0) | ~whole).sum(axis=1)
            n_partials[at] = len(fractions)
            fraction_sum[at] = math.fsum(fractions.tolist())
            smallest[at] = units.min(axis=1)
            # a size that is a multiple of lot x (common denominator of the fractions)
            # splits into whole lots
            denominators = [Fraction(f).limit_denominator(1000).denominator
                            for f in fractions.tolist() if f > 0]
            step[at] = lots_of[at] * math.lcm(*denominators)
        over = fraction_sum > 1 + 1e-9
        fired = np.flatnonzero((n_bad > 0) | over)
        if not len(fired):
            return []
        rows = rows[fired]
        in_shares = ctx.instrument["asset_class"].to_numpy(dtype=object)[rows] == "equity"
        return [self.fire(
            "PARTIALS_INCONSISTENT", rows,
            severity_where(over[fired], Severity.MEDIUM, Severity.LOW),
            thresholds={"fraction_sum_pct": 100.0},
            n_inconsistent=n_bad[fired], n_partials=n_partials[fired],
            fraction_sum_pct=100.0 * fraction_sum[fired], smallest_partial=smallest[fired],
            size=size[fired], lot_size=lots_of[fired], template_name=plans.names[template[fired]],
            partial_rounding_tolerance_pct=self.config.partial_rounding_tolerance_pct,
            size_step=step[fired],
            units={SIZE: choose(in_shares, "shares", "units")})]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Plans:
    """What each row's account says about its exit plan, resolved once per distinct
    (account, template name) pair.

    Per row: ``pair`` (its pair's number) and ``template`` (number in ``templates``, -1:
    none). Per pair: ``stop_required``, ``min_reward_risk`` (R), and EXIT_TEMPLATE_UNKNOWN's
    facts (``unknown``: it fires; ``named``: the intent named the template, else it is the
    rules' default; ``name_in_use``, ``n_templates``, ``available``). Per template, with one
    more entry (NaN, None) for "none" at index -1: ``target_r``, ``time_stop`` (bars),
    ``names``.
    """

    pair: np.ndarray
    template: np.ndarray
    stop_required: np.ndarray
    min_reward_risk: np.ndarray
    unknown: np.ndarray
    named: np.ndarray
    name_in_use: np.ndarray
    n_templates: np.ndarray
    available: np.ndarray
    templates: list[ExitTemplate]
    target_r: np.ndarray
    time_stop: np.ndarray
    names: np.ndarray

    @classmethod
    def resolve(cls, ctx: BatchContext) -> _Plans:
        """Resolve every row's account rules and exit template (raises on a row without an
        account, and on a template number the checks cannot use)."""
        account_code, accounts = ctx.distinct_pieces("account")
        name_code, names = pd.factorize(ctx.intents["exit_template"].to_numpy(dtype=object))
        row_pair, pairs = pd.factorize(account_code * (len(names) + 1) + name_code + 1)
        templates: list[ExitTemplate] = []
        numbers: dict[int, int] = {}
        number, stop_required, min_rr, unknown, named = [], [], [], [], []
        name_in_use, n_templates, available = [], [], []
        for key in pairs.tolist():
            account = accounts[key // (len(names) + 1)]
            if not isinstance(account, AccountContext):
                raise TypeError(f"exit_plan: the account piece is a {type(account).__name__}, "
                                "not an AccountContext")
            asked = None if key % (len(names) + 1) == 0 else names[key % (len(names) + 1) - 1]
            template = account.exit_template(asked)
            if template is not None and id(template) not in numbers:
                numbers[id(template)] = len(templates)
                templates.append(template)
            number.append(-1 if template is None else numbers[id(template)])
            stop_required.append(bool(account.rules.stop_required))
            min_rr.append(float(account.rules.min_reward_risk))
            # the name in use: the intent's, else the rules' default ("" names nothing)
            name = asked or account.rules.default_exit_template
            unknown.append(template is None and name is not None)
            named.append(bool(asked))
            name_in_use.append(name)
            n_templates.append(len(account.exit_templates))
            available.append(", ".join(t.name for t in account.exit_templates) or "none saved")
        for template in templates:
            _check_template(template)
        row_pair = row_pair.astype(np.int64)
        return cls(
            pair=row_pair, template=np.asarray(number, dtype=np.int64)[row_pair],
            stop_required=np.asarray(stop_required, dtype=bool),
            min_reward_risk=np.asarray(min_rr, dtype=np.float64),
            unknown=np.asarray(unknown, dtype=bool), named=np.asarray(named, dtype=bool),
            name_in_use=_objects(name_in_use),
            n_templates=np.asarray(n_templates, dtype=np.int64),
            available=_objects(available),
            templates=templates,
            target_r=np.array([*(np.nan if t.target_r is None else t.target_r
                                 for t in templates), np.nan], dtype=np.float64),
            time_stop=np.array([*(np.nan if t.time_stop_bars is None else t.time_stop_bars
                                  for t in templates), np.nan], dtype=np.float64),
            names=_objects([*(t.name for t in templates), None]))


def _check_template(template: ExitTemplate) -> None:
    """Raise ValueError naming the field of ``template`` the checks cannot use (the store
    refuses these; a template built in memory may still hold them)."""
    target, bars = template.target_r, template.time_stop_bars
    checks = [("target_r", target, "a finite number", target is None or math.isfinite(target)),
              ("time_stop_bars", bars, "a whole number of bars >= 0", bars is None or (
                  math.isfinite(bars) and bars >= 0 and bars == int(bars))),
              *(("partials.fraction", p.fraction, "a finite number", math.isfinite(p.fraction))
                for p in template.partials)]
    for field, value, rule, ok in checks:
        if not ok:
            raise ValueError(f"exit_plan: exit_template {template.name!r}: {field} must be "
                             f"{rule}, got {value!r}")


def _bars(values: np.ndarray) -> np.ndarray:
    """Return bar counts as ints, None where NaN (objects: evidence writes 10, not 10.0)."""
    out = np.where(np.isnan(values), 0, values).astype(np.int64).astype(object)
    out[np.isnan(values)] = None
    return out


def _one(values: np.ndarray) -> Any:
    """Return the value every row shares, else ``values``: a shared value is written into
    the evidence once instead of row by row (labels and per-timeframe limits mostly are)."""
    return values[0] if len(values) and (values == values[0]).all() else values


def _objects(values: Sequence[Any]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out
