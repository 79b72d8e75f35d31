"""MissingScanner: a checklist of what the trader may have missed.

Each item looks inside the holding horizon (the intent's, else ``default_horizon_bars``),
turned into a point in time by the ``schedule`` piece's sessions ahead:

- scheduled events (imported earnings and macro dates announced by as_of): EVENT_WITHIN_HORIZON,
  medium when the instrument's own earnings fall inside; EARNINGS_DATES_UNKNOWN (info) when
  no earnings dates of a stock are known at all, so that check could not be made;
- exchange closures: HOLIDAY_WITHIN_HORIZON, EARLY_CLOSE_WITHIN_HORIZON;
- liquidity of the instrument itself, from the market piece: LOW_LIQUIDITY when the median
  value traded per session (close x volume, quote currency) is below ``min_session_value``
  (stocks only: index and FX volumes are not traded units). The last bar's relative volume
  and the order's share of bar volume are entry_quality's and risk_reward's checks;
- key levels between entry and target (optional ``levels`` piece):
  LEVELS_BETWEEN_ENTRY_AND_TARGET, else LEVELS_NOT_CHECKED (info, with the reason);
- regime transition risk over the horizon (optional ``regime`` piece):
  REGIME_TRANSITION_RISK, with regime_fit's code and default limits so the report keeps one
  of the two, else REGIME_TRANSITION_RISK_UNCHECKED (info, with the reason: regime_fit is
  skipped without the piece, so this is where its absence shows as an unchecked item);
- exposure (optional ``portfolio`` piece, the hook): a portfolio piece that implements
  ``ExposureHook`` is asked for the position already held in the symbol (EXISTING_POSITION);
  otherwise EXPOSURE_NOT_CHECKED (info, with the reason).

Optional pieces are read only when present; their absence is an item of the checklist, not a
skip of the module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Protocol, runtime_checkable

import pandas as pd

from buddy.config import ModuleConfig, param
from buddy.context.pack import ContextPack
from buddy.context.pieces import KeyLevelsSnapshot, RegimeSnapshot
from buddy.domain import EvaluationResult, Fact, Issue, Severity, TradeIntent
from buddy.errors import ConfigError, FieldError
from buddy.evaluators.base import Evaluator, IssueTemplate
from buddy.evaluators.registry import register
from buddy.events.model import ScheduleContext, UpcomingEvent
from buddy.timeframes import Timeframe

#: Asset classes whose bar volume is in the units an order is sized in.
VOLUME_IN_ORDER_UNITS = frozenset({"equity", "etf"})
#: Sessions in a weekly bar, to put a weekly bar's traded value on a per-session basis.
SESSIONS_PER_WEEK = 5


@runtime_checkable
class ExposureHook(Protocol):
    """What the scanner asks of a portfolio piece (the exposure hook)."""

    def position_in(self, symbol: str) -> float:
        """Return the signed quantity held in ``symbol`` (units; 0 when flat)."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class MissingScannerConfig(ModuleConfig):
    """Thresholds of the missing-items checklist."""

    config_name = "missing_scanner"

    default_horizon_bars: int = param(10, lo=1, hi=10_000, unit="bars",
                                      doc="horizon scanned when the intent gives none")
    min_session_value: float = param(1_000_000.0, lo=0.0, hi=1e12, unit="quote currency",
                                     doc="median value traded per session below which the "
                                         "instrument is thin (spreads, gaps, partial fills)")
    liquidity_sessions: int = param(20, lo=1, hi=1000, unit="sessions",
                                    doc="sessions the median traded value is taken over")
    levels_medium_count: int = param(3, lo=1, hi=100, unit="levels",
                                     doc="levels between entry and target from which the "
                                         "item is medium severity, else low")
    transition_risk_low_pct: float = param(50.0, lo=0.0, hi=100.0, unit="%",
                                           doc="regime transition risk over the horizon "
                                               "above which it is flagged (low severity)")
    transition_risk_medium_pct: float = param(80.0, lo=0.0, hi=100.0, unit="%",
                                              doc="regime transition risk from which the "
                                                  "item is medium severity")

    def __post_init__(self) -> None:
        ModuleConfig.__post_init__(self)
        if self.transition_risk_medium_pct < self.transition_risk_low_pct:
            raise ConfigError([FieldError(
                "missing_scanner.transition_risk_medium_pct",
                f"must be >= transition_risk_low_pct ({self.transition_risk_low_pct})",
                self.transition_risk_medium_pct)])


