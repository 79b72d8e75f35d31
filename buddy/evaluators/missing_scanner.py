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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from buddy.batch.columns import distinct, objects, py_round
from buddy.batch.context import BatchContext
from buddy.batch.result import (
    BatchResult,
    FactColumn,
    IssueBlock,
    concat_results,
    evidence_json,
    issues_frame,
)
from buddy.config import ModuleConfig, param
from buddy.context.pack import ContextPack
from buddy.context.pieces import KeyLevelsSnapshot, RegimeSnapshot
from buddy.domain import EvaluationResult, Fact, Issue, Severity, TradeIntent
from buddy.errors import ConfigError, FieldError
from buddy.evaluators.base import Evaluator, IssueTemplate
from buddy.evaluators.registry import register
from buddy.events.model import EVENT_KINDS, ScheduleContext, UpcomingEvent
from buddy.timeframes import Timeframe

#: Asset classes whose bar volume is in the units an order is sized in.
VOLUME_IN_ORDER_UNITS = frozenset({"equity", "etf"})
#: Sessions in a weekly bar, to put a weekly bar's traded value on a per-session basis.
SESSIONS_PER_WEEK = 5
#: Event kinds EVENT_WITHIN_HORIZON counts (closures are items of their own).
NEWS_KINDS: tuple[str, ...] = ("earnings", "macro", "other")


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

    def evaluate_batch(self, ctx: BatchContext) -> BatchResult:
        """Return what ``evaluate`` returns on every row of ``ctx``, column-wise.

        The schedule, levels, regime and portfolio pieces are read once per distinct object
        and their sessions, events and levels laid end to end in flat arrays; the horizon end,
        the events inside it and the levels between entry and target are then binary searches
        of every row at once, and the liquidity medians come from the session sums of the bar
        windows. Rows the arrays cannot reproduce exactly (see ``_BatchScan``) go through
        ``evaluate``.
        """
        return _BatchScan(self, ctx).result()

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
        inside = schedule.events_between(schedule.as_of, horizon_end, NEWS_KINDS)
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


# ---------------------------------------------------------------------------- batch form
#: Event kind -> code in the flat event arrays (kinds outside EVENT_KINDS get the next code).
_KIND_CODE: dict[str, int] = {kind: code for code, kind in enumerate(EVENT_KINDS)}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ZERO = timedelta(0)
#: (row, session) cells of the liquidity median built at once, to bound memory.
_CELLS_PER_CHUNK = 4_000_000


