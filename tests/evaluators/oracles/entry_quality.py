"""EntryQuality's rules as a plain loop over one intent and its pack: the oracle the column
form (``EntryQualityEvaluator.evaluate_batch``) is checked against.

``scan(intent, pack, config)`` returns ``(issues, explain)``: each issue as (code, severity,
{fact name: (value, unit)}) in the module's order, evidence and action facts together, and
the explain facts by name (a check that did not run is absent). Values are unrounded; times
are ISO 8601 in UTC. Windows are assumed in time order (the store's always are).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from buddy.context.pack import ContextPack, MarketData
from buddy.context.pieces import KeyLevelsSnapshot
from buddy.domain import Severity, Side, TradeIntent
from buddy.evaluators.entry_quality import EntryQualityConfig
from buddy.evidence import round_to_tick
from buddy.levels.consolidate import ATR_FALLBACK_BARS, consolidate

Facts = dict[str, tuple[Any, str]]
Issue = tuple[str, Severity, Facts]
WEEK = pd.Timedelta(days=7)
MINUTE = pd.Timedelta(minutes=1)


def scan(intent: TradeIntent, ctx: ContextPack, cfg: EntryQualityConfig
         ) -> tuple[list[Issue], dict[str, Any]]:
    """Return the issues and explain facts of ``intent`` against ``ctx``."""
    market = ctx.market
    assert market is not None
    levels = ctx.levels if isinstance(ctx.levels, KeyLevelsSnapshot) else None
    atr, source = _atr(market)
    entry, stop = intent.proposed_entry, intent.proposed_stop
    sign = 1 if intent.side is Side.LONG else -1
    tick = ctx.instrument.tick_size

    def on_tick(price: float, against_risk: bool) -> float:
        up = (sign < 0) == against_risk
        return round_to_tick(price, tick, direction="up" if up else "down")

    issues: list[Issue] = []
    explain: dict[str, Any] = {"atr_14": atr, "atr_source": source}
    if atr:
        found = [] if levels is None else _strong_levels(levels, atr, cfg)
        ahead = [lv for lv in found if sign * (lv[1] - entry) >= 0]
        if ahead:
            name, price, touches, strength = min(ahead,
                                                 key=lambda lv: (abs(lv[1] - entry), lv[0]))
            distance = round(abs(price - entry) / atr, 4)
            explain["nearest_level_ahead_atr"] = distance
            if distance < cfg.near_level_atr:
                pullback = on_tick(price - sign * cfg.near_level_atr * atr, True)
                issues.append((
                    "ENTRY_UNDER_RESISTANCE" if sign > 0 else "ENTRY_OVER_SUPPORT",
                    Severity.MEDIUM, {
                        "entry": (entry, "price"), "level_name": (name, ""),
                        "level_price": (price, "price"),
                        "distance_atr": (distance, "ATR"),
                        "near_level_atr": (cfg.near_level_atr, "ATR"),
                        "touches": (touches, "touches"),
                        "level_strength": (round(strength, 2), "strength"),
                        "atr_14": (atr, "price"),
                        "confirm_price": (on_tick(price + sign * cfg.stop_buffer_atr * atr,
                                                  False), "price"),
                        "pullback_entry": (pullback if pullback > 0 else None, "price")}))
        behind = [lv for lv in found if sign * (entry - lv[1]) > 0
                  and abs(entry - lv[1]) / atr <= cfg.stop_level_search_atr]
        if stop is not None and sign * (entry - stop) > 0 and behind:
            name, price, _, _ = min(behind, key=lambda lv: (abs(entry - lv[1]), lv[0]))
            beyond = sign * (price - stop) / atr
            explain["stop_beyond_level_atr"] = beyond
            if beyond < cfg.stop_buffer_atr - 1e-9:
                suggested = on_tick(price - sign * cfg.stop_buffer_atr * atr, True)
                issues.append(("STOP_NOT_BEYOND_LEVEL", Severity.MEDIUM, {
                    "stop": (stop, "price"), "entry": (entry, "price"),
                    "level_name": (name, ""), "level_price": (price, "price"),
                    "stop_beyond_level_atr": (beyond, "ATR"),
                    "stop_level_gap_atr": (abs(beyond), "ATR"),
                    "stop_side": ("beyond" if beyond >= 0 else "inside", ""),
                    "stop_buffer_atr": (cfg.stop_buffer_atr, "ATR"), "atr_14": (atr, "price"),
                    "suggested_stop": (suggested if suggested > 0 else None, "price")}))
        ema = market.latest_features.get("ema_20", math.nan)
        if math.isfinite(ema):
            extension = sign * (entry - ema) / atr
            explain["ema_extension_atr"] = extension
            limit = cfg.max_ema_extension_atr
            if extension > limit:
                issues.append(("EXTENDED_FROM_EMA", Severity.MEDIUM if extension > 1.5 * limit
                               else Severity.LOW, {
                                   "entry": (entry, "price"), "ema_20": (ema, "price"),
                                   "ema_extension_atr": (extension, "ATR"),
                                   "max_ema_extension_atr": (limit, "ATR"),
                                   "atr_14": (atr, "price"),
                                   "suggested_entry": (on_tick(ema + sign * limit * atr, True),
                                                       "price")}))
        anchor = cfg.vwap_anchor
        if anchor == "auto":
            anchor = "session" if ctx.timeframe.is_intraday else "month"
        vwap = None if levels is None else next(
            (v for v in levels.anchored_vwaps if v.anchor == anchor), None)
        if vwap is not None:
            extension = sign * (entry - vwap.vwap) / atr
            explain["vwap_extension_atr"] = extension
            limit = cfg.max_vwap_extension_atr
            if extension > limit:
                sd = vwap.upper_1 - vwap.vwap
                issues.append(("EXTENDED_FROM_VWAP", Severity.MEDIUM if extension > 1.5 * limit
                               else Severity.LOW, {
                                   "entry": (entry, "price"), "vwap_anchor": (anchor, ""),
                                   "vwap": (vwap.vwap, "price"),
                                   "vwap_extension_atr": (extension, "ATR"),
                                   "vwap_extension_sd": (
                                       sign * (entry - vwap.vwap) / sd if sd > 0 else None,
                                       "sd"),
                                   "max_vwap_extension_atr": (limit, "ATR"),
                                   "atr_14": (atr, "price"),
                                   "suggested_entry": (on_tick(vwap.vwap + sign * limit * atr,
                                                               True), "price")}))
        last = market.bars.iloc[-1]
        high, low = float(last["high"]), float(last["low"])
        width = (high - low) / atr
        explain["last_bar_range_atr"] = width
        if width >= cfg.wide_range_atr:
            issues.append(("WIDE_RANGE_BAR", Severity.LOW, {
                "last_bar_range_atr": (width, "ATR"), "last_bar_high": (high, "price"),
                "last_bar_low": (low, "price"), "wide_range_atr": (cfg.wide_range_atr, "ATR"),
                "atr_14": (atr, "price"),
                "suggested_entry": (on_tick((high + low) / 2.0, True), "price")}))
    limit_price = round_to_tick(entry, tick)
    if market.sessions_since_last_bar == 0:
        issues += _timing(intent, ctx, market, cfg, limit_price, explain)
    issues += _volume(ctx, market, cfg, limit_price, explain)
    return issues, explain


def _timing(intent: TradeIntent, ctx: ContextPack, market: MarketData,
            cfg: EntryQualityConfig, limit_price: float, explain: dict[str, Any]
            ) -> list[Issue]:
    bars = market.bars
    as_of = pd.Timestamp(ctx.as_of)
    last_close = pd.Timestamp(bars["ts_close"].iloc[-1])
    nominal = ctx.timeframe.nominal
    issues: list[Issue] = []
    forming = None
    if ctx.timeframe.is_intraday:
        sessions = bars.groupby("session", sort=True).agg(opened=("ts", "min"),
                                                          closed=("ts_close", "max"))
        if len(sessions) < 2:
            return []
        opened = pd.Timestamp(sessions["opened"].iloc[-1])
        closes = opened + (sessions["closed"] - sessions["opened"]).iloc[:-1].median()
        if as_of >= closes:  # shut: an order fills at the open projected from a week ago
            later = sessions["opened"] + WEEK
            later = later[later >= closes]
            next_open = pd.Timestamp(later.min()) if len(later) else None
            edge, minutes = "open", 0.0
            if next_open is not None and as_of >= next_open:
                closes, opened = next_open + (closes - opened), next_open
                minutes = (as_of - opened) / MINUTE
                if as_of < opened + nominal:
                    forming = (opened, opened + nominal)
        else:
            since_open, to_close = (as_of - opened) / MINUTE, (closes - as_of) / MINUTE
            edge, minutes = (("open", since_open) if since_open <= to_close
                             else ("close", to_close))
            if as_of > last_close:
                forming = (last_close, last_close + nominal)
        explain["minutes_from_session_edge"] = minutes
        if minutes < cfg.session_edge_minutes:
            issues.append(("ENTRY_AT_SESSION_EDGE", Severity.LOW, {
                "minutes_from_edge": (minutes, "minutes"), "session_edge": (edge, ""),
                "session_edge_minutes": (cfg.session_edge_minutes, "minutes"),
                "session_open": (_utc(opened), ""), "session_close_estimate": (_utc(closes), ""),
                "limit_price": (limit_price, "price")}))
    elif as_of > last_close:
        week = bars[bars["ts"] > bars["ts"].iloc[-1] - WEEK]
        for start, end in zip(week["ts"] + WEEK, week["ts_close"] + WEEK, strict=True):
            if start >= last_close and start < as_of < end:
                forming = (pd.Timestamp(start), pd.Timestamp(end))
                break
    if forming is None:
        return issues
    start, end = forming
    progress = 100.0 * (as_of - start) / (end - start)
    explain["bar_progress_pct"] = progress
    if cfg.mid_bar_min_pct <= progress < 100.0:
        issues.append(("ENTRY_MID_BAR", Severity.LOW, {
            "bar_progress_pct": (progress, "%"),
            "minutes_to_bar_close": ((end - as_of) / MINUTE, "minutes"),
            "timeframe": (str(ctx.timeframe), ""), "bar_open": (_utc(start), ""),
            "limit_price": (limit_price, "price")}))
    return issues


def _volume(ctx: ContextPack, market: MarketData, cfg: EntryQualityConfig,
            limit_price: float, explain: dict[str, Any]) -> list[Issue]:
    bars = market.bars
    if ctx.timeframe.is_intraday:
        offset = bars["ts"] - bars.groupby("session")["ts"].transform("min")
        previous = bars[(offset == offset.iloc[-1])
                        & (bars["session"] != bars["session"].iloc[-1])].tail(cfg.relvol_lookback)
    else:
        previous = bars.iloc[-cfg.relvol_lookback - 1:-1]
    reference = float(previous["volume"].mean()) if len(previous) >= 2 else math.nan
    volume = float(bars["volume"].iloc[-1])
    relative = volume / reference if reference > 0 else math.nan
    if not math.isfinite(relative):  # a missing volume is not checked
        return []
    explain["relative_volume"] = relative
    if relative >= cfg.min_relative_volume:
        return []
    return [("LOW_RELATIVE_VOLUME", Severity.LOW, {
        "relative_volume": (relative, "ratio"), "last_bar_volume": (volume, "units"),
        "reference_volume": (reference, "units"), "reference_bars": (len(previous), "bars"),
        "min_relative_volume": (cfg.min_relative_volume, "ratio"),
        "limit_price": (limit_price, "price")})]


def _atr(market: MarketData) -> tuple[float | None, str]:
    atr = market.latest_features.get("atr_14", math.nan)
    if math.isfinite(atr) and atr > 0:
        return float(atr), "ta_features"
    bars = market.bars.tail(ATR_FALLBACK_BARS + 1)
    if len(bars) < 2:
        return None, "none"
    high, low = bars["high"].to_numpy(), bars["low"].to_numpy()
    prev = bars["close"].to_numpy()[:-1]
    value = float((np.maximum(high[1:], prev) - np.minimum(low[1:], prev)).mean())
    return (value, "bars") if value > 0 else (None, "none")


def _strong_levels(levels: KeyLevelsSnapshot, atr: float, cfg: EntryQualityConfig
                   ) -> list[tuple[str, float, int | None, float]]:
    """Return (name, price, touches or None, strength) of the consolidated levels of strength
    at least ``min_level_strength``."""
    return [(lv.name, lv.price, lv.touches or None, lv.strength)
            for lv in consolidate(levels, atr, pivot_method=cfg.pivot_method,
                                  merge_atr=cfg.level_merge_atr)
            if lv.strength >= cfg.min_level_strength - 1e-9]


def _utc(t: pd.Timestamp) -> str:
    return pd.Timestamp(t).tz_convert("UTC").isoformat()
