"""The missing-scanner's rules as a plain loop over one intent and its pack: the oracle the
column form (``MissingScannerEvaluator.evaluate_batch``) is checked against.

``scan(intent, pack, config)`` returns ``(issues, explain)``: each issue as (code, severity,
{fact name: (value, unit)}) in the module's order, and the explain facts by name. Times are
ISO 8601 in UTC; the liquidity of a window whose sessions or times are missing or out of order
is not checked.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from buddy.context.pack import ContextPack
from buddy.context.pieces import KeyLevelsSnapshot
from buddy.domain import Severity, TradeIntent
from buddy.evaluators.missing_scanner import (
    NEWS_KINDS,
    SESSIONS_PER_WEEK,
    VOLUME_IN_ORDER_UNITS,
    ExposureHook,
    MissingScannerConfig,
)
from buddy.events.model import ScheduleContext
from buddy.levels.consolidate import consolidate
from buddy.timeframes import Timeframe

Facts = dict[str, tuple[Any, str]]
Issue = tuple[str, Severity, Facts]


def scan(intent: TradeIntent, pack: ContextPack, cfg: MissingScannerConfig
         ) -> tuple[list[Issue], dict[str, Any]]:
    """Return the issues and explain facts of ``intent`` against ``pack``."""
    schedule, inst = pack.schedule, pack.instrument
    assert isinstance(schedule, ScheduleContext)
    bars = intent.holding_horizon or cfg.default_horizon_bars
    end, beyond = schedule.horizon_end(intent.timeframe, bars)
    end_text = _utc(end)
    horizon: Facts = {"horizon_bars": (bars, "bars"), "horizon_end": (end_text, "")}
    issues: list[Issue] = []

    def inside(*kinds: str) -> list[Any]:
        return sorted(schedule.events_between(schedule.as_of, end, kinds), key=lambda e: e.ts)

    news = inside(*NEWS_KINDS)
    if news:
        own = [e for e in news if e.kind == "earnings" and e.symbol == intent.symbol]
        first = news[0]
        issues.append(("EVENT_WITHIN_HORIZON", Severity.MEDIUM if own else Severity.LOW, {
            "n_events": (len(news), ""), "n_earnings": (len(own), ""),
            "n_macro": (sum(e.kind == "macro" for e in news), ""),
            "next_event": (first.title, ""), "next_event_kind": (first.kind, ""),
            "next_event_ts": (_utc(first.ts), ""),
            "sessions_to_next_event": (schedule.sessions_before(first.ts), "sessions"),
            **horizon}))
    if inst.asset_class == "equity" and schedule.earnings_dates_known == 0:
        issues.append(("EARNINGS_DATES_UNKNOWN", Severity.INFO, {
            "earnings_dates_known": (0, ""), "symbol": (intent.symbol, ""), **horizon}))
    holidays = inside("holiday")
    if holidays and (intent.timeframe.is_intraday or schedule.sessions_before(holidays[0].ts)
                     < cfg.holiday_within_sessions):
        first = holidays[0]
        issues.append(("HOLIDAY_WITHIN_HORIZON", Severity.LOW, {
            "n_holidays": (len(holidays), ""),
            "first_holiday": (f"{_local(first.ts, inst.timezone):%Y-%m-%d}", ""),
            "sessions_to_first_holiday": (schedule.sessions_before(first.ts), "sessions"),
            "holiday_title": (first.title, ""), **horizon}))
    early = inside("early_close")
    if early:
        local = _local(early[0].ts, inst.timezone)
        issues.append(("EARLY_CLOSE_WITHIN_HORIZON",
                       Severity.LOW if intent.timeframe.is_intraday else Severity.INFO, {
            "n_early_closes": (len(early), ""), "first_early_close": (f"{local:%Y-%m-%d}", ""),
            "early_close_time": (f"{local:%H:%M} {inst.timezone}", ""),
            "sessions_to_early_close": (schedule.sessions_before(early[0].ts), "sessions"),
            **horizon}))
    liquidity_checked = _liquidity(intent, pack, cfg, issues)
    levels_checked = _levels(intent, pack, cfg, issues)
    _exposure(intent, pack, issues)
    explain = {"horizon_bars": bars, "horizon_end": end_text,
               "horizon_source": "intent" if intent.holding_horizon else "default",
               "horizon_beyond_known_sessions": beyond,
               "n_events_in_horizon": len(schedule.events_between(schedule.as_of, end)),
               "levels_checked": levels_checked,
               "exposure_checked": isinstance(pack.portfolio, ExposureHook),
               "liquidity_checked": liquidity_checked}
    return issues, explain


def _liquidity(intent: TradeIntent, pack: ContextPack, cfg: MissingScannerConfig,
               issues: list[Issue]) -> bool:
    inst, market = pack.instrument, pack.market
    assert market is not None
    bars = market.bars
    if inst.asset_class not in VOLUME_IN_ORDER_UNITS or bars.empty:
        return False
    session = bars["session"]
    if (session.isna().any() or bars["ts"].isna().any() or bars["ts_close"].isna().any()
            or not session.is_monotonic_increasing or not bars["ts"].is_monotonic_increasing
            or bars["ts"].duplicated().any() or not bars["ts_close"].is_monotonic_increasing):
        return False
    value = bars["close"].astype(float) * bars["volume"].astype(float)
    per_session = value.groupby(session.to_numpy(), sort=True).sum()
    if pack.timeframe is Timeframe.W1:
        per_session = per_session / SESSIONS_PER_WEEK
    recent = per_session.tail(cfg.liquidity_sessions)
    median = float(recent.median())
    if median < cfg.min_session_value:
        issues.append(("LOW_LIQUIDITY",
                       Severity.MEDIUM if median < cfg.min_session_value / 10 else Severity.LOW,
                       {"median_session_value": (round(median, 2), inst.currency),
                        "min_session_value": (cfg.min_session_value, inst.currency),
                        "sessions_used": (len(recent), "sessions"),
                        "symbol": (intent.symbol, "")}))
    return True


def _levels(intent: TradeIntent, pack: ContextPack, cfg: MissingScannerConfig,
            issues: list[Issue]) -> bool:
    levels, entry = pack.levels, intent.proposed_entry
    reason = None
    if levels is None:
        reason = f"levels missing ({pack.missing.get('levels', 'not provided')})"
    elif not isinstance(levels, KeyLevelsSnapshot):
        reason = f"the levels piece is a {type(levels).__name__}, not a KeyLevelsSnapshot"
    elif intent.proposed_target is None:
        reason = "the intent has no target"
    if reason is not None:
        issues.append(("LEVELS_NOT_CHECKED", Severity.INFO,
                       {"proposed_entry": (entry, "price"), "reason": (reason, "")}))
        return False
    assert isinstance(levels, KeyLevelsSnapshot) and intent.proposed_target is not None
    lo, hi = sorted((entry, intent.proposed_target))
    atr = _atr(pack)
    strong = [(lv.name, lv.price, lv.strength)
              for lv in consolidate(levels, atr, pivot_method=cfg.level_pivot_method,
                                    merge_atr=cfg.level_merge_atr)
              if lv.strength >= cfg.min_level_strength - 1e-9]
    between = [lv for lv in strong if lo < lv[1] < hi]
    if between:
        name, price, strength = min(between, key=lambda lv: (abs(lv[1] - entry), lv[0]))
        listed = sorted(between, key=lambda lv: lv[1])
        stop = intent.stop_distance
        issues.append(("LEVELS_BETWEEN_ENTRY_AND_TARGET",
                       Severity.MEDIUM if len(between) >= cfg.levels_medium_count
                       else Severity.LOW, {
            "n_levels": (len(between), ""), "proposed_entry": (entry, "price"),
            "proposed_target": (intent.proposed_target, "price"),
            "nearest_level": (name, ""), "nearest_level_price": (price, "price"),
            "levels": (", ".join(f"{k} {v:g}" for k, v, _ in listed), ""),
            "nearest_level_r": (round(abs(price - entry) / stop, 2) if stop else None, "R"),
            "nearest_level_strength": (round(strength, 2), "strength")}))
    return True


def _atr(pack: ContextPack) -> float:
    """Return the ATR the levels are merged in: atr_14 of the last bar, else the mean true
    range of the last 14 bars (NaN without two bars)."""
    market = pack.market
    assert market is not None
    atr = market.latest_features.get("atr_14", math.nan)
    if math.isfinite(atr) and atr > 0:
        return float(atr)
    bars = market.bars.tail(15)
    if len(bars) < 2:
        return math.nan
    prev = bars["close"].shift(1).iloc[1:]
    tr = (bars["high"].iloc[1:].combine(prev, max) - bars["low"].iloc[1:].combine(prev, min))
    return float(tr.mean()) if float(tr.mean()) > 0 else math.nan


def _exposure(intent: TradeIntent, pack: ContextPack, issues: list[Issue]) -> None:
    portfolio, inst = pack.portfolio, pack.instrument
    if not isinstance(portfolio, ExposureHook):
        reason = (f"portfolio missing ({pack.missing.get('portfolio', 'not provided')})"
                  if portfolio is None else
                  f"the portfolio piece ({type(portfolio).__name__}) offers no position_in()")
        notional = intent.proposed_entry * intent.proposed_size * inst.contract_multiplier
        issues.append(("EXPOSURE_NOT_CHECKED", Severity.INFO, {
            "notional": (round(notional, 2), inst.currency), "reason": (reason, "")}))
        return
    held = float(portfolio.position_in(intent.symbol))
    if held:
        units = "shares" if inst.asset_class == "equity" else "units"
        issues.append(("EXISTING_POSITION", Severity.LOW, {
            "position_qty": (held, units), "proposed_size": (intent.proposed_size, units),
            "combined_qty": (held + intent.side.sign * intent.proposed_size, units),
            "same_direction": (held * intent.side.sign > 0, ""),
            "symbol": (intent.symbol, ""), "side": (intent.side.value, "")}))


def _utc(value: datetime) -> str:
    return pd.Timestamp(value).tz_convert(UTC).to_pydatetime().isoformat()


def _local(value: datetime, zone: str) -> pd.Timestamp:
    return pd.Timestamp(value).tz_convert(zone)
