"""EntryQuality: where, when and into what kind of bar is the trade entered?

Location (against the ``levels`` piece, on the as-of price basis)
    A long entered within ``near_level_atr`` ATR under a level above it (a short just over a
    level below it), and a stop that does not sit at least ``stop_buffer_atr`` ATR beyond the
    nearest level behind the entry (within ``stop_level_search_atr`` ATR of it). The levels used
    are the structural ones: prior-day high and low, rolling-range high and low, the R and S
    levels of the configured pivot set, and the support/resistance clusters; on daily and
    weekly bars also the high and low of the last closed bar (the snapshot's prior day is the
    session before that bar's, while a trader deciding after its close calls the bar itself
    "yesterday"). Anchored VWAPs are mean lines rather than levels; they enter through the
    extension check.
Extension
    The entry's distance from EMA(20) and from an anchored VWAP (session on intraday bars,
    month otherwise, unless configured), in ATR(14), in the trade's direction.
Timing (read from the pack's bars only, so the module stays pure)
    Intraday: the session in force is the last bar's ``session``; it opened at the first bar of
    that session in the window and lasts the median length (first bar open to last bar close)
    of the earlier sessions in the window, so an early close or a missing first bar shifts the
    estimate. After its estimated close, the next session opens at the time projected from
    the session opens one week earlier (so a daylight-saving change shifts it by an hour for
    a week); while the market is shut an order fills at that open. An entry at ``as_of``
    within ``session_edge_minutes`` of the open or close is flagged. A mid-bar entry is one
    made while a bar is forming: intraday, inside the session after the last bar closed; on
    daily and weekly bars, inside the bar projected from the bars one week earlier (the same
    weekday and hours; holidays are not known, so a holiday reads like a normal day). Both
    timing checks are skipped when calendar sessions closed after the last bar (stale data is
    the data-quality module's finding).
Microstructure proxies
    The last closed bar's high-low range in ATR (a wide-range bar), and its volume relative to
    the mean of the previous ``relvol_lookback`` bars (intraday: of the bars at the same offset
    from their session's first bar in the previous ``relvol_lookback`` sessions, since intraday
    volume follows the clock).

ATR is ``atr_14`` of the last bar's features, else the mean true range of the last 14 bars.
Suggested prices are on the instrument's tick grid, rounded away from the risk.

``evaluate_batch`` gives the same verdicts for many intents column-wise: the levels of each
distinct snapshot are read once into a padded table, and the session structure of each
distinct intraday window once from the concatenated bars (``_window_sessions``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from buddy.batch.columns import utc_ns
from buddy.batch.result import (
    BatchResult,
    FactColumn,
    IssueBlock,
    concat_results,
    evidence_json,
    issues_frame,
)
from buddy.config import ModuleConfig, param
from buddy.context.pack import ContextPack, MarketData
from buddy.context.pieces import KeyLevelsSnapshot
from buddy.domain import EvaluationResult, Fact, Issue, Severity, Side, TradeIntent
from buddy.evaluators.base import Evaluator, IssueTemplate
from buddy.evaluators.registry import register
from buddy.evidence import round_to_tick
from buddy.timeframes import Timeframe

if TYPE_CHECKING:
    from buddy.batch.context import BatchContext, Windows

ATR_FALLBACK_BARS = 14
WEEK = pd.Timedelta(days=7)


@dataclass(frozen=True, slots=True, kw_only=True)
class EntryQualityConfig(ModuleConfig):
    """Thresholds of the location, extension, timing and microstructure checks."""

    config_name = "entry_quality"

    near_level_atr: float = param(0.5, lo=0.0, hi=10.0, unit="ATR",
                                  doc="a long entered less than this distance under a level "
                                      "above it (a short over a level below it) is flagged")
    stop_buffer_atr: float = param(0.1, lo=0.0, hi=5.0, unit="ATR",
                                   doc="how far beyond the nearest level behind the entry a "
                                       "stop should sit")
    stop_level_search_atr: float = param(3.0, lo=0.1, hi=50.0, unit="ATR",
                                         doc="levels behind the entry farther than this are not "
                                             "checked against the stop")
    pivot_method: str = param("classic", choices=("classic", "fibonacci", "camarilla", "none"),
                              doc="pivot set whose R and S levels count as levels")
    max_ema_extension_atr: float = param(2.5, lo=0.1, hi=50.0, unit="ATR",
                                         doc="largest distance of the entry beyond EMA(20) in "
                                             "the trade's direction")
    max_vwap_extension_atr: float = param(2.0, lo=0.1, hi=50.0, unit="ATR",
                                          doc="largest distance of the entry beyond the anchored "
                                              "VWAP in the trade's direction")
    vwap_anchor: str = param("auto", choices=("auto", "session", "week", "month"),
                             doc="anchored VWAP the extension is measured from; auto: session "
                                 "on intraday bars, month otherwise")
    session_edge_minutes: float = param(15.0, lo=0.0, hi=720.0, unit="minutes",
                                        doc="an intraday entry this close to the session's "
                                            "open or close is flagged")
    mid_bar_min_pct: float = param(10.0, lo=0.0, hi=100.0, unit="%",
                                   doc="share of the forming bar elapsed at as_of from which "
                                       "an entry counts as mid-bar")
    wide_range_atr: float = param(2.0, lo=0.1, hi=50.0, unit="ATR",
                                  doc="a last bar whose high-low range is at least this is a "
                                      "wide-range bar")
    min_relative_volume: float = param(0.5, lo=0.0, hi=100.0, unit="ratio",
                                       doc="smallest volume of the last bar against its "
                                           "reference before liquidity counts as thin")
    relvol_lookback: int = param(20, lo=2, hi=250, unit="bars",
                                 doc="bars (intraday: sessions) behind the reference volume")


@dataclass(frozen=True, slots=True)
class _Level:
    name: str
    price: float
    touches: int | None = None


@dataclass(frozen=True, slots=True)
class _Trade:
    """The intent's numbers as the checks read them."""

    entry: float
    stop: float | None
    sign: int  # +1 long, -1 short
    atr: float | None
    atr_source: str
    tick: float

    def atr_units(self, distance: float) -> float:
        assert self.atr
        return distance / self.atr

    def on_tick(self, price: float, *, against_risk: bool) -> float:
        """Round to the tick grid: ``against_risk`` rounds away from the trade's side
        (down for a long's stop or entry, up for a short's)."""
        if self.sign > 0:
            direction = "down" if against_risk else "up"
        else:
            direction = "up" if against_risk else "down"
        return round_to_tick(price, self.tick, direction=direction)


