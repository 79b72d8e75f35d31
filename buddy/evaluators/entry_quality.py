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
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

from buddy.config import ModuleConfig, param
from buddy.context.pack import ContextPack, MarketData
from buddy.context.pieces import KeyLevelsSnapshot
from buddy.domain import EvaluationResult, Fact, Issue, Severity, Side, TradeIntent
from buddy.evaluators.base import Evaluator, IssueTemplate
from buddy.evaluators.registry import register
from buddy.evidence import round_to_tick

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
