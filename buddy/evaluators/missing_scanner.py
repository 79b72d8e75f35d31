"""MissingScanner: a checklist of what the trader may have missed.

Each item looks inside the holding horizon (the intent's, else ``default_horizon_bars``),
turned into a point in time by the ``schedule`` piece's sessions ahead:

- scheduled events (imported earnings and macro dates announced by as_of): EVENT_WITHIN_HORIZON,
  medium when the instrument's own earnings fall inside; EARNINGS_DATES_UNKNOWN (not checked)
  when no earnings dates of a stock are known at all, so that check could not be made;
- exchange closures: HOLIDAY_WITHIN_HORIZON (on daily and weekly bars only a closed weekday
  fewer than ``holiday_within_sessions`` sessions ahead: one further out is managed like a
  weekend), EARLY_CLOSE_WITHIN_HORIZON;
- liquidity of the instrument itself, from the market piece: LOW_LIQUIDITY when the median
  value traded per session (close x volume, quote currency) is below ``min_session_value``
  (stocks only: index and FX volumes are not traded units). The last bar's relative volume
  and the order's share of bar volume are entry_quality's and risk_reward's checks;
- strong key levels between entry and target (optional ``levels`` piece): the levels are
  consolidated (``buddy.levels.consolidate``: levels closer than ``level_merge_atr`` ATR merged,
  one pivot family, each with a strength from confluence, touches and recency) and
  LEVELS_BETWEEN_ENTRY_AND_TARGET names those of strength ``min_level_strength`` or more that
  lie strictly between entry and target; LEVELS_NOT_CHECKED (not checked) says why not;
- exposure (optional ``portfolio`` piece, the hook): a portfolio piece that implements
  ``ExposureHook`` is asked for the position already held in the symbol (EXISTING_POSITION);
  otherwise EXPOSURE_NOT_CHECKED (not checked, with the reason).

The risk of a regime change within the horizon is regime_fit's rule alone (one rule, one
implementation); when that module cannot run, the report's "not checked" line says so.

Codes of kind "not_checked" are facts not known, not warnings: the report lists them once in
its "not checked" line and never ranks or scores them. Optional pieces are read only when
present; their absence is an item of that line, not a skip of the module. A stock whose bar
window has missing or unordered sessions is not judged for liquidity (``liquidity_checked``
False).

Units: amounts are in the instrument's quote currency and quantities in shares (stocks) or
units; ``codes`` declares them as CURRENCY and QUANTITY, each row's unit given to ``fire``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import chain
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from buddy.batch.columns import choose, distinct, objects, repeated, utc_ns
from buddy.batch.result import BatchResult, IssueBlock
from buddy.config import ModuleConfig, param
from buddy.context.piece_columns import PieceColumn
from buddy.context.pieces import KeyLevelsSnapshot
from buddy.data.sessions import SessionRuns, count_in, disordered, session_codes, session_totals
from buddy.domain import Severity
from buddy.errors import FieldError, FieldErrors
from buddy.evaluators.base import Code, Evaluator, Evidence, severity_where
from buddy.evaluators.registry import register
from buddy.events.model import EVENT_KINDS, ScheduleContext
from buddy.events.provider import ScheduleColumns
from buddy.levels.columns import LevelColumns, level_pieces
from buddy.levels.consolidate import (
    DEFAULT_MERGE_ATR,
    DEFAULT_PIVOT_METHOD,
    PIVOT_METHODS,
    level_table,
    row_atr,
)
from buddy.levels.nearest import NO_RANK, nearest_level
from buddy.timeframes import Timeframe

if TYPE_CHECKING:
    from buddy.batch.context import BatchContext

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
    holiday_within_sessions: int = param(
        3, lo=0, hi=10_000, unit="sessions",
        doc="on daily and weekly bars a closed weekday is flagged only when fewer than this "
            "many sessions close before it (one weeks ahead is managed like a weekend); on "
            "intraday bars every closed weekday in the horizon is flagged")
    levels_medium_count: int = param(2, lo=1, hi=100, unit="levels",
                                     doc="strong levels between entry and target from which "
                                         "the item is medium severity, else low")
    # stricter than entry_quality's (3): a level far from the entry on the way to a target
    # 2-3 R away is one of many; only the strongest deserve a plan (measured: 3.0 fired on
    # 46% of 1,500 corpus intents, 3.5 on 19%)
    min_level_strength: float = param(3.5, lo=0.0, hi=50.0, unit="strength",
                                      doc="strength a consolidated level needs to count "
                                          "(buddy.levels.consolidate: confluence of sources "
                                          "plus recent swing touches)")
    level_merge_atr: float = param(DEFAULT_MERGE_ATR, lo=0.0, hi=5.0, unit="ATR",
                                   doc="levels closer than this are merged into one")
    level_pivot_method: str = param(DEFAULT_PIVOT_METHOD, choices=PIVOT_METHODS,
                                    doc="pivot family whose levels count ('none': no pivots)")


#: Units declared in ``codes`` that stand for a unit known only per row: the instrument's
#: quote currency, and the quantity unit of an order (shares of a stock, else units).
CURRENCY = "<money>"
QUANTITY = "<size>"
#: The two facts every horizon-bound item carries.
HORIZON = (Evidence("horizon_bars", "bars"), Evidence("horizon_end"))


@register
class MissingScannerEvaluator(Evaluator[MissingScannerConfig]):
    """List events, closures, liquidity, levels, regime and exposure the trade may miss."""

    name = "missing_scanner"
    version = "2.1.0"
    requires = frozenset({"market", "schedule"})
    optional = frozenset({"levels", "portfolio"})
    config_cls = MissingScannerConfig
    codes: ClassVar = {
        "EVENT_WITHIN_HORIZON": Code(
            "Scheduled event inside the holding horizon",
            "{n_events} scheduled event(s) fall inside the holding horizon of {horizon_bars} "
            "(to {horizon_end}), {n_earnings} of them earnings of this instrument; the first "
            "is {next_event} at {next_event_ts}, with {sessions_to_next_event} closing "
            "before it.",
            "Decide before entering whether to hold through {next_event}: size for a gap, "
            "or plan to exit before it.",
            evidence=(Evidence("n_events"), Evidence("n_earnings"), Evidence("n_macro"),
                      Evidence("next_event"), Evidence("next_event_kind"),
                      Evidence("next_event_ts"),
                      Evidence("sessions_to_next_event", "sessions"), *HORIZON),
            action="PLAN_AROUND_EVENT",
            harm="a scheduled event gaps the price through the stop",
            measure="loss_beyond_stop", action_facts=(Evidence("hold_through_event"),)),
        "EARNINGS_DATES_UNKNOWN": Code(
            "Earnings dates not known",
            "No earnings dates of {symbol} announced by the evaluation time are in the events "
            "table ({earnings_dates_known} known), so earnings inside the holding horizon of "
            "{horizon_bars} were not checked.",
            "Import the company's earnings calendar with `buddy events-import`.",
            evidence=(Evidence("earnings_dates_known"), Evidence("symbol"), *HORIZON),
            action="IMPORT_EARNINGS_DATES",
            harm=("not a warning: whether earnings fall inside the horizon is not known, so that "
                  "risk was not checked"),
            measure=None, kind="not_checked"),
        "HOLIDAY_WITHIN_HORIZON": Code(
            "Market closed inside the holding horizon",
            "The market is closed on {first_holiday} ({n_holidays} closed weekday(s) inside "
            "the holding horizon of {horizon_bars}), with {sessions_to_first_holiday} "
            "closing before it; the position cannot be managed on a closed day.",
            "Count the closed day(s) in the time stop and allow for a gap at the reopen.",
            evidence=(Evidence("n_holidays"), Evidence("first_holiday"),
                      Evidence("sessions_to_first_holiday", "sessions"),
                      Evidence("holiday_title"), *HORIZON),
            action="ALLOW_FOR_CLOSED_DAYS",
            harm=("the position cannot be managed while the market is closed and reopens with a "
                  "gap through the stop"),
            measure="loss_beyond_stop"),
        "EARLY_CLOSE_WITHIN_HORIZON": Code(
            "Early close inside the holding horizon",
            "The session of {first_early_close} ends early, at {early_close_time} "
            "({n_early_closes} early close(s) inside the holding horizon of {horizon_bars}).",
            "Plan exits and order times for the shortened session.",
            evidence=(Evidence("n_early_closes"), Evidence("first_early_close"),
                      Evidence("early_close_time"),
                      Evidence("sessions_to_early_close", "sessions"), *HORIZON),
            action="PLAN_FOR_SHORT_SESSION",
            harm=("orders and exits timed for a full session miss the shortened one; bar "
                  "outcomes do not record order times, so no outcome measure can judge it"),
            measure=None),
        "LOW_LIQUIDITY": Code(
            "Thinly traded instrument",
            "{symbol} traded a median {median_session_value} per session over the last "
            "{sessions_used}, below {min_session_value}.",
            "Prefer limit orders, allow for wide spreads and gaps, and keep the size small "
            "against the volume.",
            evidence=(Evidence("median_session_value", CURRENCY, digits=2,
                               threshold="min_session_value"),
                      Evidence("min_session_value", CURRENCY),
                      Evidence("sessions_used", "sessions"), Evidence("symbol")),
            action="USE_LIMIT_ORDERS",
            harm="wide spreads and gaps in a thin market: an exit fills beyond the stop",
            measure="loss_beyond_stop"),
        "LEVELS_BETWEEN_ENTRY_AND_TARGET": Code(
            "Key levels between entry and target",
            "{n_levels} key level(s) lie between the entry {proposed_entry} and the target "
            "{proposed_target}; the nearest is {nearest_level} at {nearest_level_price}.",
            "Plan what to do at {nearest_level_price}: a partial exit, a nearer target, or a "
            "reason the level should not hold the trade up.",
            evidence=(Evidence("n_levels", threshold="levels_medium_count"),
                      Evidence("proposed_entry", "price"), Evidence("proposed_target", "price"),
                      Evidence("nearest_level"), Evidence("nearest_level_price", "price"),
                      Evidence("levels"), Evidence("nearest_level_r", "R", digits=2),
                      Evidence("nearest_level_strength", "strength", digits=2,
                               threshold="min_level_strength")),
            action="PLAN_AT_LEVEL",
            harm="the move toward the target stalls at a strong level on the way",
            measure="target_reached", action_facts=(Evidence("plan_at_price", "price"),)),
        "LEVELS_NOT_CHECKED": Code(
            "Key levels not checked",
            "Levels between the entry {proposed_entry} and the target were not checked: "
            "{reason}.",
            "Mark the key levels between entry and target on the chart yourself.",
            evidence=(Evidence("proposed_entry", "price"), Evidence("reason")),
            action="MARK_LEVELS",
            harm=("not a warning: the key levels between entry and target could not be read, so "
                  "they were not checked"),
            measure=None, kind="not_checked"),
        "EXISTING_POSITION": Code(
            "Position already open in this symbol",
            "You already hold {position_qty} of {symbol}; this {side} trade of "
            "{proposed_size} would bring the position to {combined_qty}.",
            "Count the open position in this trade's risk, or size this one down.",
            evidence=(Evidence("position_qty", QUANTITY), Evidence("proposed_size", QUANTITY),
                      Evidence("combined_qty", QUANTITY), Evidence("same_direction"),
                      Evidence("symbol"), Evidence("side")),
            action="COUNT_OPEN_POSITION",
            harm=("the open position and this trade together risk more of the account than "
                  "this trade's plan shows"),
            measure="equity_loss"),
        "EXPOSURE_NOT_CHECKED": Code(
            "Portfolio exposure not checked",
            "Exposure of the order's {notional} against open positions was not checked: "
            "{reason}.",
            "Check open positions in this symbol and correlated ones before entering.",
            evidence=(Evidence("notional", CURRENCY, digits=2), Evidence("reason")),
            action="CHECK_OPEN_POSITIONS",
            harm=("not a warning: the portfolio's open positions are not known, so exposure "
                  "was not checked"),
            measure=None, kind="not_checked"),
    }
    explain = (*HORIZON, Evidence("horizon_source"), Evidence("horizon_beyond_known_sessions"),
               Evidence("n_events_in_horizon"), Evidence("levels_checked"),
               Evidence("exposure_checked"),
               Evidence("liquidity_checked"))

    def evaluate_batch(self, ctx: BatchContext) -> BatchResult:
        """Scan every row of ``ctx``: one rule per item, over columns.

        The schedule pieces are flattened once per distinct session set and event list (as
        far ahead as the horizons reach), so the horizon end and the events inside it are
        binary searches of every row at once; the liquidity medians come from the session
        totals of the bar windows; each optional piece is read once per distinct object.
        """
        rows = _Rows.of(ctx, self.config.default_horizon_bars)
        schedule = _Schedule.of(ctx, rows)
        liquidity, liquidity_checked = self._liquidity(ctx, rows)
        levels, levels_checked = self._levels(ctx, rows)
        exposure, exposure_checked = self._exposure(ctx, rows)
        blocks = [*self._events(rows, schedule), *self._closures(rows, schedule), *liquidity,
                  *levels, *exposure]
        return self.result(ctx.n, blocks, explain={
            "horizon_bars": rows.horizon, "horizon_end": schedule.end_text,
            "horizon_source": choose(rows.from_intent, "intent", "default"),
            "horizon_beyond_known_sessions": schedule.beyond,
            "n_events_in_horizon": schedule.count(schedule.known_kind),
            "levels_checked": levels_checked,
            "exposure_checked": exposure_checked, "liquidity_checked": liquidity_checked})

    # ------------------------------------------------------------------- events, closures
    def _events(self, rows: _Rows, schedule: _Schedule) -> list[IssueBlock]:
        blocks = []
        n_news, first = schedule.first(schedule.news)
        at = np.flatnonzero(n_news > 0)
        if len(at):
            event = first[at]
            n_own = schedule.own_earnings(at, rows.symbol[at])
            blocks.append(self.fire(
                "EVENT_WITHIN_HORIZON", at,
                severity_where(n_own > 0, Severity.MEDIUM, Severity.LOW),
                n_events=n_news[at], n_earnings=n_own,
                n_macro=schedule.count(schedule.kind == _KIND_CODE["macro"])[at],
                next_event=schedule.title[event], next_event_kind=schedule.kind_name[event],
                next_event_ts=_iso_utc(schedule.ts[event]),
                sessions_to_next_event=schedule.sessions_before(at, schedule.ts[event]),
                horizon_bars=rows.horizon[at], horizon_end=schedule.end_text[at],
                hold_through_event=schedule.title[event]))
        at = np.flatnonzero(rows.asset_class.isin({"equity"}) & (schedule.earnings_known == 0))
        if len(at):
            blocks.append(self.fire(
                "EARNINGS_DATES_UNKNOWN", at, Severity.INFO, earnings_dates_known=0,
                symbol=rows.symbol[at], horizon_bars=rows.horizon[at],
                horizon_end=schedule.end_text[at]))
        return blocks

    def _closures(self, rows: _Rows, schedule: _Schedule) -> list[IssueBlock]:
        blocks = []
        n_holidays, first = schedule.first(schedule.kind == _KIND_CODE["holiday"])
        at = np.flatnonzero(n_holidays > 0)
        if len(at):
            # a closure weeks ahead of a daily trade is one more weekend; one close ahead, or
            # any inside an intraday trade's horizon, changes how the position is managed
            before = schedule.sessions_before(at, schedule.ts[first[at]])
            near = rows.intraday[at] | (before < self.config.holiday_within_sessions)
            at, before = at[near], before[near]
        if len(at):
            event = first[at]
            blocks.append(self.fire(
                "HOLIDAY_WITHIN_HORIZON", at, Severity.LOW, n_holidays=n_holidays[at],
                first_holiday=_local(schedule.ts[event], rows.timezone[at], "%Y-%m-%d"),
                sessions_to_first_holiday=before,
                holiday_title=schedule.title[event], horizon_bars=rows.horizon[at],
                horizon_end=schedule.end_text[at]))
        n_early, first = schedule.first(schedule.kind == _KIND_CODE["early_close"])
        at = np.flatnonzero(n_early > 0)
        if len(at):
            event, zone = first[at], rows.timezone[at]
            blocks.append(self.fire(
                "EARLY_CLOSE_WITHIN_HORIZON", at,
                severity_where(rows.intraday[at], Severity.LOW, Severity.INFO),
                n_early_closes=n_early[at],
                first_early_close=_local(schedule.ts[event], zone, "%Y-%m-%d"),
                early_close_time=_local(schedule.ts[event], zone, "%H:%M {zone}"),
                sessions_to_early_close=schedule.sessions_before(at, schedule.ts[event]),
                horizon_bars=rows.horizon[at], horizon_end=schedule.end_text[at]))
        return blocks

    # ------------------------------------------------------------------------- liquidity
    def _liquidity(self, ctx: BatchContext, rows: _Rows) -> tuple[list[IssueBlock], np.ndarray]:
        """LOW_LIQUIDITY: the median over the last ``liquidity_sessions`` sessions of each
        stock window of the value traded per session (close x volume, quote currency; a
        weekly bar's over its five sessions). A window whose sessions or times are missing or
        out of order is not checked."""
        cfg, bars = self.config, ctx.bars
        checked = rows.asset_class.isin(VOLUME_IN_ORDER_UNITS) & (bars.stop > bars.start)
        at = np.flatnonzero(checked)
        if not len(at):
            return [], checked
        ts, ts_close = utc_ns(bars.data["ts"]), utc_ns(bars.data["ts_close"])
        session = session_codes(bars.data["session"])
        start, stop = bars.start[at], bars.stop[at]
        bad = disordered(ts, ts_close, session, start, stop)
        checked[at[bad]] = False
        at, start, stop = at[~bad], start[~bad], stop[~bad]
        runs = SessionRuns.of(ts, session)
        value = bars.column("close") * bars.column("volume")
        span = cfg.liquidity_sessions
        median = np.empty(len(at))
        used = np.empty(len(at), dtype=np.int64)
        step = max(1, _CELLS_PER_CHUNK // span)
        for part in (slice(i, i + step) for i in range(0, len(at), step)):
            totals, valid = session_totals(value, runs, start[part], stop[part], span)
            totals = np.where(rows.weekly[at[part], None], totals / SESSIONS_PER_WEEK, totals)
            median[part], used[part] = _median(totals, valid), valid.sum(axis=1)
        thin = median < cfg.min_session_value
        at, median, used = at[thin], median[thin], used[thin]
        if not len(at):
            return [], checked
        return [self.fire(
            "LOW_LIQUIDITY", at,
            severity_where(median < cfg.min_session_value / 10, Severity.MEDIUM, Severity.LOW),
            units={CURRENCY: rows.currency[at]}, median_session_value=median,
            min_session_value=cfg.min_session_value, sessions_used=used,
            symbol=rows.symbol[at])], checked

    # ------------------------------------------------------------------ optional pieces
    def _levels(self, ctx: BatchContext, rows: _Rows) -> tuple[list[IssueBlock], np.ndarray]:
        """LEVELS_BETWEEN_ENTRY_AND_TARGET: the strong consolidated levels strictly between
        entry and target, the nearest to the entry first; LEVELS_NOT_CHECKED says why not."""
        cfg = self.config
        code, pieces = level_pieces(ctx)
        if isinstance(pieces, LevelColumns):  # every piece of the columns a KeyLevelsSnapshot
            snapshot = code >= 0
        else:
            snapshot = np.array([isinstance(p, KeyLevelsSnapshot) for p in pieces],
                                dtype=bool)[code]
        checked = snapshot & ~np.isnan(rows.target)
        blocks = []
        at = np.flatnonzero(~checked)
        if len(at):
            no_target = "the intent has no target"
            if isinstance(pieces, LevelColumns):  # missing (-1) or no target
                reason = repeated(no_target, len(at))
                gone = code[at] < 0
                reason[gone] = _reasons(ctx, "levels", at[gone], np.zeros(int(gone.sum()),
                                        dtype=np.int64), [None], KeyLevelsSnapshot, no_target)
            else:
                reason = _reasons(ctx, "levels", at, code[at], pieces, KeyLevelsSnapshot,
                                  no_target)
            blocks.append(self.fire("LEVELS_NOT_CHECKED", at, Severity.INFO,
                                    proposed_entry=rows.entry[at], reason=reason))
        at = np.flatnonzero(checked)
        if not len(at):
            return blocks, checked
        atr, _ = row_atr(ctx)
        table = level_table(pieces, code[at], atr[at], pivot_method=cfg.level_pivot_method,
                            merge_atr=cfg.level_merge_atr, min_strength=cfg.min_level_strength)
        price, rank = table.price[table.code], table.rank[table.code]
        entry, target = rows.entry[at], rows.target[at]
        lo, hi = np.minimum(entry, target)[:, None], np.maximum(entry, target)[:, None]
        with np.errstate(invalid="ignore"):
            inside = (price > lo) & (price < hi)
        count = inside.sum(axis=1)
        hit = count > 0
        at, entry, target, count = at[hit], entry[hit], target[hit], count[hit]
        price, rank, inside, pair = price[hit], rank[hit], inside[hit], table.code[hit]
        if not len(at):
            return blocks, checked
        # the nearest is the first toward the target (all of them lie that way), the
        # alphabetically first name among levels at one price
        column = nearest_level(np.where(inside, price, np.nan),
                               np.where(inside, rank, NO_RANK), entry,
                               np.sign(target - entry), side="ahead")
        row = np.arange(len(at))
        nearest = price[row, column]
        distance = rows.stop_distance[at]
        with np.errstate(divide="ignore", invalid="ignore"):
            in_r = np.where(distance > 0, np.abs(nearest - entry) / distance, np.nan)
        blocks.append(self.fire(
            "LEVELS_BETWEEN_ENTRY_AND_TARGET", at,
            severity_where(count >= cfg.levels_medium_count, Severity.MEDIUM, Severity.LOW),
            n_levels=count, proposed_entry=entry, proposed_target=target,
            nearest_level=table.name_of(rank[row, column]), nearest_level_price=nearest,
            levels=_level_texts(table.names, price, rank, inside), nearest_level_r=in_r,
            nearest_level_strength=table.strength[pair, column], plan_at_price=nearest))
        return blocks, checked

    def _exposure(self, ctx: BatchContext, rows: _Rows) -> tuple[list[IssueBlock], np.ndarray]:
        """EXISTING_POSITION: a portfolio piece with the exposure hook holds the symbol;
        EXPOSURE_NOT_CHECKED says why it could not be asked."""
        code, pieces = ctx.distinct_pieces("portfolio")
        hook = np.array([isinstance(p, ExposureHook) for p in pieces], dtype=bool)
        checked = hook[code]
        blocks = []
        at = np.flatnonzero(~checked)
        if len(at):
            missing = np.array([p is None for p in pieces], dtype=bool)[code[at]]
            reason: str | np.ndarray
            if missing.all():  # the usual case: one reason, written once
                reason = _why_missing(ctx, "portfolio", at)
            else:
                reason = np.empty(len(at), dtype=object)
                reason[missing] = _why_missing(ctx, "portfolio", at[missing])
                names = objects([type(p).__name__ for p in pieces])[code[at[~missing]]]
                reason[~missing] = _wrap("the portfolio piece (", names,
                                         ") offers no position_in()")
            blocks.append(self.fire(
                "EXPOSURE_NOT_CHECKED", at, Severity.INFO, units={CURRENCY: rows.currency[at]},
                notional=rows.entry[at] * rows.size[at] * rows.multiplier[at], reason=reason))
        at = np.flatnonzero(checked)
        if len(at):
            # asked once per distinct (portfolio, symbol)
            symbol_code, symbols = pd.factorize(rows.symbol[at])
            _, first, pair = np.unique(code[at] * len(symbols) + symbol_code,
                                       return_index=True, return_inverse=True)
            held = np.array([float(pieces[code[at[i]]].position_in(rows.symbol[at[i]]))
                             for i in first.tolist()], dtype=np.float64)[pair.reshape(-1)]
            at, held = at[held != 0], held[held != 0]
        if len(at):
            sign, size = rows.sign[at], rows.size[at]
            blocks.append(self.fire(
                "EXISTING_POSITION", at, Severity.LOW,
                units={QUANTITY: np.where(rows.asset_class[at] == "equity", "shares", "units")},
                position_qty=held, proposed_size=size, combined_qty=held + sign * size,
                same_direction=held * sign > 0, symbol=rows.symbol[at], side=rows.side[at]))
        return blocks, checked


#: Event kind -> code (kinds outside EVENT_KINDS get len(EVENT_KINDS)).
_KIND_CODE: dict[str, int] = {kind: code for code, kind in enumerate(EVENT_KINDS)}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DAY_NS = 86_400_000_000_000
#: Session length assumed for a first guess of how far ahead an intraday horizon reaches.
_GUESS_SESSION_NS = 6 * 3_600_000_000_000
#: (row, session) cells of the liquidity medians built at once, to bound memory.
_CELLS_PER_CHUNK = 2_000_000


# ---------------------------------------------------------------------------- rows
@dataclass(frozen=True, slots=True)
class _Rows:
    """The intent and instrument columns the checks read, one value per row."""

    symbol: _Labels
    side: _Labels
    entry: np.ndarray
    target: np.ndarray  # NaN: no target
    size: np.ndarray
    sign: np.ndarray
    stop_distance: np.ndarray  # NaN: no stop
    horizon: np.ndarray  # int64 bars: the intent's, else the default
    from_intent: np.ndarray  # bool
    nominal: np.ndarray  # int64 ns: the intent timeframe's bar
    daily: np.ndarray
    weekly: np.ndarray
    intraday: np.ndarray
    asset_class: _Labels
    timezone: _Labels
    currency: _Labels
    multiplier: np.ndarray

    @classmethod
    def of(cls, ctx: BatchContext, default_horizon: int) -> _Rows:
        """Read the rows of ``ctx``; ``default_horizon``: bars when the intent gives none."""
        intents, inst = ctx.intents, ctx.instrument
        given = intents["holding_horizon"].to_numpy(np.float64)
        from_intent = ~np.isnan(given) & (given != 0)
        tf_code, labels = pd.factorize(intents["timeframe"])
        timeframes = [Timeframe.parse(label) for label in labels.tolist()]
        nominal = np.array([t.nominal.value for t in timeframes], dtype=np.int64)[tf_code]
        return cls(
            symbol=_Labels.of(intents["symbol"]), side=_Labels.of(intents["side"]),
            entry=intents["proposed_entry"].to_numpy(np.float64),
            target=intents["proposed_target"].to_numpy(np.float64),
            size=intents["proposed_size"].to_numpy(np.float64),
            sign=intents["sign"].to_numpy(np.float64),
            stop_distance=intents["stop_distance"].to_numpy(np.float64),
            horizon=np.where(from_intent, given, default_horizon).astype(np.int64),
            from_intent=from_intent, nominal=nominal,
            daily=np.array([t is Timeframe.D1 for t in timeframes], dtype=bool)[tf_code],
            weekly=np.array([t is Timeframe.W1 for t in timeframes], dtype=bool)[tf_code],
            intraday=np.array([t.is_intraday for t in timeframes], dtype=bool)[tf_code],
            asset_class=_Labels.of(inst["asset_class"]), timezone=_Labels.of(inst["timezone"]),
            currency=_Labels.of(inst["currency"]),
            multiplier=inst["contract_multiplier"].to_numpy(np.float64))


@dataclass(frozen=True, slots=True)
class _Labels:
    """A text column as each row's number among its distinct values: text objects are made
    only for the rows that are asked for (the column's own strings need a pass per row)."""

    code: np.ndarray  # int64
    values: np.ndarray  # object

    @classmethod
    def of(cls, column: pd.Series) -> _Labels:
        """Return the labels of ``column``'s rows."""
        code, uniques = pd.factorize(column)
        if (code < 0).any():  # a missing text stays as the column's objects give it
            return cls(np.arange(len(column)), column.to_numpy(dtype=object))
        return cls(np.asarray(code, dtype=np.int64), np.asarray(uniques, dtype=object))

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        return self.values[self.code[rows]]

    def isin(self, wanted: Collection[str]) -> np.ndarray:
        """Return per row whether its text is one of ``wanted``."""
        return np.array([v in wanted for v in self.values.tolist()], dtype=bool)[self.code]


# ---------------------------------------------------------------------------- schedule
@dataclass(frozen=True, slots=True)
class _Schedule:
    """Each row's schedule piece, flattened, and its horizon.

    Sessions: row i's are ``close[s_lo[i]:s_top[i]]`` (UTC ns), the first sessions of its
    piece's session set, as far as its horizon reaches (one session set is converted once,
    whichever pieces and rows share it). Events: each piece's events by time, flat in
    ``ts``/``kind``/``title``/``symbol``; row i's from as_of to its horizon end are
    ``[w_lo[i]:w_hi[i]]``. ``end``: the horizon end (ns), ``beyond``: the known sessions ran
    out first (``ScheduleContext.horizon_end``).
    """

    close: np.ndarray
    s_lo: np.ndarray
    s_top: np.ndarray
    ts: np.ndarray
    kind: np.ndarray  # int64 codes of EVENT_KINDS
    kind_name: np.ndarray  # object
    title: np.ndarray  # object
    symbol: np.ndarray  # object: the event's symbol, None when market-wide
    w_lo: np.ndarray
    w_hi: np.ndarray
    end: np.ndarray
    end_text: np.ndarray  # object: ISO 8601 UTC
    beyond: np.ndarray
    earnings_known: np.ndarray  # int64

    @classmethod
    def of(cls, ctx: BatchContext, rows: _Rows) -> _Schedule:
        """Flatten the schedule pieces of ``ctx`` and find each row's horizon end: from the
        provider's columns when the pieces are kept as columns, else from the objects."""
        source = ctx.piece("schedule")
        if isinstance(source, PieceColumn) and isinstance(source.columns, ScheduleColumns):
            code, columns = source.code, source.columns
            as_of, window_end = _to_micros(columns.t), _to_micros(columns.end)
            set_code, length, flat = columns.session_sets()
            sessions = _Sessions(length, flat)
            events = None  # flattened once the horizons are known: no further than them
            earnings_known = columns.n_earnings
        else:
            code, pieces = ctx.distinct_pieces("schedule")
            for piece in pieces:
                if not isinstance(piece, ScheduleContext):
                    raise FieldErrors([FieldError("schedule", "must be a ScheduleContext",
                                                  type(piece).__name__)])
            as_of = _ns_array([p.as_of for p in pieces], "schedule.as_of")
            window_end = _ns_array([p.window_end for p in pieces], "schedule.window_end")
            set_code, set_first = _distinct_ids([p.sessions for p in pieces])
            sessions = _Sessions.of_sets([pieces[i].sessions for i in set_first.tolist()])
            events = _Events.of(pieces)
            earnings_known = np.array([p.earnings_dates_known for p in pieces],
                                      dtype=np.int64)
        row_set = set_code[code]
        end, beyond, s_lo, s_top = sessions.horizon_end(
            row_set, as_of[code], window_end[code], np.maximum(1, rows.horizon),
            rows.nominal, rows.daily, rows.weekly)
        if events is None:
            until = np.full(len(as_of), np.iinfo(np.int64).min, dtype=np.int64)
            np.maximum.at(until, code, end)
            events = _Events.of_columns(columns.flat_events(until))
        w_lo = events.search(np.arange(len(as_of)), as_of, "left")[code]
        w_hi = np.maximum(events.search(code, end, "right"), w_lo)
        return cls(
            close=sessions.close, s_lo=s_lo, s_top=s_top, ts=events.ts, kind=events.kind,
            kind_name=events.kind_name, title=events.title, symbol=events.symbol,
            w_lo=w_lo, w_hi=w_hi, end=end, end_text=_iso_utc(end), beyond=beyond,
            earnings_known=earnings_known[code])

    @property
    def news(self) -> np.ndarray:
        """Events EVENT_WITHIN_HORIZON counts."""
        news = np.zeros(len(self.kind), dtype=bool)
        for kind in NEWS_KINDS:
            news |= self.kind == _KIND_CODE[kind]
        return news

    @property
    def known_kind(self) -> np.ndarray:
        """Events of a kind in EVENT_KINDS."""
        return self.kind < len(EVENT_KINDS)

    def count(self, flags: np.ndarray) -> np.ndarray:
        """Return per row the flagged events from as_of to the horizon end."""
        return count_in(flags, self.w_lo, self.w_hi)

    def first(self, flags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return per row the flagged events in its window and the first of them (flat
        index; meaningful where there is one)."""
        at = np.flatnonzero(flags)
        if not len(at):
            return np.zeros(len(self.w_lo), dtype=np.int64), np.zeros(len(self.w_lo),
                                                                      dtype=np.int64)
        return self.count(flags), at[np.minimum(np.searchsorted(at, self.w_lo), len(at) - 1)]

    def own_earnings(self, rows: np.ndarray, symbol: np.ndarray) -> np.ndarray:
        """Return per row of ``rows`` the earnings of ``symbol`` (the intent's) in its
        window."""
        earnings = np.flatnonzero(self.kind == _KIND_CODE["earnings"])
        if not len(earnings):
            return np.zeros(len(rows), dtype=np.int64)
        codes, _ = pd.factorize(np.concatenate([self.symbol[earnings], symbol]))
        span = len(self.ts) + 1
        keys = np.sort(codes[:len(earnings)] * span + earnings)
        base = codes[len(earnings):] * span
        return (np.searchsorted(keys, base + self.w_hi[rows])
                - np.searchsorted(keys, base + self.w_lo[rows]))

    def sessions_before(self, rows: np.ndarray, ts: np.ndarray) -> np.ndarray:
        """Return per row of ``rows`` the sessions of its piece closing at or before ``ts``
        (a time up to its horizon end)."""
        lo = self.s_lo[rows]
        return _search(self.close, lo, self.s_top[rows], ts, "right") - lo


class _Sessions:
    """The distinct session sets of a batch, each converted to UTC ns once and only as far
    ahead as a row's horizon reaches (``horizon_end`` extends a set when one falls short).

    ``length``: sessions per set; ``flat(upto)``: the (open, close) UTC ns of the first
    ``upto[s]`` sessions of each set s, set after set."""

    def __init__(self, length: np.ndarray,
                 flat: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]) -> None:
        self.flat = flat
        self.length = np.asarray(length, dtype=np.int64)
        self.done = np.zeros(len(self.length), dtype=np.int64)  # sessions converted per set
        self.open = self.close = np.zeros(1, dtype=np.int64)
        self.lo = np.zeros(len(self.length), dtype=np.int64)

    @classmethod
    def of_sets(cls, sets: list[tuple[tuple[datetime, datetime], ...]]) -> _Sessions:
        """Return the sessions of ``sets`` of (open, close) datetimes (each distinct pair
        converted once, all of them in one pass)."""
        def flat(upto: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            pairs = list(chain.from_iterable(
                s[:k] for s, k in zip(sets, upto.tolist(), strict=True)))
            pair_code, first = _distinct_ids(pairs)
            distinct = [pairs[i] for i in first.tolist()]
            stamps = _ns_array([t for pair in distinct for t in pair[:2]],
                               "schedule.sessions").reshape(-1, 2)[pair_code]
            return stamps[:, 0], stamps[:, 1]

        return cls(np.array([len(s) for s in sets], dtype=np.int64), flat)

    def horizon_end(self, row_set: np.ndarray, as_of: np.ndarray, window_end: np.ndarray,
                    bars: np.ndarray, nominal: np.ndarray, daily: np.ndarray,
                    weekly: np.ndarray) -> tuple[np.ndarray, ...]:
        """Return per row (horizon end ns, beyond the known sessions, first and top flat
        session): ``ScheduleContext.horizon_end(timeframe, bars)``.

        Daily bars count sessions, weekly bars ISO weeks (UTC) of session closes (a week is
        trusted only when a later one is known), intraday bars trading time from as_of.
        """
        need = bars * nominal
        guess = np.where(daily, bars + 1, np.where(weekly, 6 * bars + 7,
                                                   need // _GUESS_SESSION_NS + 2))
        want = np.zeros(len(self.length), dtype=np.int64)
        np.maximum.at(want, row_set, guess)
        self._convert(np.minimum(want, self.length))
        while True:
            lo, top = self.lo[row_set], self.lo[row_set] + self.done[row_set]
            complete = self.done[row_set] == self.length[row_set]
            end, found = self._ends(row_set, lo, top, as_of, bars, need, daily, weekly)
            short = ~found & ~complete
            if not short.any():
                break
            grow = np.zeros(len(self.length), dtype=bool)
            grow[row_set[short]] = True
            self._convert(np.where(grow, np.minimum(2 * self.done + 16, self.length),
                                   self.done))
        last = self.close[np.maximum(top - 1, 0)]
        empty = self.length[row_set] == 0
        end = np.where(found, end, np.where(empty, window_end, last))
        return end, ~found, lo, top

    def _ends(self, row_set: np.ndarray, lo: np.ndarray, top: np.ndarray, as_of: np.ndarray,
              bars: np.ndarray, need: np.ndarray, daily: np.ndarray, weekly: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
        """Return per row the horizon end within the converted sessions and whether it lies
        there (False: they ran out first)."""
        close, last = self.close, len(self.close) - 1
        # daily: the close of session ``bars``
        at = lo + bars - 1
        end = close[np.minimum(at, last)]
        found = at < top
        if weekly.any():
            # the last close of week ``bars``, once the next week's first session is known
            days = np.floor_divide(close, _DAY_NS)
            week = np.floor_divide(days + 3, 7)  # Monday-based weeks since 1969-12-29
            starts = np.ones(len(close), dtype=bool)
            starts[1:] = week[1:] != week[:-1]
            starts[self.lo] = True
            counter = np.cumsum(starts)
            nxt = np.searchsorted(counter, counter[np.minimum(lo, last)] + bars, side="left")
            end = np.where(weekly, close[np.clip(nxt - 1, 0, last)], end)
            found = np.where(weekly, nxt < top, found)
        intraday = ~daily & ~weekly
        if intraday.any():
            # trading time from as_of: the session in progress counts from as_of, later
            # ones from their open (sessions are in order and do not overlap)
            first = _search(close, lo, top, as_of, "right")
            q = np.minimum(first, last)
            start = np.maximum(self.open[q], as_of)
            in_first = np.maximum(close[q] - start, 0)
            full = np.maximum(close - self.open, 0)
            running = np.cumsum(full)
            target = running[q] + need - in_first
            j = np.minimum(np.searchsorted(running, target, side="left"), last)
            later = self.open[j] + target - (running[j] - full[j])
            end = np.where(intraday, np.where(in_first >= need, start + need, later), end)
            found = np.where(intraday, (first < top) & ((in_first >= need) | (j < top)),
                             found)
        return end, found

    def _convert(self, upto: np.ndarray) -> None:
        """Convert the first ``upto[s]`` sessions of each set s (flat arrays rebuilt)."""
        opens, closes = self.flat(upto)
        self.done[:] = upto
        done = self.done
        self.lo = np.cumsum(done) - done
        # one padding entry: an index computed for an empty set stays inside the arrays
        self.open = np.append(opens, 0).astype(np.int64)
        self.close = np.append(closes, 0).astype(np.int64)
        _check_order(self.open[:-1], self.close[:-1], self.lo, done)


def _check_order(opens: np.ndarray, closes: np.ndarray, lo: np.ndarray, count: np.ndarray
                 ) -> None:
    """Refuse sessions that are not (open, close) pairs in time order without overlap."""
    bad = opens > closes
    follows = np.ones(len(opens), dtype=bool)  # the pair's open is at or after the last close
    follows[1:] = opens[1:] >= closes[:-1]
    follows[lo[count > 0]] = True
    bad |= ~follows
    if bad.any():
        j = int(np.flatnonzero(bad)[0])
        raise FieldErrors([FieldError(
            "schedule.sessions", "must be (open, close) pairs in time order, not overlapping",
            (_iso_utc(opens[j:j + 1])[0], _iso_utc(closes[j:j + 1])[0]))])


@dataclass(frozen=True, slots=True)
class _Events:
    """The events of the distinct schedule pieces, flattened: piece p's by time (ties in
    their order) at ``[lo[p]:hi[p]]``; each distinct event object read once."""

    lo: np.ndarray
    hi: np.ndarray
    ts: np.ndarray
    kind: np.ndarray
    kind_name: np.ndarray
    title: np.ndarray
    symbol: np.ndarray

    @classmethod
    def of(cls, pieces: Sequence[ScheduleContext]) -> _Events:
        """Flatten the events of ``pieces``."""
        count = np.array([len(p.events) for p in pieces], dtype=np.int64)
        flat = list(chain.from_iterable(p.events for p in pieces))
        event_code, first = _distinct_ids(flat)
        events = [flat[i] for i in first.tolist()]
        ts = _ns_array([e.ts for e in events], "schedule.events.ts")[event_code]
        piece = np.repeat(np.arange(len(pieces)), count)
        if np.any((ts[1:] < ts[:-1]) & (piece[1:] == piece[:-1])):
            order = np.lexsort((ts, piece))  # stable: ties keep their order
            ts, event_code = ts[order], event_code[order]
        hi = np.cumsum(count)

        def column(get: Any, dtype: Any = object) -> np.ndarray:
            values = [get(e) for e in events]
            return (objects(values) if dtype is object else np.array(values, dtype=dtype)
                    )[event_code]

        return cls(lo=hi - count, hi=hi, ts=ts,
                   kind=column(lambda e: _KIND_CODE.get(e.kind, len(EVENT_KINDS)), np.int64),
                   kind_name=column(lambda e: e.kind), title=column(lambda e: e.title),
                   symbol=column(lambda e: e.symbol))

    @classmethod
    def of_columns(cls, flat: dict[str, np.ndarray]) -> _Events:
        """Return the events of ``ScheduleColumns.flat_events`` (in order already)."""
        kind_code, kinds = pd.factorize(flat["kind"])
        codes = np.array([_KIND_CODE.get(k, len(EVENT_KINDS)) for k in kinds],
                         dtype=np.int64)
        return cls(lo=flat["lo"], hi=flat["hi"], ts=flat["ts"],
                   kind=codes[kind_code] if len(kinds) else np.zeros(0, np.int64),
                   kind_name=flat["kind"], title=flat["title"], symbol=flat["symbol"])

    def search(self, piece: np.ndarray, ts: np.ndarray, side: str) -> np.ndarray:
        """Return per query where ``ts`` falls among its piece's events (flat index)."""
        return _search(self.ts, self.lo[piece], self.hi[piece], ts, side)


# ---------------------------------------------------------------------------- levels
def _level_texts(names: np.ndarray, price: np.ndarray, rank: np.ndarray, inside: np.ndarray
                 ) -> np.ndarray:
    """Return per row the levels fact: 'name price' of its levels inside, by price, joined
    once per distinct set (each distinct level written once)."""
    if not len(price):
        return np.empty(0, dtype=object)
    # a row's key: its (rank, price) inside, as bits (+ 0.0: -0.0 and 0.0 are one price)
    first, codes = distinct(*np.where(inside, rank, -1).T,
                            *(np.where(inside, price, 0.0) + 0.0).T.copy().view(np.int64))
    # the distinct rows' levels, row by row in column order, each distinct level named once
    row, column = np.nonzero(inside[first])
    level_rank, level_price = rank[first[row], column], price[first[row], column]
    price_code, prices = pd.factorize(np.ascontiguousarray(level_price).view(np.int64))
    level, levels = pd.factorize(level_rank.astype(np.int64) * (len(prices) + 1) + price_code)
    at = np.zeros(len(levels), dtype=np.int64)
    at[level[::-1]] = np.arange(len(level))[::-1]
    written = [f"{names[r]} {p:g}" for r, p in zip(level_rank[at].tolist(),
                                                   level_price[at].tolist(), strict=True)]
    labels = [written[i] for i in level.tolist()]
    ends = np.cumsum(np.bincount(row, minlength=len(first))).tolist()
    texts = [", ".join(labels[a:b]) for a, b in zip([0, *ends[:-1]], ends, strict=True)]
    return objects(texts)[np.asarray(codes).reshape(-1)]


# ---------------------------------------------------------------------------- helpers
def _ns_array(values: Sequence[datetime], field: str) -> np.ndarray:
    """Return tz-aware datetimes as UTC nanoseconds (microseconds x 1000), in one pass;
    refuse a datetime without a zone, naming the field."""
    for value in values:
        if value.tzinfo is None or value.utcoffset() is None:
            raise FieldErrors([FieldError(field, "must be timezone-aware", str(value))])
    if not len(values):
        return np.zeros(0, dtype=np.int64)
    if len(values) <= _FEW_TIMES and all(type(value) is datetime for value in values):
        # a few plain datetimes (an interactive batch of one): their exact microseconds since
        # the epoch, without building an Index (0.1 ms a call)
        return np.array([(value - _EPOCH) // _MICROSECOND for value in values],
                        dtype=np.int64) * 1000
    micros = pd.to_datetime(pd.Index(values, dtype=object), utc=True).as_unit("us").asi8
    return micros.astype(np.int64) * 1000


#: Up to how many datetimes ``_ns_array`` converts one by one.
_FEW_TIMES = 64
_MICROSECOND = timedelta(microseconds=1)


def _to_micros(ns: np.ndarray) -> np.ndarray:
    """Return UTC ns floored to the microsecond (what a datetime holds)."""
    return ns // 1000 * 1000


def _distinct_ids(objects_: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Return (per element, the number of its distinct object by identity; the first
    position of each)."""
    ids = np.fromiter(map(id, objects_), dtype=np.int64, count=len(objects_))
    codes, uniques = pd.factorize(ids)
    first = np.zeros(len(uniques), dtype=np.int64)
    first[codes[::-1]] = np.arange(len(ids))[::-1]
    return codes.astype(np.int64), first


def _search(values: np.ndarray, lo: np.ndarray, hi: np.ndarray, query: np.ndarray,
            side: str) -> np.ndarray:
    """Return per query where it would be inserted into the sorted ``values[lo:hi]`` (flat
    index; ``side`` as np.searchsorted): one binary search of every query at once."""
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


def _median(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Return per row the median of ``values`` where ``valid`` (NaN without any)."""
    k = valid.sum(axis=1)
    ordered = np.sort(np.where(valid, values, np.inf), axis=1)
    low = np.take_along_axis(ordered, np.maximum((k - 1) // 2, 0)[:, None], axis=1)[:, 0]
    high = np.take_along_axis(ordered, (k // 2)[:, None], axis=1)[:, 0]
    return np.where(k == 0, np.nan, np.where(k % 2 == 1, low, (low + high) / 2))


def _iso_utc(ns: np.ndarray) -> np.ndarray:
    """Return each UTC instant (ns) as ISO 8601 (``2012-06-15T20:00:00+00:00``; microseconds
    only when there are any), written once per distinct instant."""
    inverse, distinct = pd.factorize(np.asarray(ns, dtype=np.int64))
    return objects([(_EPOCH + timedelta(microseconds=int(t) // 1000)).isoformat()
                    for t in distinct.tolist()])[inverse]


def _local(ns: np.ndarray, zone: np.ndarray, pattern: str) -> np.ndarray:
    """Return each instant (UTC ns) in its row's time zone formatted by ``pattern``
    (strftime; ``{zone}`` is the zone's name), once per distinct (instant, zone)."""
    zone_code, zones = pd.factorize(np.asarray(zone, dtype=object))
    instant, _ = pd.factorize(ns)
    _, first, pair = np.unique(instant * len(zones) + zone_code, return_index=True,
                               return_inverse=True)
    texts = []
    for t, z in zip(ns[first].tolist(), zone_code[first].tolist(), strict=True):
        local = (_EPOCH + timedelta(microseconds=t // 1000)).astimezone(ZoneInfo(zones[z]))
        texts.append(local.strftime(pattern.replace("{zone}", zones[z])))
    return objects(texts)[pair.reshape(-1)]


def _why_missing(ctx: BatchContext, piece: str, rows: np.ndarray) -> str | np.ndarray:
    """Return ``'<piece> missing (<why>)'`` per row of ``rows`` (why: the context's reason,
    'not provided' without one), written once per distinct reason: one string when every
    row has the same."""
    codes, reasons = pd.factorize(ctx.missing[piece][rows])  # None and NaN: -1
    texts = [f"{piece} missing ({why})" for why in [*reasons.tolist(), "not provided"]]
    if len(codes) and (codes == codes[0]).all():
        return texts[codes[0]]
    return objects(texts)[codes]


def _wrap(before: str, middle: np.ndarray, after: str) -> str | np.ndarray:
    """Return ``f"{before}{m}{after}"`` per element, formatted once per distinct ``m``: one
    string when every element is the same (written into the evidence once)."""
    codes, uniques = pd.factorize(np.asarray(middle, dtype=object))
    texts = [f"{before}{m}{after}" for m in uniques]
    if len(texts) == 1 and codes.min() == 0:
        return texts[0]
    return objects(texts)[codes]


def _reasons(ctx: BatchContext, piece: str, rows: np.ndarray, code: np.ndarray,
             pieces: Sequence[Any], expected: type, otherwise: str) -> np.ndarray:
    """Return per row of ``rows`` (``code``: its distinct piece) why the optional ``piece``
    was not read: missing (with the context's reason), not an ``expected``, else
    ``otherwise``."""
    missing = np.array([p is None for p in pieces], dtype=bool)[code]
    other = np.array([p is not None and not isinstance(p, expected) for p in pieces],
                     dtype=bool)[code]
    reason = repeated(otherwise, len(rows))
    if missing.any():
        reason[missing] = _why_missing(ctx, piece, rows[missing])
    if other.any():
        names = objects([type(p).__name__ for p in pieces])[code[other]]
        reason[other] = _wrap(f"the {piece} piece is a ", names,
                              f", not a {expected.__name__}")
    return reason