@register
class EntryQualityEvaluator(Evaluator):
    """Check location against key levels, extension, timing and microstructure of the entry."""

    name = "entry_quality"
    version = "1.0.0"
    requires = frozenset({"market", "levels"})
    config_cls = EntryQualityConfig
    templates: ClassVar = {
        "ENTRY_UNDER_RESISTANCE": IssueTemplate(
            "Long entered just under a level",
            "The entry at {entry} sits {distance_atr} under {level_name} at {level_price} "
            "(threshold {near_level_atr}).",
            "Wait for a close above {confirm_price}, or enter at {pullback_entry} or lower, "
            "where the level is at least {near_level_atr} away."),
        "ENTRY_OVER_SUPPORT": IssueTemplate(
            "Short entered just over a level",
            "The entry at {entry} sits {distance_atr} over {level_name} at {level_price} "
            "(threshold {near_level_atr}).",
            "Wait for a close below {confirm_price}, or enter at {pullback_entry} or higher, "
            "where the level is at least {near_level_atr} away."),
        "STOP_NOT_BEYOND_LEVEL": IssueTemplate(
            "Stop not beyond the nearest level",
            "The stop at {stop} sits {stop_level_gap_atr} {stop_side} {level_name} at "
            "{level_price}, the nearest level behind the entry (wanted: at least "
            "{stop_buffer_atr} beyond it).",
            "Place the stop at {suggested_stop}, beyond the level, and resize to keep the "
            "same risk."),
        "EXTENDED_FROM_EMA": IssueTemplate(
            "Entry extended from EMA(20)",
            "The entry at {entry} is {ema_extension_atr} beyond EMA(20) at {ema_20} "
            "(limit {max_ema_extension_atr}).",
            "A limit entry at {suggested_entry} keeps the extension within "
            "{max_ema_extension_atr}."),
        "EXTENDED_FROM_VWAP": IssueTemplate(
            "Entry extended from the anchored VWAP",
            "The entry at {entry} is {vwap_extension_atr} ({vwap_extension_sd}) beyond the "
            "{vwap_anchor} VWAP at {vwap} (limit {max_vwap_extension_atr}).",
            "A limit entry at {suggested_entry} keeps the extension within "
            "{max_vwap_extension_atr}."),
        "ENTRY_AT_SESSION_EDGE": IssueTemplate(
            "Entry at the edge of the session",
            "The entry time is {minutes_from_edge} from the session {session_edge} "
            "(threshold {session_edge_minutes}); spreads and gaps are widest there.",
            "Enter away from the first and last {session_edge_minutes} of the session, or use "
            "a limit order at {limit_price}."),
        "ENTRY_MID_BAR": IssueTemplate(
            "Entry before the bar closes",
            "The {timeframe} bar in progress is {bar_progress_pct} complete at the entry time; "
            "its close is still {minutes_to_bar_close} away.",
            "Wait for the bar to close before acting on it, or keep the order as a limit at "
            "{limit_price}."),
        "WIDE_RANGE_BAR": IssueTemplate(
            "Entry right after a wide-range bar",
            "The last bar spanned {last_bar_range_atr} from {last_bar_low} to {last_bar_high} "
            "(threshold {wide_range_atr}).",
            "Use a limit entry nearer the bar's midpoint at {suggested_entry}, or reduce the "
            "size."),
        "LOW_RELATIVE_VOLUME": IssueTemplate(
            "Thin volume on the last bar",
            "The last bar traded {relative_volume} of its reference volume over "
            "{reference_bars} (threshold {min_relative_volume}).",
            "Use a limit order at {limit_price} rather than a market order, and keep the size "
            "small against the volume."),
    }

    def evaluate(self, intent: TradeIntent, ctx: ContextPack) -> EvaluationResult:
        """Return entry-quality issues for ``intent`` against the market and levels pieces."""
        market = ctx.market
        assert market is not None  # guaranteed by requires
        # The orchestrator skips this module without levels; called directly without them,
        # it still runs the checks that need none.
        levels = ctx.levels if isinstance(ctx.levels, KeyLevelsSnapshot) else None
        cfg = self.config
        atr, atr_source = _atr(market)
        trade = _Trade(entry=intent.proposed_entry, stop=intent.proposed_stop,
                       sign=1 if intent.side is Side.LONG else -1, atr=atr,
                       atr_source=atr_source, tick=ctx.instrument.tick_size)
        facts: list[Fact] = [Fact(name="atr_14", value=atr, unit="price"),
                             Fact(name="atr_source", value=atr_source)]
        issues: list[Issue] = []
        if atr:
            found = [] if levels is None else _location_levels(levels, cfg.pivot_method)
            if not ctx.timeframe.is_intraday:
                last = market.bars.iloc[-1]
                found += [_Level(f"last closed {ctx.timeframe} bar high", float(last["high"])),
                          _Level(f"last closed {ctx.timeframe} bar low", float(last["low"]))]
            issues += self._location(trade, found, facts)
            issues += self._stop(trade, found, facts)
            issues += self._ema(trade, market, facts)
            if levels is not None:
                issues += self._vwap(trade, ctx, levels, facts)
            issues += self._wide_range(trade, market, facts)
        if market.sessions_since_last_bar == 0:
            issues += self._timing(trade, ctx, market, facts)
        issues += self._volume(trade, ctx, market, facts)
        return self.result(issues, facts)

    # ------------------------------------------------------------------------- location
    def _location(self, trade: _Trade, found: list[_Level], facts: list[Fact]) -> list[Issue]:
        cfg = self.config
        ahead = [lv for lv in found if trade.sign * (lv.price - trade.entry) >= 0]
        if not ahead:
            facts.append(Fact(name="nearest_level_ahead_atr", value=None, unit="ATR"))
            return []
        level = min(ahead, key=lambda lv: (abs(lv.price - trade.entry), lv.name))
        distance = round(trade.atr_units(abs(level.price - trade.entry)), 4)
        facts.append(Fact(name="nearest_level_ahead_atr", value=distance, unit="ATR"))
        if distance >= cfg.near_level_atr:
            return []
        assert trade.atr
        confirm = trade.on_tick(level.price + trade.sign * cfg.stop_buffer_atr * trade.atr,
                                against_risk=False)
        pullback = trade.on_tick(level.price - trade.sign * cfg.near_level_atr * trade.atr,
                                 against_risk=True)
        code = "ENTRY_UNDER_RESISTANCE" if trade.sign > 0 else "ENTRY_OVER_SUPPORT"
        return [self.issue(
            code, Severity.MEDIUM,
            [Fact(name="entry", value=trade.entry, unit="price"),
             Fact(name="level_name", value=level.name),
             Fact(name="level_price", value=_round(level.price), unit="price"),
             Fact(name="distance_atr", value=distance, unit="ATR",
                  threshold=cfg.near_level_atr),
             Fact(name="near_level_atr", value=cfg.near_level_atr, unit="ATR"),
             Fact(name="touches", value=level.touches, unit="touches"),
             Fact(name="atr_14", value=trade.atr, unit="price")],
            "WAIT_FOR_CLOSE_BEYOND_OR_PULLBACK",
            [Fact(name="confirm_price", value=confirm, unit="price"),
             Fact(name="pullback_entry", value=pullback if pullback > 0 else None,
                  unit="price"),
             Fact(name="near_level_atr", value=cfg.near_level_atr, unit="ATR")])]

    def _stop(self, trade: _Trade, found: list[_Level], facts: list[Fact]) -> list[Issue]:
        cfg = self.config
        if trade.stop is None or trade.sign * (trade.entry - trade.stop) <= 0:
            return []
        assert trade.atr
        behind = [lv for lv in found if trade.sign * (trade.entry - lv.price) > 0
                  and trade.atr_units(abs(trade.entry - lv.price)) <= cfg.stop_level_search_atr]
        if not behind:
            return []
        level = min(behind, key=lambda lv: (abs(trade.entry - lv.price), lv.name))
        beyond = trade.atr_units(trade.sign * (level.price - trade.stop))
        facts.append(Fact(name="stop_beyond_level_atr", value=round(beyond, 4), unit="ATR"))
        if beyond >= cfg.stop_buffer_atr - 1e-9:
            return []
        suggested = trade.on_tick(level.price - trade.sign * cfg.stop_buffer_atr * trade.atr,
                                  against_risk=True)
        return [self.issue(
            "STOP_NOT_BEYOND_LEVEL", Severity.MEDIUM,
            [Fact(name="stop", value=trade.stop, unit="price"),
             Fact(name="entry", value=trade.entry, unit="price"),
             Fact(name="level_name", value=level.name),
             Fact(name="level_price", value=_round(level.price), unit="price"),
             Fact(name="stop_beyond_level_atr", value=round(beyond, 4), unit="ATR",
                  threshold=cfg.stop_buffer_atr),
             Fact(name="stop_level_gap_atr", value=round(abs(beyond), 4), unit="ATR"),
             Fact(name="stop_side", value="beyond" if beyond >= 0 else "inside"),
             Fact(name="stop_buffer_atr", value=cfg.stop_buffer_atr, unit="ATR"),
             Fact(name="atr_14", value=trade.atr, unit="price")],
            "MOVE_STOP_BEYOND_LEVEL",
            [Fact(name="suggested_stop", value=suggested if suggested > 0 else None,
                  unit="price")])]

    # ------------------------------------------------------------------------- extension
    def _ema(self, trade: _Trade, market: MarketData, facts: list[Fact]) -> list[Issue]:
        cfg = self.config
        ema = market.latest_features.get("ema_20", math.nan)
        if not math.isfinite(ema):
            facts.append(Fact(name="ema_extension_atr", value=None, unit="ATR"))
            return []
        assert trade.atr
        extension = trade.atr_units(trade.sign * (trade.entry - ema))
        facts.append(Fact(name="ema_extension_atr", value=round(extension, 4), unit="ATR"))
        if extension <= cfg.max_ema_extension_atr:
            return []
        suggested = trade.on_tick(ema + trade.sign * cfg.max_ema_extension_atr * trade.atr,
                                  against_risk=True)
        return [self.issue(
            "EXTENDED_FROM_EMA",
            Severity.MEDIUM if extension > 1.5 * cfg.max_ema_extension_atr else Severity.LOW,
            [Fact(name="entry", value=trade.entry, unit="price"),
             Fact(name="ema_20", value=_round(ema), unit="price"),
             Fact(name="ema_extension_atr", value=round(extension, 4), unit="ATR",
                  threshold=cfg.max_ema_extension_atr),
             Fact(name="max_ema_extension_atr", value=cfg.max_ema_extension_atr, unit="ATR"),
             Fact(name="atr_14", value=trade.atr, unit="price")],
            "USE_LIMIT_ENTRY_NEARER_EMA",
            [Fact(name="suggested_entry", value=suggested, unit="price"),
             Fact(name="max_ema_extension_atr", value=cfg.max_ema_extension_atr, unit="ATR")])]

    def _vwap(self, trade: _Trade, ctx: ContextPack, levels: KeyLevelsSnapshot,
              facts: list[Fact]) -> list[Issue]:
        cfg = self.config
        anchor = cfg.vwap_anchor
        if anchor == "auto":
            anchor = "session" if ctx.timeframe.is_intraday else "month"
        vwap = next((v for v in levels.anchored_vwaps if v.anchor == anchor), None)
        if vwap is None:
            facts.append(Fact(name="vwap_extension_atr", value=None, unit="ATR"))
            return []
        assert trade.atr
        extension = trade.atr_units(trade.sign * (trade.entry - vwap.vwap))
        facts.append(Fact(name="vwap_extension_atr", value=round(extension, 4), unit="ATR"))
        if extension <= cfg.max_vwap_extension_atr:
            return []
        sd = vwap.upper_1 - vwap.vwap
        in_sd = trade.sign * (trade.entry - vwap.vwap) / sd if sd > 0 else None
        suggested = trade.on_tick(vwap.vwap + trade.sign * cfg.max_vwap_extension_atr
                                  * trade.atr, against_risk=True)
        return [self.issue(
            "EXTENDED_FROM_VWAP",
            Severity.MEDIUM if extension > 1.5 * cfg.max_vwap_extension_atr else Severity.LOW,
            [Fact(name="entry", value=trade.entry, unit="price"),
             Fact(name="vwap_anchor", value=anchor),
             Fact(name="vwap", value=_round(vwap.vwap), unit="price"),
             Fact(name="vwap_extension_atr", value=round(extension, 4), unit="ATR",
                  threshold=cfg.max_vwap_extension_atr),
             Fact(name="vwap_extension_sd", value=None if in_sd is None else round(in_sd, 4),
                  unit="sd"),
             Fact(name="max_vwap_extension_atr", value=cfg.max_vwap_extension_atr,
                  unit="ATR"),
             Fact(name="atr_14", value=trade.atr, unit="price")],
            "USE_LIMIT_ENTRY_NEARER_VWAP",
            [Fact(name="suggested_entry", value=suggested, unit="price"),
             Fact(name="max_vwap_extension_atr", value=cfg.max_vwap_extension_atr,
                  unit="ATR")])]

    # ------------------------------------------------------------------------- timing
    def _timing(self, trade: _Trade, ctx: ContextPack, market: MarketData,
                facts: list[Fact]) -> list[Issue]:
        cfg = self.config
        bars = market.bars
        as_of = pd.Timestamp(ctx.as_of)
        last_close = pd.Timestamp(bars["ts_close"].iloc[-1])
        limit = round_to_tick(trade.entry, trade.tick)
        issues = []
        in_progress: tuple[pd.Timestamp, pd.Timestamp] | None = None
        if ctx.timeframe.is_intraday:
            session = _session_window(bars)
            if session is not None:
                opened, closes = session
                if as_of >= closes:
                    # The last bar's session has ended; the next one opens at the time
                    # projected from a week earlier. Before that the market is shut and an
                    # order fills at the open.
                    next_open = _next_session_open(bars, closes)
                    edge, minutes = "open", 0.0
                    if next_open is not None and as_of >= next_open:
                        closes = next_open + (closes - opened)
                        opened = next_open
                        minutes = (as_of - opened) / pd.Timedelta(minutes=1)
                        if as_of < opened + ctx.timeframe.nominal:
                            in_progress = (opened, opened + ctx.timeframe.nominal)
                else:
                    since_open = (as_of - opened) / pd.Timedelta(minutes=1)
                    to_close = (closes - as_of) / pd.Timedelta(minutes=1)
                    edge, minutes = (("open", since_open) if since_open <= to_close
                                     else ("close", to_close))
                    if as_of > last_close:
                        in_progress = (last_close, last_close + ctx.timeframe.nominal)
                facts.append(Fact(name="minutes_from_session_edge", value=round(minutes, 2),
                                  unit="minutes"))
                if minutes < cfg.session_edge_minutes:
                    issues.append(self.issue(
                        "ENTRY_AT_SESSION_EDGE", Severity.LOW,
                        [Fact(name="minutes_from_edge", value=round(minutes, 2),
                              unit="minutes", threshold=cfg.session_edge_minutes),
                         Fact(name="session_edge", value=edge),
                         Fact(name="session_edge_minutes", value=cfg.session_edge_minutes,
                              unit="minutes"),
                         Fact(name="session_open", value=opened.isoformat()),
                         Fact(name="session_close_estimate", value=closes.isoformat())],
                        "WAIT_FOR_SESSION_TO_SETTLE",
                        [Fact(name="session_edge_minutes", value=cfg.session_edge_minutes,
                              unit="minutes"),
                         Fact(name="limit_price", value=limit, unit="price")]))
        elif as_of > last_close:
            in_progress = _projected_bar(bars, as_of)
        if in_progress is None:
            return issues
        start, end = in_progress
        progress = 100.0 * (as_of - start) / (end - start)
        facts.append(Fact(name="bar_progress_pct", value=round(progress, 2), unit="%"))
        if cfg.mid_bar_min_pct <= progress < 100.0:
            issues.append(self.issue(
                "ENTRY_MID_BAR", Severity.LOW,
                [Fact(name="bar_progress_pct", value=round(progress, 2), unit="%",
                      threshold=cfg.mid_bar_min_pct),
                 Fact(name="minutes_to_bar_close", unit="minutes",
                      value=round((end - as_of) / pd.Timedelta(minutes=1), 2)),
                 Fact(name="timeframe", value=str(ctx.timeframe)),
                 Fact(name="bar_open", value=start.isoformat())],
                "WAIT_FOR_BAR_CLOSE",
                [Fact(name="limit_price", value=limit, unit="price")]))
        return issues

    # ------------------------------------------------------------------------- microstructure
    def _wide_range(self, trade: _Trade, market: MarketData, facts: list[Fact]) -> list[Issue]:
        cfg = self.config
        last = market.bars.iloc[-1]
        high, low = float(last["high"]), float(last["low"])
        width = trade.atr_units(high - low)
        facts.append(Fact(name="last_bar_range_atr", value=round(width, 4), unit="ATR"))
        if width < cfg.wide_range_atr:
            return []
        middle = trade.on_tick((high + low) / 2.0, against_risk=True)
        return [self.issue(
            "WIDE_RANGE_BAR", Severity.LOW,
            [Fact(name="last_bar_range_atr", value=round(width, 4), unit="ATR",
                  threshold=cfg.wide_range_atr),
             Fact(name="last_bar_high", value=high, unit="price"),
             Fact(name="last_bar_low", value=low, unit="price"),
             Fact(name="wide_range_atr", value=cfg.wide_range_atr, unit="ATR"),
             Fact(name="atr_14", value=trade.atr, unit="price")],
            "USE_LIMIT_NEAR_MIDPOINT_OR_REDUCE_SIZE",
            [Fact(name="suggested_entry", value=middle, unit="price")])]

    def _volume(self, trade: _Trade, ctx: ContextPack, market: MarketData,
                facts: list[Fact]) -> list[Issue]:
        cfg = self.config
        reference, count, unit = _reference_volume(market.bars, ctx.timeframe.is_intraday,
                                                   cfg.relvol_lookback)
        volume = float(market.bars["volume"].iloc[-1])
        if reference is None or reference <= 0:
            facts.append(Fact(name="relative_volume", value=None, unit="ratio"))
            return []
        relative = volume / reference
        facts.append(Fact(name="relative_volume", value=round(relative, 4), unit="ratio"))
        if relative >= cfg.min_relative_volume:
            return []
        return [self.issue(
            "LOW_RELATIVE_VOLUME", Severity.LOW,
            [Fact(name="relative_volume", value=round(relative, 4), unit="ratio",
                  threshold=cfg.min_relative_volume),
             Fact(name="last_bar_volume", value=volume, unit="units"),
             Fact(name="reference_volume", value=round(reference, 2), unit="units"),
             Fact(name="reference_bars", value=count, unit=unit),
             Fact(name="min_relative_volume", value=cfg.min_relative_volume, unit="ratio")],
            "USE_LIMIT_ORDER",
            [Fact(name="limit_price", value=round_to_tick(trade.entry, trade.tick),
                  unit="price")])]

    # ------------------------------------------------------------------------- batch form
    def evaluate_batch(self, ctx: BatchContext) -> BatchResult:
        """Return ``evaluate``'s verdicts on every row of ``ctx``, column-wise.

        Levels are read once per distinct snapshot into a padded table, and the nearest level
        ahead of and behind each entry is a masked row-wise minimum over it (ties by name, as
        ``min`` breaks them). Intraday sessions are read once per distinct window from the
        concatenated bars (``_window_sessions``). A row whose window is out of time order or
        holds a missing time or session is left to ``evaluate``: the column forms rely on
        that order, which the store's windows always have.
        """
        n = ctx.n
        if n == 0:
            return BatchResult.from_issues(self.name, self.version, 0, issues_frame([]))
        if (ctx.bars.lengths < 1).any():
            raise ValueError("entry_quality: a row has no bars (evaluate fails on it)")
        times = _BarTimes.read(ctx.bars.data)
        intraday = _TimeframeColumns.read(ctx.intents["timeframe"]).intraday
        irregular = times.irregular(ctx.bars.start, ctx.bars.stop, intraday)
        if not irregular.any():
            return self._evaluate_columns(ctx, times)
        slow, fast = np.flatnonzero(irregular), np.flatnonzero(~irregular)
        parts = [(slow, BatchResult.from_results(self.name, self.version, [
            self.evaluate(ctx.intent(i), ctx.pack(i)) for i in slow]))]
        if len(fast):
            parts.append((fast, self._evaluate_columns(ctx.take(fast), times)))
        return concat_results(self.name, self.version, parts, n)

    def _evaluate_columns(self, ctx: BatchContext, times: _BarTimes) -> BatchResult:
        """The batch form on rows whose windows are in time order."""
        cfg = self.config
        n = ctx.n
        tf = _TimeframeColumns.read(ctx.intents["timeframe"])
        entry = ctx.intents["proposed_entry"].to_numpy(np.float64)
        stop = ctx.intents["proposed_stop"].to_numpy(np.float64)
        sign = ctx.intents["sign"].to_numpy(np.float64)
        long = sign > 0
        last = ctx.bars.stop - 1
        high = ctx.bars.column("high")[last]
        low = ctx.bars.column("low")[last]

        atr = _latest(ctx, "atr_14")
        with np.errstate(invalid="ignore"):
            from_bars = np.flatnonzero(~(np.isfinite(atr) & (atr > 0)))
            if len(from_bars):
                atr[from_bars] = _bars_atr(ctx.bars.take(from_bars))
            has_atr = atr > 0  # as ``if atr:`` after ``_atr``
        atr[~has_atr] = np.nan

        anchors = ((cfg.vwap_anchor,) if cfg.vwap_anchor != "auto" else ("session", "month"))
        bar_names = {label: (f"last closed {label} bar high", f"last closed {label} bar low")
                     for label in tf.labels}
        table = _LevelTable.read(ctx, cfg.pivot_method, anchors,
                                 [name for pair in bar_names.values() for name in pair])
        rank_of = {name: i for i, name in enumerate(table.names.tolist())}
        bar_rank = np.array([[rank_of[bar_names[label][0]], rank_of[bar_names[label][1]]]
                             for label in tf.labels], dtype=np.int64).reshape(-1, 2)[tf.code]
        bar_levels = ~tf.intraday
        near = _nearest_levels(table, entry, sign, atr, has_atr,
                               np.where(bar_levels, high, np.nan),
                               np.where(bar_levels, low, np.nan), bar_rank,
                               cfg.stop_level_search_atr)
        blocks: list[IssueBlock] = []

        # location
        ahead = near["ahead"]
        distance = np.full(n, np.nan)
        distance[ahead.has] = _round_column(np.abs(ahead.price[ahead.has] - entry[ahead.has])
                                            / atr[ahead.has], 4)
        fired = ahead.has & ~(distance >= cfg.near_level_atr)
        for code, side in (("ENTRY_UNDER_RESISTANCE", long), ("ENTRY_OVER_SUPPORT", ~long)):
            rows = np.flatnonzero(fired & side)
            if not len(rows):
                continue
            level_price = ahead.rounded(rows)

            def location(part: np.ndarray, first: int, rows: np.ndarray = rows,
                         level_price: np.ndarray = level_price) -> list[FactColumn]:
                at = rows[part]
                return [FactColumn("entry", entry[at], "price"),
                        FactColumn("level_name", table.names[ahead.rank[rows[first]]]),
                        FactColumn("level_price", level_price[part], "price"),
                        FactColumn("distance_atr", distance[at], "ATR", cfg.near_level_atr),
                        FactColumn("near_level_atr", cfg.near_level_atr, "ATR"),
                        FactColumn("touches", ahead.touches_of(rows[first]), "touches"),
                        FactColumn("atr_14", atr[at], "price")]

            blocks.append(IssueBlock(code, rows, Severity.MEDIUM, _grouped_evidence(
                (ahead.rank[rows], ahead.touches[rows]), location)))

        # stop against the nearest level behind the entry
        behind = near["behind"]
        checked = behind.has & np.isfinite(stop) & (sign * (entry - stop) > 0)
        beyond = np.full(n, np.nan)
        beyond[checked] = (sign[checked] * (behind.price[checked] - stop[checked])
                           / atr[checked])
        rows = np.flatnonzero(checked & ~(beyond >= cfg.stop_buffer_atr - 1e-9))
        if len(rows):
            gap = beyond[rows]
            level_price = behind.rounded(rows)

            def stop_facts(part: np.ndarray, first: int) -> list[FactColumn]:
                at = rows[part]
                return [FactColumn("stop", stop[at], "price"),
                        FactColumn("entry", entry[at], "price"),
                        FactColumn("level_name", table.names[behind.rank[rows[first]]]),
                        FactColumn("level_price", level_price[part], "price"),
                        FactColumn("stop_beyond_level_atr", _round_column(gap[part], 4),
                                   "ATR", cfg.stop_buffer_atr),
                        FactColumn("stop_level_gap_atr", _round_column(np.abs(gap[part]), 4),
                                   "ATR"),
                        FactColumn("stop_side", "beyond" if gap[first] >= 0 else "inside"),
                        FactColumn("stop_buffer_atr", cfg.stop_buffer_atr, "ATR"),
                        FactColumn("atr_14", atr[at], "price")]

            blocks.append(IssueBlock("STOP_NOT_BEYOND_LEVEL", rows, Severity.MEDIUM,
                                     _grouped_evidence((behind.rank[rows], gap >= 0),
                                                       stop_facts)))

        # extension from EMA(20) and from the anchored VWAP
        ema = _latest(ctx, "ema_20")
        with np.errstate(invalid="ignore"):
            extension = sign * (entry - ema) / atr
        rows = np.flatnonzero(has_atr & np.isfinite(ema)
                              & ~(extension <= cfg.max_ema_extension_atr))
        if len(rows):
            value = extension[rows]
            blocks.append(IssueBlock("EXTENDED_FROM_EMA", rows, _medium_beyond(
                value, 1.5 * cfg.max_ema_extension_atr), evidence_json([
                    FactColumn("entry", entry[rows], "price"),
                    FactColumn("ema_20", _round_sig_column(ema[rows]), "price"),
                    FactColumn("ema_extension_atr", _round_column(value, 4), "ATR",
                               cfg.max_ema_extension_atr),
                    FactColumn("max_ema_extension_atr", cfg.max_ema_extension_atr, "ATR"),
                    FactColumn("atr_14", atr[rows], "price")], len(rows))))

        anchor = (np.where(tf.intraday, "session", "month").astype(object)
                  if cfg.vwap_anchor == "auto" else np.full(n, cfg.vwap_anchor, dtype=object))
        vwap = np.full(n, np.nan)
        sd = np.full(n, np.nan)
        vwap_rounded = np.full(n, np.nan)
        has_vwap = np.zeros(n, dtype=bool)
        for name in anchors:
            at = anchor == name
            per = table.vwaps[name]
            code = table.code[at]
            has_vwap[at] = per.has[code]
            vwap[at], sd[at], vwap_rounded[at] = per.vwap[code], per.sd[code], per.rounded[code]
        with np.errstate(invalid="ignore"):
            away = sign * (entry - vwap)
            extension = away / atr
        rows = np.flatnonzero(has_atr & has_vwap & ~(extension <= cfg.max_vwap_extension_atr))
        if len(rows):
            value = extension[rows]
            spread = sd[rows]
            with np.errstate(invalid="ignore", divide="ignore"):
                in_sd = _round_column(np.where(spread > 0, away[rows] / spread, np.nan), 4)

            def vwap_facts(part: np.ndarray, first: int) -> list[FactColumn]:
                at = rows[part]
                return [FactColumn("entry", entry[at], "price"),
                        FactColumn("vwap_anchor", anchor[rows[first]]),
                        FactColumn("vwap", vwap_rounded[at], "price"),
                        FactColumn("vwap_extension_atr", _round_column(value[part], 4), "ATR",
                                   cfg.max_vwap_extension_atr),
                        FactColumn("vwap_extension_sd",
                                   in_sd[part] if spread[first] > 0 else None, "sd"),
                        FactColumn("max_vwap_extension_atr", cfg.max_vwap_extension_atr,
                                   "ATR"),
                        FactColumn("atr_14", atr[at], "price")]

            blocks.append(IssueBlock("EXTENDED_FROM_VWAP", rows, _medium_beyond(
                value, 1.5 * cfg.max_vwap_extension_atr), _grouped_evidence(
                    (anchor[rows], spread > 0), vwap_facts)))

        # wide-range bar
        with np.errstate(invalid="ignore"):
            width = (high - low) / atr
        rows = np.flatnonzero(has_atr & ~(width < cfg.wide_range_atr))
        if len(rows):
            blocks.append(IssueBlock("WIDE_RANGE_BAR", rows, Severity.LOW, evidence_json([
                FactColumn("last_bar_range_atr", _round_column(width[rows], 4), "ATR",
                           cfg.wide_range_atr),
                FactColumn("last_bar_high", high[rows], "price"),
                FactColumn("last_bar_low", low[rows], "price"),
                FactColumn("wide_range_atr", cfg.wide_range_atr, "ATR"),
                FactColumn("atr_14", atr[rows], "price")], len(rows))))

        # timing and volume: intraday windows' sessions, once per distinct window
        window = np.full(n, -1, dtype=np.int64)
        rows = np.flatnonzero(tf.intraday)
        span = len(times.ts) + 1
        window[rows], keys = pd.factorize(ctx.bars.start[rows] * span + ctx.bars.stop[rows])
        keys = np.asarray(keys, dtype=np.int64)
        sessions = _window_sessions(times, ctx.bars.column("volume"), keys // span,
                                    keys % span, cfg.relvol_lookback) if len(rows) else None
        blocks += self._timing_blocks(ctx, times, tf, sessions, window)
        blocks += self._volume_blocks(ctx, tf, sessions, window)
        return BatchResult.from_issues(self.name, self.version, n, issues_frame(blocks))

    def _timing_blocks(self, ctx: BatchContext, times: _BarTimes, tf: _TimeframeColumns,
                       sessions: _Sessions | None, window: np.ndarray) -> list[IssueBlock]:
        """ENTRY_AT_SESSION_EDGE and ENTRY_MID_BAR (``_timing``, column-wise)."""
        cfg = self.config
        n = ctx.n
        as_of = utc_ns(ctx.intents["as_of"])
        start, stop = ctx.bars.start, ctx.bars.stop
        last_close = times.ts_close[stop - 1]
        timed = ctx.market["sessions_since_last_bar"].to_numpy(np.int64) == 0
        bar_start = np.zeros(n, dtype=np.int64)  # the bar forming at as_of, where there is one
        bar_end = np.zeros(n, dtype=np.int64)
        forming = np.zeros(n, dtype=bool)
        blocks = []
        rows = np.flatnonzero(timed & tf.intraday)
        if sessions is not None:
            rows = rows[sessions.count[window[rows]] >= 2]
        if len(rows):
            assert sessions is not None
            where = window[rows]
            t = as_of[rows]
            opened, closes = sessions.opened[where], sessions.closes[where]
            nominal = tf.nominal[rows]
            next_open, has_next = sessions.next_open[where], sessions.has_next[where]
            shut = t >= closes
            reopened = shut & has_next & (t >= next_open)
            length = closes - opened
            opened = np.where(reopened, next_open, opened)
            closes = np.where(reopened, next_open + length, closes)
            since_open = (t - opened) / _NS_PER_MINUTE
            to_close = (closes - t) / _NS_PER_MINUTE
            at_open = shut | (since_open <= to_close)
            minutes = np.where(shut, np.where(reopened, since_open, 0.0),
                               np.where(at_open, since_open, to_close))
            starting = reopened & (t < opened + nominal)
            running = ~shut & (t > last_close[rows])
            forming[rows] = starting | running
            bar_start[rows] = np.where(starting, opened, last_close[rows])
            bar_end[rows] = bar_start[rows] + nominal
            fired = np.flatnonzero(minutes < cfg.session_edge_minutes)
            if len(fired):
                edge_minutes = _round_column(minutes[fired], 2)
                session_open = _isoformat(opened[fired], times.tz)
                session_close = _isoformat(closes[fired], times.tz)
                edge_open = at_open[fired]

                def edge_facts(part: np.ndarray, first: int) -> list[FactColumn]:
                    return [FactColumn("minutes_from_edge", edge_minutes[part], "minutes",
                                       cfg.session_edge_minutes),
                            FactColumn("session_edge", "open" if edge_open[first] else "close"),
                            FactColumn("session_edge_minutes", cfg.session_edge_minutes,
                                       "minutes"),
                            FactColumn("session_open", session_open[part]),
                            FactColumn("session_close_estimate", session_close[part])]

                blocks.append(IssueBlock("ENTRY_AT_SESSION_EDGE", rows[fired], Severity.LOW,
                                         _grouped_evidence((edge_open,), edge_facts)))

        rows = np.flatnonzero(timed & ~tf.intraday & (as_of > last_close))
        if len(rows):
            found, begins, ends = _projected_bars(times, start[rows], stop[rows], as_of[rows])
            rows = rows[found]
            forming[rows] = True
            bar_start[rows], bar_end[rows] = begins[found], ends[found]

        rows = np.flatnonzero(forming)
        if len(rows):
            progress = _percent(as_of[rows] - bar_start[rows], bar_end[rows] - bar_start[rows])
            fired = (cfg.mid_bar_min_pct <= progress) & (progress < 100.0)
            rows, progress = rows[fired], progress[fired]
        if len(rows):
            percent = _round_column(progress, 2)
            to_close = _round_column((bar_end[rows] - as_of[rows]) / _NS_PER_MINUTE, 2)
            bar_open = _isoformat(bar_start[rows], times.tz)

            def mid_bar_facts(part: np.ndarray, first: int) -> list[FactColumn]:
                return [FactColumn("bar_progress_pct", percent[part], "%", cfg.mid_bar_min_pct),
                        FactColumn("minutes_to_bar_close", to_close[part], "minutes"),
                        FactColumn("timeframe", tf.label[rows[first]]),
                        FactColumn("bar_open", bar_open[part])]

            blocks.append(IssueBlock("ENTRY_MID_BAR", rows, Severity.LOW, _grouped_evidence(
                (tf.code[rows],), mid_bar_facts)))
        return blocks

    def _volume_blocks(self, ctx: BatchContext, tf: _TimeframeColumns,
                       sessions: _Sessions | None, window: np.ndarray) -> list[IssueBlock]:
        """LOW_RELATIVE_VOLUME (``_volume``, column-wise): the reference is the mean of the
        previous bars, intraday of the same-offset bars of the previous sessions."""
        cfg = self.config
        n = ctx.n
        last_volume = ctx.bars.column("volume")[ctx.bars.stop - 1]
        reference = np.full(n, np.nan)
        count = np.zeros(n, dtype=np.int64)
        rows = np.flatnonzero(~tf.intraday)
        if len(rows):
            reference[rows], count[rows] = _mean_of_previous(ctx.bars.take(rows),
                                                             cfg.relvol_lookback)
        rows = np.flatnonzero(tf.intraday)
        if len(rows):
            assert sessions is not None
            reference[rows] = sessions.reference[window[rows]]
            count[rows] = sessions.same[window[rows]]

        known = (count >= 2) & ~(reference <= 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            relative = last_volume / reference
        fired = known & ~(relative >= cfg.min_relative_volume)
        rows = np.flatnonzero(fired)
        if not len(rows):
            return []

        def volume_facts(part: np.ndarray, first: int) -> list[FactColumn]:
            at = rows[part]
            return [FactColumn("relative_volume", _round_column(relative[at], 4), "ratio",
                               cfg.min_relative_volume),
                    FactColumn("last_bar_volume", last_volume[at], "units"),
                    FactColumn("reference_volume", _round_column(reference[at], 2), "units"),
                    FactColumn("reference_bars", count[at],
                               "sessions" if tf.intraday[rows[first]] else "bars"),
                    FactColumn("min_relative_volume", cfg.min_relative_volume, "ratio")]

        return [IssueBlock("LOW_RELATIVE_VOLUME", rows, Severity.LOW, _grouped_evidence(
            (tf.intraday[rows],), volume_facts))]


# ---------------------------------------------------------------------------- helpers
def _round(value: float) -> float:
    return float(f"{value:.10g}")


def _atr(market: MarketData) -> tuple[float | None, str]:
    atr = market.latest_features.get("atr_14", math.nan)
    if math.isfinite(atr) and atr > 0:
        return float(atr), "ta_features"
    bars = market.bars.tail(ATR_FALLBACK_BARS + 1)
    if len(bars) < 2:
        return None, "none"
    high, low = bars["high"].to_numpy(), bars["low"].to_numpy()
    prev = bars["close"].to_numpy()[:-1]
    true_range = np.maximum(high[1:], prev) - np.minimum(low[1:], prev)
    value = float(true_range.mean())
    return (value, "bars") if value > 0 else (None, "none")


def _location_levels(levels: KeyLevelsSnapshot, pivot_method: str) -> list[_Level]:
    found = []
    for name in ("prior_day_high", "prior_day_low", "rolling_range_high", "rolling_range_low"):
        value = getattr(levels, name)
        if value is not None and math.isfinite(value):
            found.append(_Level(name, value))
    if pivot_method != "none":
        for name, value in levels.pivots.get(pivot_method, {}).items():
            if name != "P" and math.isfinite(value):
                found.append(_Level(f"{pivot_method} pivot {name}", value))
    for level in levels.support_resistance:
        found.append(_Level(f"{level.kind} cluster ({level.touches} touches)", level.price,
                            level.touches))
    return found


def _session_window(bars: pd.DataFrame) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """Return (open, estimated close) of the last bar's session, or None without history."""
    sessions = bars.groupby("session", sort=True).agg(opened=("ts", "min"),
                                                      closed=("ts_close", "max"))
    if len(sessions) < 2:
        return None
    length = (sessions["closed"] - sessions["opened"]).iloc[:-1].median()
    opened = pd.Timestamp(sessions["opened"].iloc[-1])
    return opened, opened + length


def _next_session_open(bars: pd.DataFrame, after: pd.Timestamp) -> pd.Timestamp | None:
    """Return the first session open at or after ``after``, projected from the session opens
    of the window one week later."""
    opens = bars.groupby("session")["ts"].min() + WEEK
    later = opens[opens >= after]
    return pd.Timestamp(later.min()) if len(later) else None


def _projected_bar(bars: pd.DataFrame, as_of: pd.Timestamp
                   ) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """Return the bar forming at ``as_of``, projected from the bars one week earlier."""
    last_ts = pd.Timestamp(bars["ts"].iloc[-1])
    last_close = pd.Timestamp(bars["ts_close"].iloc[-1])
    week = bars[bars["ts"] > last_ts - WEEK]
    for start, end in zip(week["ts"] + WEEK, week["ts_close"] + WEEK, strict=True):
        if start >= last_close and start < as_of < end:
            return pd.Timestamp(start), pd.Timestamp(end)
    return None


def _reference_volume(bars: pd.DataFrame, intraday: bool, lookback: int
                      ) -> tuple[float | None, int, str]:
    """Return the mean volume the last bar is compared with, its number of bars, and the
    unit of that number."""
    if not intraday:
        previous = bars["volume"].iloc[-lookback - 1:-1]
        if len(previous) < 2:
            return None, len(previous), "bars"
        return float(previous.mean()), len(previous), "bars"
    first = bars.groupby("session")["ts"].transform("min")
    offset = bars["ts"] - first
    last_session = bars["session"].iloc[-1]
    same = bars[(offset == offset.iloc[-1]) & (bars["session"] != last_session)]
    same = same.tail(lookback)
    if len(same) < 2:
        return None, len(same), "sessions"
    return float(same["volume"].mean()), len(same), "sessions"


# ---------------------------------------------------------------------------- batch helpers
_NS_PER_MINUTE = 60_000_000_000
_WEEK_NS = 7 * 86_400_000_000_000
_NAT = np.iinfo(np.int64).min
_NO_RANK = np.iinfo(np.int64).max
#: Matrix cells a chunk of the padded (row x level / session) computations may hold.
_CHUNK_CELLS = 2_000_000
#: Exact powers of ten (``10.0 ** k`` through ``pow`` need not be).
_POW10 = np.array([float(10 ** k) for k in range(23)])


def _latest(ctx: BatchContext, name: str) -> np.ndarray:
    """Return the latest feature ``name`` per row (NaN where absent)."""
    if name not in ctx.latest.columns:
        return np.full(ctx.n, np.nan)
    return ctx.latest[name].to_numpy(np.float64, copy=True)


def _round_column(values: np.ndarray, ndigits: int) -> np.ndarray:
    """Return ``round(value, ndigits)`` per value, as Python rounds (half-even, on the exact
    binary value). ``rint(x * 10**n) / 10**n`` equals it unless the product's rounding error
    could cross a half; those few values, and any beyond float precision, Python rounds."""
    x = np.asarray(values, dtype=np.float64)
    scale = _POW10[ndigits]
    with np.errstate(invalid="ignore", over="ignore"):
        y = x * scale
        out = np.rint(y) / scale
        magnitude = np.abs(y)
        sure = (magnitude < 2.0 ** 52) & (np.abs(y - np.floor(y) - 0.5)
                                          > 4 * np.spacing(magnitude))
    finite = np.isfinite(x)
    out[~finite] = x[~finite]
    for i in np.flatnonzero(finite & ~sure):
        out[i] = round(float(x[i]), ndigits)
    return out


def _round_sig_column(values: np.ndarray) -> np.ndarray:
    """Return ``_round(value)`` (10 significant digits) per value; the same exactness rule as
    ``_round_column``, with Python formatting the doubtful values."""
    x = np.asarray(values, dtype=np.float64)
    out = x.copy()
    magnitude = np.abs(x)
    ok = np.isfinite(x) & (magnitude > 0)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        decimals = 9 - np.floor(np.log10(np.where(ok, magnitude, 1.0))).astype(np.int64)
        kept = np.clip(decimals, 0, len(_POW10) - 1)
        scale = _POW10[kept]
        y = magnitude * scale
        sure = (ok & (decimals == kept) & (y >= 1e9) & (y < 1e10)
                & (np.abs(y - np.floor(y) - 0.5) > 4 * np.spacing(y)))
    out[sure] = np.copysign(np.rint(y[sure]) / scale[sure], x[sure])
    for i in np.flatnonzero(ok & ~sure):
        out[i] = _round(float(x[i]))
    return out


def _grouped_evidence(keys: tuple[np.ndarray, ...],
                      facts: Callable[[np.ndarray, int], list[FactColumn]]) -> np.ndarray:
    """Return the evidence JSON of each fired row, built by ``evidence_json`` once per
    distinct combination of ``keys`` (the categorical facts): ``facts(part, first)`` gives the
    facts of the fired rows ``part`` (positions among them), taking its categorical values
    from ``first``, one of them. Written once per group, not once per row."""
    n = len(keys[0])
    combined = np.zeros(n, dtype=np.int64)
    for key in keys:
        codes, uniques = pd.factorize(key)
        combined = combined * len(uniques) + codes
    order = np.argsort(combined, kind="stable")
    bounds = np.flatnonzero(np.diff(combined[order])) + 1
    out = np.empty(n, dtype=object)
    for part in np.split(order, bounds):
        if len(part):
            out[part] = evidence_json(facts(part, int(part[0])), len(part))
    return out


def _medium_beyond(value: np.ndarray, limit: float) -> np.ndarray:
    """Return the severity per row: medium beyond ``limit``, else low."""
    return np.where(value > limit, Severity.MEDIUM.value, Severity.LOW.value).astype(object)


def _percent(elapsed: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Return ``100.0 * elapsed / length`` of two Timedeltas as pandas computes it: the
    product is exact in the Timestamps' unit, so both are scaled down to whole seconds,
    milliseconds or microseconds where they divide evenly before multiplying."""
    elapsed, length = elapsed.copy(), length.copy()
    for factor in (1000, 1000, 1000):
        even = (elapsed % factor == 0) & (length % factor == 0)
        elapsed[even] //= factor
        length[even] //= factor
    return 100.0 * elapsed.astype(np.float64) / length.astype(np.float64)


def _isoformat(ns: np.ndarray, tz: Any) -> np.ndarray:
    """Return ``pd.Timestamp(value, tz=tz).isoformat()`` per UTC nanosecond value."""
    if tz is not None and str(tz) != "UTC":  # the store writes UTC; others by pandas
        return np.array([pd.Timestamp(int(v), tz="UTC").tz_convert(tz).isoformat()
                         for v in ns], dtype=object)
    seconds = np.floor_divide(ns, 1_000_000_000)
    fraction = ns - seconds * 1_000_000_000
    text = np.datetime_as_string(seconds.astype("datetime64[s]")).astype(object)
    for i in np.flatnonzero(fraction):  # sub-second times: rare
        f = int(fraction[i])
        text[i] += f".{f // 1000:06d}" if f % 1000 == 0 else f".{f:09d}"
    return text + ("" if tz is None else "+00:00")


@dataclass(frozen=True, slots=True)
class _TimeframeColumns:
    """Each row's timeframe: whether it is intraday, its nominal length and label."""

    code: np.ndarray  # row -> index into labels
    labels: tuple[str, ...]
    intraday: np.ndarray
    nominal: np.ndarray  # ns
    label: np.ndarray  # object

    @classmethod
    def read(cls, column: pd.Series) -> _TimeframeColumns:
        code, uniques = pd.factorize(column)
        parsed = [Timeframe.parse(v) for v in uniques]
        labels = tuple(str(t) for t in parsed)
        return cls(code=code, labels=labels,
                   intraday=np.array([t.is_intraday for t in parsed], dtype=bool)[code],
                   nominal=np.array([t.nominal.value for t in parsed], dtype=np.int64)[code],
                   label=np.array(labels, dtype=object)[code])


@dataclass(frozen=True, slots=True)
class _BarTimes:
    """The concatenated bars' times as UTC nanoseconds, and sessions as ordered codes."""

    ts: np.ndarray
    ts_close: np.ndarray
    session: np.ndarray  # int64, ordered as the session values; -1 where missing
    unit: int  # nanoseconds per unit of the finer of ts and ts_close (a session length's)
    tz: Any

    @classmethod
    def read(cls, data: pd.DataFrame) -> _BarTimes:
        """Read ``data``'s times (a missing ``session`` column reads as missing sessions:
        intraday rows then go to ``evaluate``)."""
        ts, close = pd.DatetimeIndex(data["ts"]), pd.DatetimeIndex(data["ts_close"])
        session = (pd.factorize(data["session"], sort=True)[0].astype(np.int64)
                   if "session" in data.columns else np.full(len(data), -1, dtype=np.int64))
        return cls(ts=ts.as_unit("ns").asi8, ts_close=close.as_unit("ns").asi8,
                   session=session, tz=ts.tz,
                   unit=min(int(pd.Timedelta(1, unit=u).value) for u in (ts.unit, close.unit)))

    def irregular(self, start: np.ndarray, stop: np.ndarray, intraday: np.ndarray
                  ) -> np.ndarray:
        """Return the rows whose window has a missing time or bars out of time order
        (intraday also: a missing session, or sessions or closes going back)."""
        ts, close, session = self.ts, self.ts_close, self.session
        pairs_end = np.maximum(stop - 1, start)  # pair j is (j, j + 1)
        bad = _count((ts == _NAT) | (close == _NAT), start, stop) > 0
        bad |= _count(ts[1:] <= ts[:-1], start, pairs_end) > 0
        bad |= intraday & ((_count(session < 0, start, stop) > 0) | (_count(
            (close[1:] < close[:-1]) | (session[1:] < session[:-1]), start, pairs_end) > 0))
        return bad


def _count(flags: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Return the number of True flags in [lo, hi) per row."""
    total = np.zeros(len(flags) + 1, dtype=np.int64)
    np.cumsum(flags, out=total[1:])
    return total[hi] - total[lo]


def _chunks(n: int, width: int) -> list[slice]:
    """Return slices of 0..n holding about _CHUNK_CELLS cells of ``width`` each."""
    step = max(1, _CHUNK_CELLS // max(1, width))
    return [slice(i, min(n, i + step)) for i in range(0, n, step)]


def _bars_atr(bars: Windows) -> np.ndarray:
    """Return the mean true range of each window's last ATR_FALLBACK_BARS bars (``_atr``'s
    fallback; NaN with fewer than two bars)."""
    k = ATR_FALLBACK_BARS + 1
    high, low, close = (bars.tail(name, k) for name in ("high", "low", "close"))
    prev = close[:, :-1]
    true_range = np.maximum(high[:, 1:], prev) - np.minimum(low[:, 1:], prev)
    count = np.minimum(bars.lengths, k) - 1
    valid = np.arange(k - 1)[None, :] >= (k - 1 - count)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(valid, true_range, 0.0).sum(axis=1) / count
    mean[count < 1] = np.nan
    return mean


def _mean_of_previous(bars: Windows, lookback: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the mean volume of the ``lookback`` bars before each window's last (pandas'
    mean: NaN skipped) and their number (``_reference_volume`` on daily bars)."""
    volume = bars.tail("volume", lookback + 1)[:, :-1]
    count = np.minimum(bars.lengths - 1, lookback)
    valid = (np.arange(lookback)[None, :] >= (lookback - count)[:, None]) & ~np.isnan(volume)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(valid, volume, 0.0).sum(axis=1) / valid.sum(axis=1)
    return mean, count


# ---------------------------------------------------------------------------- levels
@dataclass(frozen=True, slots=True)
class _Vwaps:
    """One anchor's VWAP per snapshot."""

    has: np.ndarray
    vwap: np.ndarray
    sd: np.ndarray  # upper_1 - vwap
    rounded: np.ndarray  # _round(vwap)


@dataclass(frozen=True, slots=True)
class _LevelTable:
    """The location levels of each distinct snapshot, padded to one width (NaN prices)."""

    code: np.ndarray  # row -> snapshot
    price: np.ndarray  # (snapshots, width)
    rank: np.ndarray  # name's rank in ``names``; _NO_RANK in the padding
    rounded: np.ndarray  # _round(price)
    touches: np.ndarray  # int64, -1 where the level has none
    names: np.ndarray  # object: every level name (and the bar levels'), sorted
    vwaps: dict[str, _Vwaps]

    @classmethod
    def read(cls, ctx: BatchContext, pivot_method: str, anchors: tuple[str, ...],
             extra_names: list[str]) -> _LevelTable:
        snapshots: list[Any] = []

        def number(piece: Any) -> int:
            snapshots.append(piece)
            return len(snapshots) - 1

        code = ctx.piece_values("levels", number, dtype=np.int64, default=-1)
        if (code < 0).any():  # read like a piece of the wrong kind: no levels
            snapshots.append(None)
            code = np.where(code < 0, len(snapshots) - 1, code)
        found = [_location_levels(s, pivot_method) if isinstance(s, KeyLevelsSnapshot) else []
                 for s in snapshots]  # once per distinct snapshot
        flat = [lv for levels in found for lv in levels]
        names = sorted({lv.name for lv in flat} | set(extra_names))
        rank_of = {name: i for i, name in enumerate(names)}
        counts = np.array([len(levels) for levels in found], dtype=np.int64)
        shape = (len(snapshots), int(counts.max()) if len(counts) else 0)
        cell = (np.repeat(np.arange(len(found)), counts),
                np.arange(len(flat)) - np.repeat(np.cumsum(counts) - counts, counts))
        price, rounded = np.full(shape, np.nan), np.full(shape, np.nan)
        rank = np.full(shape, _NO_RANK, dtype=np.int64)
        touches = np.full(shape, -1, dtype=np.int64)
        price[cell] = np.array([lv.price for lv in flat], dtype=np.float64)
        rounded[cell] = _round_sig_column(price[cell])
        rank[cell] = np.array([rank_of[lv.name] for lv in flat], dtype=np.int64)
        touches[cell] = np.array([-1 if lv.touches is None else lv.touches for lv in flat],
                                 dtype=np.int64)
        vwaps = {}
        for anchor in anchors:
            got = [next((v for v in s.anchored_vwaps if v.anchor == anchor), None)
                   if isinstance(s, KeyLevelsSnapshot) else None for s in snapshots]
            vwap = np.array([math.nan if v is None else v.vwap for v in got], dtype=float)
            upper = np.array([math.nan if v is None else v.upper_1 for v in got], dtype=float)
            vwaps[anchor] = _Vwaps(has=np.array([v is not None for v in got], dtype=bool),
                                   vwap=vwap, sd=upper - vwap, rounded=_round_sig_column(vwap))
        return cls(code=code, price=price, rank=rank, rounded=rounded, touches=touches,
                   names=np.array(names, dtype=object), vwaps=vwaps)


@dataclass(frozen=True, slots=True)
class _Picked:
    """The level picked per row (where ``has``): price, name rank, and its table cell."""

    has: np.ndarray
    price: np.ndarray
    rank: np.ndarray
    snapshot_rounded: np.ndarray  # NaN for a bar level
    touches: np.ndarray  # -1: None
    bar: np.ndarray  # a last-bar level (rounded here, not in the table)

    def rounded(self, rows: np.ndarray) -> np.ndarray:
        """Return ``_round(price)`` of ``rows``."""
        out = self.snapshot_rounded[rows].copy()
        bar = self.bar[rows]
        out[bar] = _round_sig_column(self.price[rows][bar])
        return out

    def touches_of(self, row: int) -> int | None:
        """Return the touches of the level picked on ``row`` (None where it has none)."""
        touches = int(self.touches[row])
        return None if touches < 0 else touches


def _nearest_levels(table: _LevelTable, entry: np.ndarray, sign: np.ndarray, atr: np.ndarray,
                    has_atr: np.ndarray, bar_high: np.ndarray, bar_low: np.ndarray,
                    bar_rank: np.ndarray, search_atr: float) -> dict[str, _Picked]:
    """Return the nearest level ahead of each entry (``_location``) and the nearest behind it
    within ``search_atr`` ATR (``_stop``): a masked minimum of the distance over each row's
    levels (its snapshot's, then the last bar's high and low), ties to the smaller name."""
    n = len(entry)
    width = table.price.shape[1] + 2
    out = {side: _Picked(has=np.zeros(n, dtype=bool), price=np.full(n, np.nan),
                         rank=np.zeros(n, dtype=np.int64), snapshot_rounded=np.full(n, np.nan),
                         touches=np.full(n, -1, dtype=np.int64), bar=np.zeros(n, dtype=bool))
           for side in ("ahead", "behind")}
    rows_all = np.flatnonzero(has_atr)
    for part in _chunks(len(rows_all), width):
        rows = rows_all[part]
        code = table.code[rows]
        price = np.concatenate([table.price[code], bar_high[rows, None], bar_low[rows, None]],
                               axis=1)
        rank = np.concatenate([table.rank[code], bar_rank[rows]], axis=1)
        e, s = entry[rows, None], sign[rows, None]
        with np.errstate(invalid="ignore"):
            distance = np.abs(price - e)
            ahead = s * (price - e) >= 0
            behind = (s * (e - price) > 0) & (distance / atr[rows, None] <= search_atr)
        for side, mask in (("ahead", ahead), ("behind", behind)):
            has = mask.any(axis=1)
            nearest = np.where(mask, distance, np.inf).min(axis=1)
            tied = mask & (distance == nearest[:, None])
            column = np.where(tied, rank, _NO_RANK).argmin(axis=1)
            picked, at = out[side], np.arange(len(rows))
            picked.has[rows] = has
            picked.price[rows] = price[at, column]
            picked.rank[rows] = rank[at, column]
            in_table = column < table.price.shape[1]
            cell = np.minimum(column, max(0, table.price.shape[1] - 1))
            if table.price.shape[1]:
                picked.snapshot_rounded[rows] = np.where(in_table, table.rounded[code, cell],
                                                         np.nan)
                picked.touches[rows] = np.where(in_table, table.touches[code, cell], -1)
            picked.bar[rows] = ~in_table
    return out


# ---------------------------------------------------------------------------- sessions
@dataclass(frozen=True, slots=True)
class _Sessions:
    """Per distinct intraday window: what ``_session_window``, ``_next_session_open`` and
    ``_reference_volume`` read from its bars."""

    count: np.ndarray  # sessions in the window
    opened: np.ndarray  # ns: the last session's first bar (count >= 2)
    closes: np.ndarray  # ns: opened + the median length of the earlier sessions
    next_open: np.ndarray  # ns: the first session open + a week at or after ``closes``
    has_next: np.ndarray
    reference: np.ndarray  # mean volume of the same-offset bars of earlier sessions
    same: np.ndarray  # their number (at most the lookback)


def _window_sessions(times: _BarTimes, volume: np.ndarray, start: np.ndarray,
                     stop: np.ndarray, lookback: int) -> _Sessions:
    """Return the session structure of the windows [start, stop) of the concatenated bars.

    A session of a window is a run of bars with one ``session`` value (the irregular check
    guarantees sessions and times ascend in a window); runs are found once over the whole
    data, also cut where time does not ascend (where two windows meet), so a window's
    sessions are the run holding its first bar, cut at it, and the runs starting inside it.
    A session's length is its last close minus its first open; a bar's offset is its open
    minus its session's first open, looked up in one table of (offset, run) pairs.
    """
    ts, close = times.ts, times.ts_close
    n_bars = len(ts)
    starts_run = np.ones(n_bars, dtype=bool)
    starts_run[1:] = (times.session[1:] != times.session[:-1]) | (ts[1:] <= ts[:-1])
    run_start = np.flatnonzero(starts_run)
    n_runs = len(run_start)
    run_length = close[np.append(run_start[1:], n_bars) - 1] - ts[run_start]
    run_of = np.cumsum(starts_run) - 1
    a = run_of[start] + 1  # the first run starting inside the window
    b = run_of[stop - 1] + 1  # runs a..b-1 start inside it
    count = 1 + b - a
    several = count >= 2
    u = len(start)
    opened = np.where(several, ts[run_start[np.maximum(b - 1, 0)]], ts[start])

    # the median length of the sessions before the last (pandas truncates it to the unit)
    median = np.zeros(u, dtype=np.int64)
    windows = np.flatnonzero(several)
    first_length = close[run_start[np.minimum(a, n_runs - 1)] - 1] - ts[start]
    lengths = count[windows] - 1
    for part in _chunks(len(windows), int(lengths.max()) if len(windows) else 0):
        at, m = windows[part], lengths[part]
        columns = np.arange(int(m.max()))[None, :]
        table = run_length[np.clip(a[at, None] + columns - 1, 0, n_runs - 1)] // times.unit
        table[:, 0] = first_length[at] // times.unit
        table[columns >= m[:, None]] = np.iinfo(np.int64).max
        table.sort(axis=1)
        row = np.arange(len(at))
        middle = (table[row, (m - 1) // 2].astype(np.float64)
                  + table[row, m // 2].astype(np.float64)) / 2.0
        median[at] = middle.astype(np.int64) * times.unit
    closes = opened + median

    # the first session open, a week on, at or after the estimated close
    after = closes - _WEEK_NS
    first_ok = ts[start] >= after
    lo, hi = a.copy(), b.copy()
    while (searching := lo < hi).any():
        mid = (lo + hi) // 2
        early = ts[run_start[np.minimum(mid, n_runs - 1)]] < after
        lo = np.where(searching & early, mid + 1, lo)
        hi = np.where(searching & ~early, mid, hi)
    has_next = several & (first_ok | (lo < b))
    next_open = np.where(first_ok, ts[start], ts[run_start[np.minimum(lo, n_runs - 1)]])
    next_open = np.where(has_next, next_open + _WEEK_NS, _NAT)

    # same-offset bars of the sessions before the last, the last ``lookback`` of them
    offsets, offset_code = np.unique(ts - ts[run_start[run_of]], return_inverse=True)
    key = offset_code.astype(np.int64) * n_runs + run_of
    order = np.argsort(key, kind="stable")
    keys = key[order]
    offset = ts[stop - 1] - opened  # with several sessions: the last bar's offset in its run
    code = offset_code[stop - 1].astype(np.int64)
    lo = np.searchsorted(keys, code * n_runs + a)
    full = np.where(several, np.searchsorted(keys, code * n_runs + b - 1) - lo, 0)
    hi = lo + full
    # the window's first session is cut at its start: offsets there count from ts[start]
    first_offset = offset + ts[start] - ts[run_start[a - 1]]
    first_code = np.minimum(np.searchsorted(offsets, first_offset), len(offsets) - 1)
    first_key = first_code * n_runs + a - 1
    at_first = np.minimum(np.searchsorted(keys, first_key), len(keys) - 1)
    use_first = (several & (offsets[first_code] == first_offset) & (keys[at_first] == first_key)
                 & (full < lookback))
    taken = np.minimum(full, lookback)
    same = taken + use_first
    reference = np.full(u, np.nan)
    for part in _chunks(u, lookback):
        j = np.arange(lookback)[None, :]
        shift = use_first[part, None].astype(np.int64)
        position = hi[part, None] - taken[part, None] + j - shift
        bar = order[np.clip(position, 0, len(order) - 1)]
        bar = np.where((j == 0) & (shift == 1), order[at_first[part], None], bar)
        values = volume[bar]
        valid = (j < same[part, None]) & ~np.isnan(values)
        with np.errstate(invalid="ignore", divide="ignore"):
            reference[part] = (np.where(valid, values, 0.0).sum(axis=1)
                               / valid.sum(axis=1))
    return _Sessions(count=count, opened=opened, closes=closes, next_open=next_open,
                     has_next=has_next, reference=reference, same=same)


def _projected_bars(times: _BarTimes, start: np.ndarray, stop: np.ndarray, as_of: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (found, open, close) of the bar forming at ``as_of`` per window, projected from
    the bars of its last week (``_projected_bar``, column-wise)."""
    last_ts = times.ts[stop - 1]
    last_close = times.ts_close[stop - 1]
    longest = int((stop - start).max())
    k = min(8, longest)
    while True:  # widen until every window's last week fits in the last k bars
        index = stop[:, None] - k + np.arange(k)[None, :]
        valid = index >= start[:, None]
        index = np.where(valid, index, 0)
        in_week = valid & (times.ts[index] > (last_ts - _WEEK_NS)[:, None])
        if k >= longest or not in_week[:, 0].any():
            break
        k = min(2 * k, longest)
    opens = times.ts[index] + _WEEK_NS
    closes = times.ts_close[index] + _WEEK_NS
    t = as_of[:, None]
    match = in_week & (opens >= last_close[:, None]) & (opens < t) & (t < closes)
    column = match.argmax(axis=1)
    row = np.arange(len(start))
    return match.any(axis=1), opens[row, column], closes[row, column]