@register
class MissingScannerEvaluator(Evaluator):
    """List events, closures, liquidity, levels, regime and exposure the trade may miss."""

    name = "missing_scanner"
    version = "1.0.0"
    requires = frozenset({"market", "schedule"})
    optional = frozenset({"levels", "regime", "portfolio"})
    config_cls = MissingScannerConfig
    templates: ClassVar = {
        "EVENT_WITHIN_HORIZON": IssueTemplate(
            "Scheduled event inside the holding horizon",
            "{n_events} scheduled event(s) fall inside the holding horizon of {horizon_bars} "
            "(to {horizon_end}), {n_earnings} of them earnings of this instrument; the first "
            "is {next_event} at {next_event_ts}, with {sessions_to_next_event} closing "
            "before it.",
            "Decide before entering whether to hold through {next_event}: size for a gap, "
            "or plan to exit before it."),
        "EARNINGS_DATES_UNKNOWN": IssueTemplate(
            "Earnings dates not known",
            "No earnings dates of {symbol} announced by the evaluation time are in the events "
            "table ({earnings_dates_known} known), so earnings inside the holding horizon of "
            "{horizon_bars} were not checked.",
            "Import the company's earnings calendar with `buddy events-import`."),
        "HOLIDAY_WITHIN_HORIZON": IssueTemplate(
            "Market closed inside the holding horizon",
            "The market is closed on {first_holiday} ({n_holidays} closed weekday(s) inside "
            "the holding horizon of {horizon_bars}), with {sessions_to_first_holiday} "
            "closing before it; the position cannot be managed on a closed day.",
            "Count the closed day(s) in the time stop and allow for a gap at the reopen."),
        "EARLY_CLOSE_WITHIN_HORIZON": IssueTemplate(
            "Early close inside the holding horizon",
            "The session of {first_early_close} ends early, at {early_close_time} "
            "({n_early_closes} early close(s) inside the holding horizon of {horizon_bars}).",
            "Plan exits and order times for the shortened session."),
        "LOW_LIQUIDITY": IssueTemplate(
            "Thinly traded instrument",
            "{symbol} traded a median {median_session_value} per session over the last "
            "{sessions_used}, below {min_session_value}.",
            "Prefer limit orders, allow for wide spreads and gaps, and keep the size small "
            "against the volume."),
        "LEVELS_BETWEEN_ENTRY_AND_TARGET": IssueTemplate(
            "Key levels between entry and target",
            "{n_levels} key level(s) lie between the entry {proposed_entry} and the target "
            "{proposed_target}; the nearest is {nearest_level} at {nearest_level_price}.",
            "Plan what to do at {nearest_level_price}: a partial exit, a nearer target, or a "
            "reason the level should not hold the trade up."),
        "LEVELS_NOT_CHECKED": IssueTemplate(
            "Key levels not checked",
            "Levels between the entry {proposed_entry} and the target were not checked: "
            "{reason}.",
            "Mark the key levels between entry and target on the chart yourself."),
        "REGIME_TRANSITION_RISK": IssueTemplate(
            "Regime may change within the horizon",
            "The regime model's transition matrix gives {transition_risk_pct} for leaving the "
            "current {hmm_state} state within {regime_horizon_bars} of {regime_timeframe} "
            "(flagged above {transition_risk_low_pct}).",
            "Plan for the trade in a different regime: a tighter time stop or a smaller "
            "size."),
        "REGIME_TRANSITION_RISK_UNCHECKED": IssueTemplate(
            "Regime transition risk not checked",
            "The risk of a regime change within the holding horizon of {horizon_bars} was "
            "not checked: {reason}.",
            "Run the regime job for this symbol, or judge the regime yourself."),
        "EXISTING_POSITION": IssueTemplate(
            "Position already open in this symbol",
            "You already hold {position_qty} of {symbol}; this {side} trade of "
            "{proposed_size} would bring the position to {combined_qty}.",
            "Count the open position in this trade's risk, or size this one down."),
        "EXPOSURE_NOT_CHECKED": IssueTemplate(
            "Portfolio exposure not checked",
            "Exposure of the order's {notional} against open positions was not checked: "
            "{reason}.",
            "Check open positions in this symbol and correlated ones before entering."),
    }

    def evaluate(self, intent: TradeIntent, ctx: ContextPack) -> EvaluationResult:
        """Return the checklist items the intent may have missed."""
        market, schedule = ctx.market, ctx.schedule
        assert market is not None and isinstance(schedule, ScheduleContext)  # by requires
        horizon_bars = intent.holding_horizon or self.config.default_horizon_bars
        horizon_source = "intent" if intent.holding_horizon else "default"
        horizon_end, clipped = schedule.horizon_end(intent.timeframe, horizon_bars)
        horizon = [Fact(name="horizon_bars", value=horizon_bars, unit="bars"),
                   Fact(name="horizon_end", value=horizon_end.isoformat())]
        issues = [
            *self._events(intent, ctx, schedule, horizon_end, horizon),
            *self._closures(intent, ctx, schedule, horizon_end, horizon),
            *self._liquidity(intent, ctx),
            *self._levels(intent, ctx),
            *self._regime(intent, ctx, horizon_bars),
            *self._exposure(intent, ctx),
        ]
        facts = [*horizon,
                 Fact(name="horizon_source", value=horizon_source),
                 Fact(name="horizon_beyond_known_sessions", value=clipped),
                 Fact(name="n_events_in_horizon", value=len(schedule.events_between(
                     schedule.as_of, horizon_end))),
                 Fact(name="levels_checked", value=isinstance(ctx.levels, KeyLevelsSnapshot)
                      and intent.proposed_target is not None),
                 Fact(name="regime_checked", value=isinstance(ctx.regime, RegimeSnapshot)),
                 Fact(name="exposure_checked", value=isinstance(ctx.portfolio, ExposureHook))]
        return self.result(issues, facts)

    # ------------------------------------------------------------------- events, closures
    def _events(self, intent: TradeIntent, ctx: ContextPack, schedule: ScheduleContext,
                horizon_end: datetime, horizon: list[Fact]) -> list[Issue]:
        issues = []
        inside = schedule.events_between(schedule.as_of, horizon_end,
                                         ("earnings", "macro", "other"))
        if inside:
            own = [e for e in inside if e.kind == "earnings" and e.symbol == intent.symbol]
            first = inside[0]
            issues.append(self.issue(
                "EVENT_WITHIN_HORIZON", Severity.MEDIUM if own else Severity.LOW,
                [Fact(name="n_events", value=len(inside)),
                 Fact(name="n_earnings", value=len(own)),
                 Fact(name="n_macro", value=sum(e.kind == "macro" for e in inside)),
                 Fact(name="next_event", value=first.title),
                 Fact(name="next_event_kind", value=first.kind),
                 Fact(name="next_event_ts", value=first.ts.isoformat()),
                 Fact(name="sessions_to_next_event", value=schedule.sessions_before(first.ts),
                      unit="sessions"),
                 *horizon],
                "PLAN_AROUND_EVENT", [Fact(name="next_event", value=first.title)]))
        if ctx.instrument.asset_class == "equity" and schedule.earnings_dates_known == 0:
            issues.append(self.issue(
                "EARNINGS_DATES_UNKNOWN", Severity.INFO,
                [Fact(name="earnings_dates_known", value=0),
                 Fact(name="symbol", value=intent.symbol), *horizon],
                "IMPORT_EARNINGS_DATES"))
        return issues

    def _closures(self, intent: TradeIntent, ctx: ContextPack, schedule: ScheduleContext,
                  horizon_end: datetime, horizon: list[Fact]) -> list[Issue]:
        issues = []
        tz = ctx.instrument.timezone
        holidays = schedule.events_between(schedule.as_of, horizon_end, ("holiday",))
        if holidays:
            first = holidays[0]
            issues.append(self.issue(
                "HOLIDAY_WITHIN_HORIZON", Severity.LOW,
                [Fact(name="n_holidays", value=len(holidays)),
                 Fact(name="first_holiday", value=_local_day(first, tz)),
                 Fact(name="sessions_to_first_holiday",
                      value=schedule.sessions_before(first.ts), unit="sessions"),
                 Fact(name="holiday_title", value=first.title), *horizon],
                "ALLOW_FOR_CLOSED_DAYS"))
        early = schedule.events_between(schedule.as_of, horizon_end, ("early_close",))
        if early:
            first = early[0]
            local = pd.Timestamp(first.ts).tz_convert(tz)
            issues.append(self.issue(
                "EARLY_CLOSE_WITHIN_HORIZON",
                Severity.LOW if intent.timeframe.is_intraday else Severity.INFO,
                [Fact(name="n_early_closes", value=len(early)),
                 Fact(name="first_early_close", value=f"{local:%Y-%m-%d}"),
                 Fact(name="early_close_time", value=f"{local:%H:%M} {tz}"),
                 Fact(name="sessions_to_early_close",
                      value=schedule.sessions_before(first.ts), unit="sessions"), *horizon],
                "PLAN_FOR_SHORT_SESSION"))
        return issues

    # ------------------------------------------------------------------------- liquidity
    def _liquidity(self, intent: TradeIntent, ctx: ContextPack) -> list[Issue]:
        market, inst = ctx.market, ctx.instrument
        assert market is not None
        cfg = self.config
        if inst.asset_class not in VOLUME_IN_ORDER_UNITS:
            return []
        bars = market.bars
        value = bars["close"].to_numpy(dtype=float) * bars["volume"].to_numpy(dtype=float)
        per_session = pd.Series(value).groupby(bars["session"].to_numpy(), sort=True).sum()
        if ctx.timeframe is Timeframe.W1:
            per_session = per_session / SESSIONS_PER_WEEK
        recent = per_session.tail(cfg.liquidity_sessions)
        if recent.empty:
            return []
        median = float(recent.median())
        if median >= cfg.min_session_value:
            return []
        return [self.issue(
            "LOW_LIQUIDITY",
            Severity.MEDIUM if median < cfg.min_session_value / 10 else Severity.LOW,
            [Fact(name="median_session_value", value=round(median, 2), unit=inst.currency,
                  threshold=cfg.min_session_value),
             Fact(name="min_session_value", value=cfg.min_session_value, unit=inst.currency),
             Fact(name="sessions_used", value=len(recent), unit="sessions"),
             Fact(name="symbol", value=intent.symbol)],
            "USE_LIMIT_ORDERS")]

    # ------------------------------------------------------------------ optional pieces
    def _levels(self, intent: TradeIntent, ctx: ContextPack) -> list[Issue]:
        levels = ctx.levels
        entry = Fact(name="proposed_entry", value=intent.proposed_entry, unit="price")
        reason = None
        if levels is None:
            reason = f"levels missing ({ctx.missing.get('levels', 'not provided')})"
        elif not isinstance(levels, KeyLevelsSnapshot):
            reason = f"the levels piece is a {type(levels).__name__}, not a KeyLevelsSnapshot"
        elif intent.proposed_target is None:
            reason = "the intent has no target"
        if reason is not None:
            return [self.issue("LEVELS_NOT_CHECKED", Severity.INFO,
                               [entry, Fact(name="reason", value=reason)], "MARK_LEVELS")]
        assert isinstance(levels, KeyLevelsSnapshot) and intent.proposed_target is not None
        between = levels.between(intent.proposed_entry, intent.proposed_target)
        if not between:
            return []
        name, price = min(between.items(),
                          key=lambda kv: (abs(kv[1] - intent.proposed_entry), kv[0]))
        facts = [Fact(name="n_levels", value=len(between),
                      threshold=self.config.levels_medium_count),
                 entry, Fact(name="proposed_target", value=intent.proposed_target,
                             unit="price"),
                 Fact(name="nearest_level", value=name),
                 Fact(name="nearest_level_price", value=price, unit="price"),
                 Fact(name="levels", value=", ".join(f"{k} {v:g}" for k, v in
                                                     sorted(between.items(),
                                                            key=lambda kv: kv[1])))]
        if intent.stop_distance:
            facts.append(Fact(name="nearest_level_r", value=round(
                abs(price - intent.proposed_entry) / intent.stop_distance, 2), unit="R"))
        severity = (Severity.MEDIUM if len(between) >= self.config.levels_medium_count
                    else Severity.LOW)
        return [self.issue("LEVELS_BETWEEN_ENTRY_AND_TARGET", severity, facts,
                           "PLAN_AT_LEVEL",
                           [Fact(name="nearest_level_price", value=price, unit="price")])]

    def _regime(self, intent: TradeIntent, ctx: ContextPack, horizon_bars: int
                ) -> list[Issue]:
        regime = ctx.regime
        horizon = Fact(name="horizon_bars", value=horizon_bars, unit="bars")
        reason = None
        risk = None
        regime_bars = horizon_bars
        if regime is None:
            reason = f"regime missing ({ctx.missing.get('regime', 'not provided')})"
        elif not isinstance(regime, RegimeSnapshot):
            reason = f"the regime piece is a {type(regime).__name__}, not a RegimeSnapshot"
        else:
            regime_bars = _bars_on(regime.timeframe, intent.timeframe, horizon_bars)
            risk = regime.transition_risk(regime_bars)
            if risk is None:
                reason = "the regime snapshot has no fitted HMM"
        if reason is not None:
            return [self.issue("REGIME_TRANSITION_RISK_UNCHECKED", Severity.INFO,
                               [horizon, Fact(name="reason", value=reason)],
                               "RUN_REGIME_JOB")]
        assert isinstance(regime, RegimeSnapshot) and risk is not None
        cfg = self.config
        risk_pct = round(100.0 * risk, 2)
        if risk_pct <= cfg.transition_risk_low_pct:
            return []
        return [self.issue(
            "REGIME_TRANSITION_RISK",
            Severity.MEDIUM if risk_pct >= cfg.transition_risk_medium_pct else Severity.LOW,
            [Fact(name="transition_risk_pct", value=risk_pct, unit="%",
                  threshold=cfg.transition_risk_low_pct),
             Fact(name="transition_risk_low_pct", value=cfg.transition_risk_low_pct,
                  unit="%"),
             Fact(name="regime_horizon_bars", value=regime_bars, unit="bars"),
             Fact(name="regime_timeframe", value=regime.timeframe),
             Fact(name="hmm_state", value=regime.hmm_state_label or "current"), horizon],
            "PLAN_FOR_REGIME_CHANGE")]

    def _exposure(self, intent: TradeIntent, ctx: ContextPack) -> list[Issue]:
        portfolio = ctx.portfolio
        inst = ctx.instrument
        units = "shares" if inst.asset_class == "equity" else "units"
        notional = round(intent.proposed_entry * intent.proposed_size
                         * inst.contract_multiplier, 2)
        if not isinstance(portfolio, ExposureHook):
            reason = (f"portfolio missing ({ctx.missing.get('portfolio', 'not provided')})"
                      if portfolio is None else
                      f"the portfolio piece ({type(portfolio).__name__}) offers no "
                      "position_in()")
            return [self.issue("EXPOSURE_NOT_CHECKED", Severity.INFO,
                               [Fact(name="notional", value=notional, unit=inst.currency),
                                Fact(name="reason", value=reason)],
                               "CHECK_OPEN_POSITIONS")]
        held = float(portfolio.position_in(intent.symbol))
        if held == 0:
            return []
        combined = held + intent.side.sign * intent.proposed_size
        return [self.issue(
            "EXISTING_POSITION", Severity.LOW,
            [Fact(name="position_qty", value=held, unit=units),
             Fact(name="proposed_size", value=intent.proposed_size, unit=units),
             Fact(name="combined_qty", value=combined, unit=units),
             Fact(name="same_direction", value=held * intent.side.sign > 0),
             Fact(name="symbol", value=intent.symbol),
             Fact(name="side", value=intent.side.value)],
            "COUNT_OPEN_POSITION")]


def _local_day(event: UpcomingEvent, tz: str) -> str:
    return f"{pd.Timestamp(event.ts).tz_convert(tz):%Y-%m-%d}"


def _bars_on(target: str, source: Timeframe, bars: int) -> int:
    """Return ``bars`` bars of ``source`` as a whole number of ``target`` bars (at least 1)."""
    try:
        target_tf = Timeframe.parse(target)
    except ValueError:
        return bars
    return max(1, math.ceil(bars * source.nominal / target_tf.nominal - 1e-9))