class _BatchScan:
    """The missing-scanner's batch form over one BatchContext.

    ``result()`` assembles the IssueBlocks of every item in the scalar form's order. Rows the
    arrays cannot reproduce exactly (``ok`` False) run through ``evaluate``: rows whose
    schedule is not a ScheduleContext (the scalar form fails on them), has datetimes
    that are not UTC (the horizon end is written in the zone of the datetime it comes from)
    or sessions or events out of time order, or holds earnings while the intent's symbol is
    not the schedule's; and stocks whose bar window has missing or unordered sessions.
    """

    def __init__(self, evaluator: MissingScannerEvaluator, ctx: BatchContext) -> None:
        self.evaluator, self.cfg, self.ctx = evaluator, evaluator.config, ctx
        intents, inst = ctx.intents, ctx.instrument
        self.n = ctx.n
        self.symbol = intents["symbol"].to_numpy(dtype=object)
        self.side = intents["side"].to_numpy(dtype=object)
        self.entry = intents["proposed_entry"].to_numpy(np.float64)
        self.target = intents["proposed_target"].to_numpy(np.float64)
        self.size = intents["proposed_size"].to_numpy(np.float64)
        self.sign = intents["sign"].to_numpy(np.float64)
        self.stop_distance = intents["stop_distance"].to_numpy(np.float64)
        given = intents["holding_horizon"].to_numpy(np.float64)
        given = np.where(np.isnan(given), 0.0, given)
        # ``intent.holding_horizon or default``
        self.horizon = np.where(given != 0, given, self.cfg.default_horizon_bars).astype(np.int64)
        self.tf_code, labels = pd.factorize(intents["timeframe"].to_numpy(dtype=object))
        self.timeframes = [Timeframe.parse(label) for label in labels]
        tf = np.array([*self.timeframes, Timeframe.D1], dtype=object)[self.tf_code]
        self.daily = tf == Timeframe.D1
        self.weekly = tf == Timeframe.W1
        self.nominal = np.array([t.nominal.value for t in self.timeframes] + [0],
                                dtype=np.int64)[self.tf_code]
        self.intraday = ~self.daily & ~self.weekly
        self.asset_class = inst["asset_class"].to_numpy(dtype=object)
        self.timezone = inst["timezone"].to_numpy(dtype=object)
        self.currency = inst["currency"].to_numpy(dtype=object)
        self.multiplier = inst["contract_multiplier"].to_numpy(np.float64)
        self.sched_code, pieces = ctx.distinct_pieces("schedule")
        self.sched = _Schedules.of(pieces)
        sc = self.sched_code
        self.ok = self.sched.regular[sc] & ~(
            self.sched.has_earnings[sc] & (self.symbol != self.sched.symbol[sc]))
        self.liquid = np.isin(self.asset_class, list(VOLUME_IN_ORDER_UNITS))
        self._session_groups()
        self._horizon_end()
        self._event_windows()

    # ------------------------------------------------------------------ assembly
    def result(self) -> BatchResult:
        """Return the BatchResult of every row (odd rows from the scalar form)."""
        ev, n = self.evaluator, self.n
        blocks = [*self._events(), *self._closures(), *self._liquidity(), *self._levels(),
                  *self._regime(), *self._exposure()]
        result = BatchResult.from_issues(ev.name, ev.version, n, issues_frame(blocks))
        odd = np.flatnonzero(~self.ok)
        if not len(odd):
            return result
        ctx = self.ctx
        scalar = BatchResult.from_results(ev.name, ev.version, [
            ev.evaluate(ctx.intent(i), ctx.pack(i)) for i in odd.tolist()])
        good = np.flatnonzero(self.ok)
        return concat_results(ev.name, ev.version,
                              [(good, result.take(good)), (odd, scalar)], n)

    def _horizon_facts(self, rows: np.ndarray) -> list[FactColumn]:
        return [FactColumn("horizon_bars", self.horizon[rows], "bars"),
                FactColumn("horizon_end", self.horizon_end[rows])]

    # ------------------------------------------------------------------ horizon
    def _horizon_end(self) -> None:
        """``schedule.horizon_end(timeframe, bars)`` per row: ``end`` (UTC ns) and
        ``horizon_end`` (its isoformat)."""
        sch, sc = self.sched, self.sched_code
        bars = np.maximum(1, self.horizon)
        lo, hi = sch.s_lo[sc], sch.s_hi[sc]
        count = hi - lo
        pick = np.maximum(hi - 1, 0)  # the close returned: by default the last known one
        pick = np.where(self.daily & (bars <= count), lo + bars - 1, pick)
        if self.weekly.any():
            weeks, w_lo, w_count = sch.weeks()
            within = self.weekly & (bars < w_count[sc])
            pick = np.where(within, weeks[np.where(within, w_lo[sc] + bars - 1, 0)], pick)
        end = np.where(count > 0, sch.close[pick], sch.window_end[sc])
        if self.intraday.any():
            start, traded = sch.trading_time()
            need = bars * self.nominal
            k = _search(traded, lo, hi, need, "left")
            found = self.intraday & (k < hi)
            before = np.where(k > lo, traded[np.maximum(k - 1, 0)], 0)
            end = np.where(found, start[np.minimum(k, len(start) - 1)] + need - before, end)
        self.end = end
        self.horizon_end = _iso_utc(end)

    # ------------------------------------------------------------------ events, closures
    def _event_windows(self) -> None:
        """Each row's flat event range [ev_lo, ev_hi): the events from the schedule's as_of to
        the horizon end (events are in time order within a piece)."""
        sch, sc = self.sched, self.sched_code
        self.ev_lo = _search(sch.ev_ts, sch.e_lo, sch.e_hi, sch.as_of, "left")[sc]
        self.ev_hi = np.maximum(
            _search(sch.ev_ts, sch.e_lo[sc], sch.e_hi[sc], self.end, "right"), self.ev_lo)

    def _events(self) -> list[IssueBlock]:
        sch, sc = self.sched, self.sched_code
        lo, hi = self.ev_lo, self.ev_hi
        kind = sch.ev_kind
        news = np.isin(kind, [_KIND_CODE[k] for k in NEWS_KINDS])
        n_news, first = _in_window(news, lo, hi)
        blocks = []
        rows = np.flatnonzero(self.ok & (n_news > 0))
        if len(rows):
            n_own, _ = _in_window(sch.ev_own, lo[rows], hi[rows])
            n_macro, _ = _in_window(kind == _KIND_CODE["macro"], lo[rows], hi[rows])
            event = first[rows]
            facts = [FactColumn("n_events", n_news[rows]), FactColumn("n_earnings", n_own),
                     FactColumn("n_macro", n_macro),
                     FactColumn("next_event", _per_event(sch.events, event,
                                                         lambda e: e.title)),
                     FactColumn("next_event_kind", _per_event(sch.events, event,
                                                              lambda e: e.kind)),
                     FactColumn("next_event_ts", _per_event(sch.events, event,
                                                            lambda e: e.ts.isoformat())),
                     FactColumn("sessions_to_next_event", sch.ev_sessions_before[event],
                                "sessions"), *self._horizon_facts(rows)]
            blocks += _by_severity(
                "EVENT_WITHIN_HORIZON", rows,
                np.where(n_own > 0, Severity.MEDIUM.value, Severity.LOW.value),
                _evidence(facts, len(rows)))
        rows = np.flatnonzero(self.ok & (self.asset_class == "equity")
                              & sch.earnings_unknown[sc])
        if len(rows):
            facts = [FactColumn("earnings_dates_known", 0),
                     FactColumn("symbol", self.symbol[rows]), *self._horizon_facts(rows)]
            blocks.append(IssueBlock("EARNINGS_DATES_UNKNOWN", rows, Severity.INFO,
                                     _evidence(facts, len(rows))))
        return blocks

    def _closures(self) -> list[IssueBlock]:
        sch = self.sched
        lo, hi = self.ev_lo, self.ev_hi
        blocks = []
        n_holidays, first = _in_window(sch.ev_kind == _KIND_CODE["holiday"], lo, hi)
        rows = np.flatnonzero(self.ok & (n_holidays > 0))
        if len(rows):
            event = first[rows]
            facts = [FactColumn("n_holidays", n_holidays[rows]),
                     FactColumn("first_holiday", _per_event_zone(
                         sch.events, event, self.timezone[rows], _local_day)),
                     FactColumn("sessions_to_first_holiday", sch.ev_sessions_before[event],
                                "sessions"),
                     FactColumn("holiday_title", _per_event(sch.events, event,
                                                            lambda e: e.title)),
                     *self._horizon_facts(rows)]
            blocks.append(IssueBlock("HOLIDAY_WITHIN_HORIZON", rows, Severity.LOW,
                                     _evidence(facts, len(rows))))
        n_early, first = _in_window(sch.ev_kind == _KIND_CODE["early_close"], lo, hi)
        rows = np.flatnonzero(self.ok & (n_early > 0))
        if len(rows):
            event, zone = first[rows], self.timezone[rows]
            facts = [FactColumn("n_early_closes", n_early[rows]),
                     FactColumn("first_early_close", _per_event_zone(
                         sch.events, event, zone,
                         lambda e, tz: f"{pd.Timestamp(e.ts).tz_convert(tz):%Y-%m-%d}")),
                     FactColumn("early_close_time", _per_event_zone(
                         sch.events, event, zone,
                         lambda e, tz: f"{pd.Timestamp(e.ts).tz_convert(tz):%H:%M} {tz}")),
                     FactColumn("sessions_to_early_close", sch.ev_sessions_before[event],
                                "sessions"), *self._horizon_facts(rows)]
            blocks += _by_severity(
                "EARLY_CLOSE_WITHIN_HORIZON", rows,
                np.where(self.intraday[rows], Severity.LOW.value, Severity.INFO.value),
                _evidence(facts, len(rows)))
        return blocks

    # ------------------------------------------------------------------ liquidity
    def _session_groups(self) -> None:
        """Group the bar data into runs of one session, and hand to the scalar form (``ok``
        False) the stock rows whose window has a missing session or sessions out of order
        (pandas' groupby would drop or merge them)."""
        bars = self.ctx.bars
        rows = np.flatnonzero(self.liquid)
        self.group = None
        if not len(rows) or not len(bars.data):
            return
        session, _ = pd.factorize(bars.data["session"].to_numpy(), sort=True)
        session = np.asarray(session, dtype=np.int64)
        new = np.ones(len(session), dtype=bool)
        new[1:] = session[1:] != session[:-1]
        back = np.zeros(len(session), dtype=bool)
        back[1:] = session[1:] < session[:-1]
        start, stop = bars.start[rows], bars.stop[rows]
        missing = _count_in(session < 0, start, stop)
        unordered = _count_in(back, np.minimum(start + 1, stop), stop)
        self.ok[rows[(missing > 0) | (unordered > 0)]] = False
        gid = np.cumsum(new) - 1
        g_start = np.flatnonzero(new)
        g_stop = np.append(g_start[1:], len(session))
        value = bars.column("close") * bars.column("volume")
        value = np.where(np.isnan(value), 0.0, value)  # groupby's sum skips NaN
        # running sum within each session run: a partial run is a difference of two
        running = pd.Series(value).groupby(gid).cumsum().to_numpy(np.float64)
        self.group = (gid, g_start, g_stop, running)

    def _liquidity(self) -> list[IssueBlock]:
        cfg, bars = self.cfg, self.ctx.bars
        if self.group is None:
            return []
        gid, g_start, g_stop, running = self.group
        rows = np.flatnonzero(self.ok & self.liquid & (bars.stop > bars.start))
        span = cfg.liquidity_sessions
        medians = np.full(len(rows), math.nan)
        used = np.zeros(len(rows), dtype=np.int64)
        chunk = max(1, _CELLS_PER_CHUNK // span)
        offsets = np.arange(span, dtype=np.int64)
        for begin in range(0, len(rows), chunk):
            part = rows[begin:begin + chunk]
            start, stop = bars.start[part][:, None], bars.stop[part][:, None]
            first, last = gid[start], gid[stop - 1]
            group = last - span + 1 + offsets[None, :]  # the last ``span`` sessions, oldest first
            valid = group >= first
            group = np.where(valid, group, first)
            lo, hi = np.maximum(start, g_start[group]), np.minimum(stop, g_stop[group])
            sums = running[hi - 1] - np.where(lo > g_start[group],
                                              running[np.maximum(lo - 1, 0)], 0.0)
            sums = np.where(self.weekly[part][:, None], sums / SESSIONS_PER_WEEK, sums)
            sums = np.sort(np.where(valid, sums, np.inf), axis=1)
            k = valid.sum(axis=1)
            low = np.take_along_axis(sums, ((k - 1) // 2)[:, None], axis=1)[:, 0]
            high = np.take_along_axis(sums, (k // 2)[:, None], axis=1)[:, 0]
            medians[begin:begin + chunk] = np.where(k % 2 == 1, low, (low + high) / 2)
            used[begin:begin + chunk] = k
        thin = medians < cfg.min_session_value
        rows, medians, used = rows[thin], medians[thin], used[thin]
        if not len(rows):
            return []
        currency = self.currency[rows]
        evidence = _evidence_by_unit(currency, lambda idx, unit: [
            FactColumn("median_session_value", py_round(medians[idx], 2), unit,
                       cfg.min_session_value),
            FactColumn("min_session_value", cfg.min_session_value, unit),
            FactColumn("sessions_used", used[idx], "sessions"),
            FactColumn("symbol", self.symbol[rows[idx]])])
        severity = np.where(medians < cfg.min_session_value / 10, Severity.MEDIUM.value,
                            Severity.LOW.value)
        return _by_severity("LOW_LIQUIDITY", rows, severity, evidence)

    # ------------------------------------------------------------------ optional pieces
    def _levels(self) -> list[IssueBlock]:
        cfg, ctx = self.cfg, self.ctx
        code, pieces = ctx.distinct_pieces("levels")
        lv = _Levels.of(pieces)
        kind = lv.kind[code]
        has_target = ~np.isnan(self.target)
        checked = (kind == _Levels.SNAPSHOT) & has_target
        blocks = []
        rows = np.flatnonzero(self.ok & ~checked)
        if len(rows):
            reason = np.full(len(rows), "the intent has no target", dtype=object)
            missing = kind[rows] == _Levels.MISSING
            reason[missing] = _prefixed("levels missing (", _missing(ctx, "levels", rows[missing]),
                                        ")")
            other = kind[rows] == _Levels.OTHER
            reason[other] = _prefixed("the levels piece is a ", lv.type_name[code[rows[other]]],
                                      ", not a KeyLevelsSnapshot")
            blocks.append(IssueBlock("LEVELS_NOT_CHECKED", rows, Severity.INFO, _evidence(
                [FactColumn("proposed_entry", self.entry[rows], "price"),
                 FactColumn("reason", reason)], len(rows))))
        rows = np.flatnonzero(self.ok & checked)
        if len(rows):
            entry, target, at = self.entry[rows], self.target[rows], code[rows]
            low = _search(lv.price, lv.lo[at], lv.hi[at], np.minimum(entry, target), "right")
            high = _search(lv.price, lv.lo[at], lv.hi[at], np.maximum(entry, target), "left")
            count = np.maximum(high - low, 0)
            hit = count > 0
            rows, entry, target, low, high, count = (
                rows[hit], entry[hit], target[hit], low[hit], high[hit], count[hit])
        if len(rows):
            # the nearest to the entry is the lowest level above a long's entry, the highest
            # below a short's; the alphabetically first name among levels at that price
            nearest = lv.nearest[np.where(entry < target, low, high - 1)]
            price = lv.value[nearest]
            facts = [FactColumn("n_levels", count, threshold=cfg.levels_medium_count),
                     FactColumn("proposed_entry", entry, "price"),
                     FactColumn("proposed_target", target, "price"),
                     FactColumn("nearest_level", lv.name[nearest]),
                     FactColumn("nearest_level_price", price, "price"),
                     FactColumn("levels", lv.texts(low, high))]
            distance = self.stop_distance[rows]
            with_r = ~np.isnan(distance) & (distance != 0)
            evidence = np.empty(len(rows), dtype=object)
            for subset in (np.flatnonzero(~with_r), np.flatnonzero(with_r)):
                if not len(subset):
                    continue
                extra = [] if not with_r[subset[0]] else [FactColumn("nearest_level_r", py_round(
                    np.abs(lv.price[nearest[subset]] - entry[subset]) / distance[subset], 2), "R")]
                evidence[subset] = _evidence(
                    [*(_take(f, subset) for f in facts), *extra], len(subset))
            severity = np.where(count >= cfg.levels_medium_count, Severity.MEDIUM.value,
                                Severity.LOW.value)
            blocks += _by_severity("LEVELS_BETWEEN_ENTRY_AND_TARGET", rows, severity,
                                   evidence)
        return blocks

    def _regime(self) -> list[IssueBlock]:
        cfg, ctx = self.cfg, self.ctx
        code, pieces = ctx.distinct_pieces("regime")
        rg = _Regimes.of(pieces)
        kind = rg.kind[code]
        fitted = (kind == _Regimes.SNAPSHOT) & rg.fitted[code]
        blocks = []
        rows = np.flatnonzero(self.ok & ~fitted)
        if len(rows):
            reason = np.full(len(rows), "the regime snapshot has no fitted HMM", dtype=object)
            missing = kind[rows] == _Regimes.MISSING
            reason[missing] = _prefixed("regime missing (", _missing(ctx, "regime", rows[missing]),
                                        ")")
            other = kind[rows] == _Regimes.OTHER
            reason[other] = _prefixed("the regime piece is a ", rg.type_name[code[rows[other]]],
                                      ", not a RegimeSnapshot")
            blocks.append(IssueBlock(
                "REGIME_TRANSITION_RISK_UNCHECKED", rows, Severity.INFO, _evidence(
                    [FactColumn("horizon_bars", self.horizon[rows], "bars"),
                     FactColumn("reason", reason)], len(rows))))
        rows = np.flatnonzero(self.ok & fitted)
        if not len(rows):
            return blocks
        at = code[rows]
        regime_bars = self._regime_bars(rows, rg.tf_code[at], rg.timeframe_labels)
        steps = np.maximum(1, regime_bars).astype(np.float64)
        stay = np.zeros(len(rows))
        for state in range(rg.probs.shape[1]):  # in state order, as the scalar sum adds
            stay = stay + rg.probs[at, state] * rg.stay[at, state] ** steps
        risk = 1.0 - stay
        risk = np.where(risk > 0.0, risk, 0.0)  # max(0.0, x): NaN -> 0.0
        risk = np.where(risk < 1.0, risk, 1.0)
        risk_pct = py_round(100.0 * risk, 2)
        flagged = risk_pct > cfg.transition_risk_low_pct
        rows, at, risk_pct, regime_bars = (rows[flagged], at[flagged], risk_pct[flagged],
                                           regime_bars[flagged])
        if len(rows):
            facts = [FactColumn("transition_risk_pct", risk_pct, "%",
                                cfg.transition_risk_low_pct),
                     FactColumn("transition_risk_low_pct", cfg.transition_risk_low_pct, "%"),
                     FactColumn("regime_horizon_bars", regime_bars, "bars"),
                     FactColumn("regime_timeframe", rg.timeframe[at]),
                     FactColumn("hmm_state", rg.labels(at)),
                     FactColumn("horizon_bars", self.horizon[rows], "bars")]
            severity = np.where(risk_pct >= cfg.transition_risk_medium_pct,
                                Severity.MEDIUM.value, Severity.LOW.value)
            blocks += _by_severity("REGIME_TRANSITION_RISK", rows, severity,
                                   _evidence(facts, len(rows)))
        return blocks

    def _regime_bars(self, rows: np.ndarray, regime_tf: np.ndarray, labels: list[Any]
                     ) -> np.ndarray:
        """``_bars_on(regime timeframe, intent timeframe, horizon)`` per row, computed once
        per distinct triple (exact: the scalar helper itself)."""
        horizon, tf = self.horizon[rows], self.tf_code[rows]
        first, code = distinct((horizon * (len(self.timeframes) + 1) + tf) * (len(labels) + 1)
                             + regime_tf)
        values = np.array([_bars_on(labels[r], self.timeframes[t], int(h)) for h, t, r in zip(
            horizon[first].tolist(), tf[first].tolist(), regime_tf[first].tolist(),
            strict=True)], dtype=np.int64)
        return values[code]

    def _exposure(self) -> list[IssueBlock]:
        ctx = self.ctx
        code, pieces = ctx.distinct_pieces("portfolio")
        hook = np.array([isinstance(p, ExposureHook) for p in pieces] + [False])[code]
        blocks = []
        rows = np.flatnonzero(self.ok & ~hook)
        if len(rows):
            notional = py_round(self.entry[rows] * self.size[rows] * self.multiplier[rows], 2)
            reason = np.empty(len(rows), dtype=object)
            missing = np.array([p is None for p in pieces] + [False])[code[rows]]
            reason[missing] = _prefixed("portfolio missing (",
                                        _missing(ctx, "portfolio", rows[missing]), ")")
            names = np.array([type(p).__name__ for p in pieces] + [""], dtype=object)
            reason[~missing] = _prefixed("the portfolio piece (", names[code[rows[~missing]]],
                                         ") offers no position_in()")
            blocks.append(IssueBlock(
                "EXPOSURE_NOT_CHECKED", rows, Severity.INFO, _evidence_by_unit(
                    self.currency[rows], lambda idx, unit: [
                        FactColumn("notional", notional[idx], unit),
                        FactColumn("reason", reason[idx])])))
        rows = np.flatnonzero(self.ok & hook)
        if len(rows):
            # position_in once per distinct (portfolio, symbol)
            symbol_code, symbols = pd.factorize(self.symbol[rows])
            first, pair = distinct(code[rows] * (len(symbols) + 1) + symbol_code)
            held = np.array([float(pieces[p].position_in(symbol)) for p, symbol in zip(
                code[rows[first]].tolist(), self.symbol[rows[first]].tolist(), strict=True)],
                dtype=np.float64)[pair]
            open_ = held != 0
            rows, held = rows[open_], held[open_]
        if len(rows):
            sign, size = self.sign[rows], self.size[rows]
            units = np.where(self.asset_class[rows] == "equity", "shares", "units")
            blocks.append(IssueBlock(
                "EXISTING_POSITION", rows, Severity.LOW, _evidence_by_unit(
                    units, lambda idx, unit: [
                        FactColumn("position_qty", held[idx], unit),
                        FactColumn("proposed_size", size[idx], unit),
                        FactColumn("combined_qty", held[idx] + sign[idx] * size[idx], unit),
                        FactColumn("same_direction", held[idx] * sign[idx] > 0),
                        FactColumn("symbol", self.symbol[rows[idx]]),
                        FactColumn("side", self.side[rows[idx]])])))
        return blocks


@dataclass(frozen=True, slots=True)
class _Schedules:
    """The distinct schedule pieces of a batch, flattened: piece p's sessions are
    ``open``/``close``[s_lo[p]:s_hi[p]] and its events ``ev_*``[e_lo[p]:e_hi[p]], times in
    UTC nanoseconds. ``regular[p]``: the piece is a ScheduleContext whose datetimes are all
    UTC and whose session closes and event times are in order (what the arrays rely on).
    Each flat array ends with one padding entry, so an index computed for an empty piece
    stays inside it."""

    regular: np.ndarray
    symbol: np.ndarray  # object
    as_of: np.ndarray
    window_end: np.ndarray
    earnings_unknown: np.ndarray  # bool: earnings_dates_known == 0
    has_earnings: np.ndarray  # bool: an earnings event is in the piece
    s_lo: np.ndarray
    s_hi: np.ndarray
    open: np.ndarray
    close: np.ndarray
    e_lo: np.ndarray
    e_hi: np.ndarray
    ev_ts: np.ndarray
    ev_kind: np.ndarray
    ev_own: np.ndarray  # bool: earnings of the piece's symbol
    ev_sessions_before: np.ndarray  # sessions of its piece closing at or before the event
    events: np.ndarray  # object: the UpcomingEvents

    @classmethod
    def of(cls, pieces: Sequence[Any]) -> _Schedules:
        """Flatten ``pieces`` (distinct schedule objects)."""
        count = len(pieces)
        regular = np.zeros(count, dtype=bool)
        symbol = np.full(count, None, dtype=object)
        unknown = np.zeros(count, dtype=bool)
        times: list[Any] = []
        opens: list[Any] = []
        closes: list[Any] = []
        events: list[Any] = []
        n_sessions = np.zeros(count, dtype=np.int64)
        n_events = np.zeros(count, dtype=np.int64)
        stamps_of = _SessionStamps()
        for p, piece in enumerate(pieces):
            parts = _schedule_parts(piece, stamps_of)
            if parts is None:
                times += [_EPOCH, _EPOCH]
                continue
            o, c, e = parts
            regular[p], symbol[p] = True, piece.symbol
            unknown[p] = piece.earnings_dates_known == 0
            times += [piece.as_of, piece.window_end]
            opens += o
            closes += c
            events += e
            n_sessions[p], n_events[p] = len(c), len(e)
        stamps = _ns(times)
        s_hi = np.cumsum(n_sessions)
        e_hi = np.cumsum(n_events)
        s_piece = np.repeat(np.arange(count), n_sessions)
        e_piece = np.repeat(np.arange(count), n_events)
        close = np.asarray(closes, dtype=np.int64)
        ev_ts = _ns([e.ts for e in events])
        for values, piece_of in ((close, s_piece), (ev_ts, e_piece)):
            back = (values[1:] < values[:-1]) & (piece_of[1:] == piece_of[:-1])
            regular[piece_of[1:][back]] = False
        kinds = np.array([_KIND_CODE.get(e.kind, len(EVENT_KINDS)) for e in events],
                         dtype=np.int64)
        earnings = kinds == _KIND_CODE["earnings"]
        ev_symbol = objects([e.symbol for e in events])
        s_lo = s_hi - n_sessions
        pad = np.zeros(1, dtype=np.int64)
        return cls(
            regular=regular, symbol=symbol, as_of=stamps[0::2], window_end=stamps[1::2],
            earnings_unknown=unknown,
            has_earnings=np.bincount(e_piece[earnings], minlength=count) > 0,
            s_lo=s_lo, s_hi=s_hi, open=np.concatenate([np.asarray(opens, dtype=np.int64),
                                                         pad]),
            close=np.concatenate([close, pad]), e_lo=e_hi - n_events, e_hi=e_hi,
            ev_ts=np.concatenate([ev_ts, pad]),
            ev_kind=np.concatenate([kinds, [-1]]),
            ev_own=np.concatenate([earnings & (ev_symbol == symbol[e_piece]), [False]]),
            ev_sessions_before=np.concatenate([
                _search(close, s_lo[e_piece], s_hi[e_piece], ev_ts, "right") - s_lo[e_piece],
                pad]),
            events=objects([*events, None]))

    def weeks(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return the flat index of each week's last close (a week: consecutive closes in
        one ISO week, UTC), with each piece's first week and week count."""
        count = len(self.s_lo)
        n_sessions = self.s_hi - self.s_lo
        piece = np.repeat(np.arange(count), n_sessions)
        close = self.close[:-1]
        iso = pd.DatetimeIndex(pd.to_datetime(close, utc=True)).isocalendar()
        key = (iso["year"].to_numpy(np.int64) * 100 + iso["week"].to_numpy(np.int64))
        last = np.ones(len(close), dtype=bool)
        last[:-1] = (key[1:] != key[:-1]) | (piece[1:] != piece[:-1])
        weeks = np.flatnonzero(last)
        w_count = np.bincount(piece[weeks], minlength=count)
        return np.append(weeks, 0), np.cumsum(w_count) - w_count, w_count

    def trading_time(self) -> tuple[np.ndarray, np.ndarray]:
        """Return per flat session its start (the open, or as_of when later) and the trading
        time from as_of to its close, running within the piece (ns)."""
        count = len(self.s_lo)
        n_sessions = self.s_hi - self.s_lo
        piece = np.repeat(np.arange(count), n_sessions)
        start = np.maximum(self.open[:-1], self.as_of[piece])
        available = np.maximum(self.close[:-1] - start, 0)
        # int64 sums wrap on overflow, but a difference of two stays exact
        running = np.cumsum(available)
        before = np.where(self.s_lo > 0, running[np.maximum(self.s_lo - 1, 0)], 0)
        return np.append(start, 0), np.append(running - before[piece], 0)


class _SessionStamps:
    """UTC nanoseconds of session (open, close) pairs, once per pair object: schedule
    pieces cut from one calendar share their pairs, so most lookups are a dict hit."""

    def __init__(self) -> None:
        self._pairs: dict[int, tuple[int, int] | None] = {}

    def of(self, pair: tuple[datetime, datetime]) -> tuple[int, int] | None:
        """Return the pair's (open, close) in UTC ns, or None when either is not UTC."""
        key = id(pair)
        if key not in self._pairs:
            opened, closed = pair
            if not (_is_utc(opened.tzinfo) and _is_utc(closed.tzinfo)):
                self._pairs[key] = None
            else:
                self._pairs[key] = (pd.Timestamp(opened).as_unit("ns").value,
                                    pd.Timestamp(closed).as_unit("ns").value)
        return self._pairs[key]


def _schedule_parts(piece: Any, stamps: _SessionStamps
                    ) -> tuple[list[int], list[int], list[Any]] | None:
    """Return a schedule piece's (opens, closes in UTC ns, events) when the arrays can stand
    for it: a ScheduleContext whose datetimes are UTC (events: tz-aware); else None."""
    if not isinstance(piece, ScheduleContext):
        return None
    try:
        if not (_is_utc(piece.as_of.tzinfo) and _is_utc(piece.window_end.tzinfo)):
            return None
        pairs = [stamps.of(pair) for pair in piece.sessions]
        if any(pair is None for pair in pairs):
            return None
        events = list(piece.events)
        if any(e.ts.utcoffset() is None for e in events):
            return None
    except (AttributeError, TypeError, ValueError):
        return None
    return [o for o, _ in pairs], [c for _, c in pairs], events


@dataclass(frozen=True, slots=True)
class _Levels:
    """The distinct levels pieces, flattened: piece p's named levels (NaN prices dropped,
    as ``between`` never returns them) sorted by price, stably as the scalar form sorts them,
    at [lo[p]:hi[p]]; ``nearest[j]``: the level with the alphabetically first name among
    those of j's piece at j's price."""

    MISSING: ClassVar[int] = 0
    OTHER: ClassVar[int] = 1
    SNAPSHOT: ClassVar[int] = 2

    kind: np.ndarray
    type_name: np.ndarray  # object
    lo: np.ndarray
    hi: np.ndarray
    price: np.ndarray
    value: np.ndarray  # the levels as stored: float, or object when not all floats
    name: np.ndarray  # object
    text: list[str]  # "name price" as in the levels fact
    nearest: np.ndarray

    @classmethod
    def of(cls, pieces: Sequence[Any]) -> _Levels:
        """Flatten ``pieces`` (distinct levels objects)."""
        count = len(pieces)
        kind = np.full(count + 1, cls.MISSING, dtype=np.int64)
        type_name = np.full(count + 1, "", dtype=object)
        lengths = np.zeros(count + 1, dtype=np.int64)
        values: list[Any] = []
        names: list[str] = []
        nearest: list[int] = []
        for p, piece in enumerate(pieces):
            if piece is None:
                continue
            if not isinstance(piece, KeyLevelsSnapshot):
                kind[p], type_name[p] = cls.OTHER, type(piece).__name__
                continue
            kind[p] = cls.SNAPSHOT
            items = sorted(((k, v) for k, v in piece.named_levels().items() if v == v),
                           key=lambda kv: kv[1])
            base, j = len(values), 0
            while j < len(items):  # blocks of levels at one price
                k = j + 1
                while k < len(items) and items[k][1] == items[j][1]:
                    k += 1
                best = min(range(j, k), key=lambda i: items[i][0])
                nearest += [base + best] * (k - j)
                j = k
            values += [v for _, v in items]
            names += [k for k, _ in items]
            lengths[p] = len(items)
        hi = np.cumsum(lengths)
        # written as the scalar form writes them: floats as floats (fast), others as stored
        value = (np.array([*values, 0.0], dtype=np.float64)
                 if all(isinstance(v, float) for v in values) else objects([*values, 0.0]))
        return cls(kind=kind, type_name=type_name, lo=hi - lengths, hi=hi,
                   price=np.array([*map(float, values), 0.0], dtype=np.float64),
                   value=value, name=objects([*names, ""]),
                   text=[f"{k} {v:g}" for k, v in zip(names, values, strict=True)],
                   nearest=np.array([*nearest, 0], dtype=np.int64))

    def texts(self, low: np.ndarray, high: np.ndarray) -> np.ndarray:
        """Return the levels fact of the flat ranges [low, high): joined once per range."""
        first, pair = distinct(low * (len(self.text) + 1) + high)
        joined = objects([", ".join(self.text[a:b]) for a, b in zip(
            low[first].tolist(), high[first].tolist(), strict=True)])
        return joined[pair]


@dataclass(frozen=True, slots=True)
class _Regimes:
    """The distinct regime pieces: kind, and for fitted snapshots the filtered probabilities
    and the transition matrix's diagonal (padded with zeros, which add nothing)."""

    MISSING: ClassVar[int] = 0
    OTHER: ClassVar[int] = 1
    SNAPSHOT: ClassVar[int] = 2

    pieces: list[Any]
    kind: np.ndarray
    type_name: np.ndarray  # object
    fitted: np.ndarray
    probs: np.ndarray  # (pieces, states)
    stay: np.ndarray  # (pieces, states)
    timeframe: np.ndarray  # object: the snapshot's timeframe as stored
    tf_code: np.ndarray  # code of str(timeframe) in timeframe_labels
    timeframe_labels: list[Any]

    @classmethod
    def of(cls, pieces: Sequence[Any]) -> _Regimes:
        """Read ``pieces`` (distinct regime objects)."""
        count = len(pieces)
        kind = np.full(count + 1, cls.MISSING, dtype=np.int64)
        type_name = np.full(count + 1, "", dtype=object)
        fitted = np.zeros(count + 1, dtype=bool)
        timeframe = np.full(count + 1, None, dtype=object)
        rows: list[tuple[int, list[float], list[float]]] = []
        for p, piece in enumerate(pieces):
            if piece is None:
                continue
            if not isinstance(piece, RegimeSnapshot):
                kind[p], type_name[p] = cls.OTHER, type(piece).__name__
                continue
            kind[p], timeframe[p] = cls.SNAPSHOT, piece.timeframe
            if piece.hmm_probs and piece.transition_matrix:
                fitted[p] = True
                probs = list(piece.hmm_probs)
                rows.append((p, probs, [piece.transition_matrix[i][i]
                                        for i in range(len(probs))]))
        states = max((len(r[1]) for r in rows), default=0)
        probs = np.zeros((count + 1, states))
        stay = np.zeros((count + 1, states))
        for p, prob, diag in rows:
            probs[p, :len(prob)] = prob
            stay[p, :len(diag)] = diag
        tf_code, labels = pd.factorize(np.array([str(t) for t in timeframe], dtype=object))
        return cls(pieces=list(pieces), kind=kind, type_name=type_name, fitted=fitted,
                   probs=probs, stay=stay, timeframe=timeframe, tf_code=tf_code,
                   timeframe_labels=list(labels))

    def labels(self, at: np.ndarray) -> np.ndarray:
        """Return ``hmm_state_label or "current"`` of the pieces ``at`` (once per piece)."""
        first, piece = distinct(at)
        return objects([self.pieces[p].hmm_state_label or "current"
                         for p in at[first].tolist()])[piece]


# ---------------------------------------------------------------------------- array helpers
def _search(values: np.ndarray, lo: np.ndarray, hi: np.ndarray, query: np.ndarray,
            side: str) -> np.ndarray:
    """Return, per query, where it would be inserted into the sorted ``values[lo:hi]``
    (flat index; ``side`` as np.searchsorted): one binary search of every query at once."""
    lo = np.array(lo, dtype=np.int64)
    hi = np.array(hi, dtype=np.int64)
    active = lo < hi
    while active.any():
        mid = (lo + hi) >> 1
        value = values[np.where(active, mid, 0)]
        right = active & ((value <= query) if side == "right" else (value < query))
        lo = np.where(right, mid + 1, lo)
        hi = np.where(active & ~right, mid, hi)
        active = lo < hi
    return lo


def _count_in(flags: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Return how many of ``flags[lo:hi]`` are set, per range."""
    running = np.concatenate([[0], np.cumsum(flags, dtype=np.int64)])
    return running[hi] - running[lo]


def _in_window(flags: np.ndarray, lo: np.ndarray, hi: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """Return per range [lo, hi) the number of set ``flags`` and the first set index
    (meaningful where the number is positive)."""
    at = np.flatnonzero(flags)
    if not len(at):
        return np.zeros(len(lo), dtype=np.int64), np.zeros(len(lo), dtype=np.int64)
    first = at[np.minimum(np.searchsorted(at, lo), len(at) - 1)]
    return _count_in(flags, lo, hi), first


def _per_event(events: np.ndarray, index: np.ndarray, get: Callable[[Any], Any]
               ) -> np.ndarray:
    """Return ``get(event)`` of the flat events ``index``, once per distinct event."""
    first, event = distinct(index)
    return objects([get(events[i]) for i in index[first].tolist()])[event]


def _per_event_zone(events: np.ndarray, index: np.ndarray, zone: np.ndarray,
                    get: Callable[[Any, str], str]) -> np.ndarray:
    """Return ``get(event, zone)`` per row, once per distinct (event, zone)."""
    zone_code, zones = pd.factorize(zone)
    first, pair = distinct(index * (len(zones) + 1) + zone_code)
    return objects([get(events[i], z) for i, z in zip(
        index[first].tolist(), zone[first].tolist(), strict=True)])[pair]


def _missing(ctx: BatchContext, piece: str, rows: np.ndarray) -> np.ndarray:
    """Return the reason ``piece`` is missing on ``rows`` ('not provided' without one)."""
    reasons = ctx.missing[piece][rows]
    return np.where(pd.isna(reasons), "not provided", reasons).astype(object)


def _prefixed(before: str, middle: np.ndarray, after: str) -> np.ndarray:
    """Return ``f"{before}{m}{after}"`` per element, formatted once per distinct ``m``."""
    codes, uniques = pd.factorize(np.asarray(middle, dtype=object))
    texts = np.array([f"{before}{m}{after}" for m in uniques] + [""], dtype=object)
    return texts[codes]


def _by_severity(code: str, rows: np.ndarray, severity: np.ndarray, evidence: np.ndarray
                 ) -> list[IssueBlock]:
    """Return the issues of ``code`` as one block per severity (a row is in one of them, so
    the issue order is the same; issues_frame then checks one severity per block, not one
    per row)."""
    return [IssueBlock(code, rows[severity == level], level, evidence[severity == level])
            for level in pd.unique(severity)]


def _take(fact: FactColumn, index: np.ndarray) -> FactColumn:
    """Return ``fact`` on the subset ``index`` of its rows."""
    def pick(x: Any) -> Any:
        return x[index] if isinstance(x, np.ndarray) else x
    return replace(fact, value=pick(fact.value), threshold=pick(fact.threshold))


def _evidence_by_unit(units: np.ndarray,
                      facts: Callable[[np.ndarray, str], list[FactColumn]]) -> np.ndarray:
    """Return evidence JSON per row whose facts carry a per-row unit: ``facts(idx, unit)``
    gives the facts of the rows ``idx`` sharing ``unit``."""
    codes, uniques = pd.factorize(np.asarray(units, dtype=object))
    out = np.empty(len(units), dtype=object)
    for code, unit in enumerate(uniques):
        idx = np.flatnonzero(codes == code)
        out[idx] = _evidence(facts(idx, str(unit)), len(idx))
    return out


def _evidence(facts: Sequence[FactColumn], n: int) -> np.ndarray:
    """Return ``evidence_json(facts, n)``, writing string facts once per distinct value.

    evidence_json encodes an array of strings element by element; a string fact with few
    distinct values (a reason, a symbol, a holiday) is instead made a scalar: the rows are
    grouped by the values of such facts (fewest distinct values first, while the groups stay
    few) and each group is written with evidence_json.
    """
    limit = min(20_000, n // 32)
    candidates = []
    for i, fact in enumerate(facts):
        value = fact.value
        # strings only: factorize takes 1, 1.0 and True for one value, JSON does not
        if (isinstance(value, np.ndarray) and limit > 1 and (value.dtype.kind == "U" or (
                value.dtype.kind == "O" and pd.api.types.infer_dtype(value) == "string"))):
            codes, uniques = pd.factorize(value.astype(object), use_na_sentinel=False)
            if len(uniques) <= limit:
                candidates.append((len(uniques), i, codes, uniques))
    key = np.zeros(n, dtype=np.int64)
    groups = 1
    grouped: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for count, i, codes, uniques in sorted(candidates, key=lambda c: (c[0], c[1])):
        combined, kept = pd.factorize(key * count + codes)
        if len(kept) > limit:
            break
        key, groups = combined.astype(np.int64), len(kept)
        grouped[i] = (codes, uniques)
    if not grouped:
        return evidence_json(facts, n)
    order = np.argsort(key, kind="stable")
    bounds = np.searchsorted(key[order], np.arange(groups + 1))
    out = np.empty(n, dtype=object)
    for g in range(groups):
        idx = order[bounds[g]:bounds[g + 1]]
        part = [replace(f, value=grouped[i][1][grouped[i][0][idx[0]]]) if i in grouped
                else _take(f, idx) for i, f in enumerate(facts)]
        out[idx] = evidence_json(part, len(idx))
    return out


def _ns(values: list[Any]) -> np.ndarray:
    """Return tz-aware datetimes as UTC nanoseconds (int64)."""
    if not values:
        return np.zeros(0, dtype=np.int64)
    return pd.DatetimeIndex(pd.to_datetime(values, utc=True)).as_unit("ns").asi8.copy()


def _iso_utc(ns: np.ndarray) -> np.ndarray:
    """Return ``datetime.isoformat()`` of UTC instants (ns), once per distinct instant:
    seconds, microseconds when there are any, and '+00:00'."""
    first, instant = distinct(ns)
    micro = ns[first] // 1000
    text = np.datetime_as_string(micro.astype("datetime64[us]").astype("datetime64[s]"))
    text = text.astype(object)
    fraction = micro % 1_000_000 != 0
    if fraction.any():
        text[fraction] = np.datetime_as_string(micro[fraction].astype("datetime64[us]"))
    return objects([f"{t}+00:00" for t in text])[instant]


def _is_utc(zone: Any) -> bool:
    return zone is not None and zone.utcoffset(None) == _ZERO
