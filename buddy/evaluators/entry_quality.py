"""EntryQuality: where, when and into what kind of bar is the trade entered?

Location (against the ``levels`` piece, on the as-of price basis)
    A long entered within ``near_level_atr`` ATR under a strong level above it (a short just
    over one below it), and a stop that does not sit at least ``stop_buffer_atr`` ATR beyond
    the nearest strong level behind the entry (within ``stop_level_search_atr`` ATR of it).
    The levels are the snapshot's consolidated ones (``buddy.levels.consolidate``: prior day,
    rolling range, the ``pivot_method`` family, anchored VWAPs and support/resistance
    clusters, merged within ``level_merge_atr`` ATR), of strength ``min_level_strength`` or
    more (confluence of sources plus recent swing touches): a lone pivot or VWAP line is not
    a level a long stalls under. The snapshot's prior day is the last closed bar on daily and
    weekly bars (the levels in force for the session after it). The search is
    ``buddy.levels.nearest``; ties in distance go to the alphabetically first name.
Extension
    The entry's distance from EMA(20) and from an anchored VWAP (session on intraday bars,
    month otherwise, unless configured), in ATR(14), in the trade's direction.
Timing (read from the pack's bars only, so the module stays pure)
    Intraday: the session in force is the last bar's ``session``; it opened at the first bar of
    that session in the window and lasts the median length of the earlier sessions in the
    window (``buddy.data.sessions``). After its estimated close, the next session opens at the
    time projected from the session opens one week earlier (so a daylight-saving change shifts
    it by an hour for a week); while the market is shut an order fills at that open. An entry
    at ``as_of`` within ``session_edge_minutes`` of the open or close is flagged. A mid-bar
    entry is one made while a bar is forming: intraday, inside the session after the last bar
    closed; on daily and weekly bars, inside the bar projected from the bars one week earlier
    (the same weekday and hours; holidays are not known, so a holiday reads like a normal
    day). Both timing checks are skipped when calendar sessions closed after the last bar
    (stale data is the data-quality module's finding) and on windows whose times or sessions
    are out of order.
Microstructure proxies
    The last closed bar's high-low range in ATR (a wide-range bar), and its volume relative to
    the mean of the previous ``relvol_lookback`` bars (intraday: of the bars at the same offset
    from their session's first bar in the previous ``relvol_lookback`` sessions, since intraday
    volume follows the clock). A missing volume is not checked.

ATR is ``atr_14`` of the last bar's features, else the mean true range of the last 14 bars.
Suggested prices are on the instrument's tick grid, rounded away from the risk.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from buddy.batch.columns import choose, iso_utc, repeated, utc_ns
from buddy.batch.result import BatchResult, IssueBlock
from buddy.config import ModuleConfig, param
from buddy.data.sessions import (
    NAT,
    WEEK_NS,
    SessionRuns,
    WindowSessions,
    count_in,
    disordered,
    same_offset_mean,
    session_codes,
    window_sessions,
)
from buddy.domain import Severity
from buddy.evaluators.base import Code, Evaluator, Evidence, severity_where
from buddy.evaluators.registry import register
from buddy.evidence import to_tick
from buddy.levels.columns import anchored_vwaps, level_pieces
from buddy.levels.consolidate import (
    DEFAULT_MERGE_ATR,
    DEFAULT_MIN_STRENGTH,
    DEFAULT_PIVOT_METHOD,
    PIVOT_METHODS,
    LevelTable,
    level_table,
    row_atr,
)
from buddy.levels.nearest import nearest_level
from buddy.timeframes import Timeframe

if TYPE_CHECKING:
    from buddy.batch.context import BatchContext, Windows

_NS_PER_MINUTE = 60_000_000_000
#: Matrix cells one chunk of the (row x level) search may hold.
_CHUNK_CELLS = 2_000_000


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
    pivot_method: str = param(DEFAULT_PIVOT_METHOD, choices=PIVOT_METHODS,
                              doc="pivot family whose levels count as levels ('none': none)")
    min_level_strength: float = param(DEFAULT_MIN_STRENGTH, lo=0.0, hi=50.0, unit="strength",
                                      doc="strength a consolidated level needs to count "
                                          "(buddy.levels.consolidate: confluence of sources "
                                          "plus recent swing touches)")
    level_merge_atr: float = param(DEFAULT_MERGE_ATR, lo=0.0, hi=5.0, unit="ATR",
                                   doc="levels closer than this are merged into one")
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


#: Decimals of computed prices in evidence (levels, EMA, VWAP: split adjustment leaves
#: float noise in the last digits).
_PRICE_DIGITS = 6
_LOCATION_EVIDENCE = (Evidence("entry", "price"), Evidence("level_name"),
                      Evidence("level_price", "price", _PRICE_DIGITS),
                      Evidence("distance_atr", "ATR", 4, threshold="near_level_atr"),
                      Evidence("near_level_atr", "ATR"), Evidence("touches", "touches"),
                      Evidence("level_strength", "strength", 2,
                               threshold="min_level_strength"),
                      Evidence("atr_14", "price"))
_LOCATION_ACTION = (Evidence("confirm_price", "price"), Evidence("pullback_entry", "price"))


@register
class EntryQualityEvaluator(Evaluator[EntryQualityConfig]):
    """Check location against key levels, extension, timing and microstructure of the entry."""

    name = "entry_quality"
    version = "2.0.0"
    requires = frozenset({"market", "levels"})
    config_cls = EntryQualityConfig
    codes: ClassVar = {
        "ENTRY_UNDER_RESISTANCE": Code(
            "Long entered just under a level",
            "The entry at {entry} sits {distance_atr} under {level_name} at {level_price} "
            "(threshold {near_level_atr}).",
            "Wait for a close above {confirm_price}, or enter at {pullback_entry} or lower, "
            "where the level is at least {near_level_atr} away.",
            evidence=_LOCATION_EVIDENCE, action="WAIT_FOR_CLOSE_BEYOND_OR_PULLBACK",
            harm="the move toward the target stalls at the strong level just above the entry",
            measure="target_reached",
            action_facts=_LOCATION_ACTION),
        "ENTRY_OVER_SUPPORT": Code(
            "Short entered just over a level",
            "The entry at {entry} sits {distance_atr} over {level_name} at {level_price} "
            "(threshold {near_level_atr}).",
            "Wait for a close below {confirm_price}, or enter at {pullback_entry} or higher, "
            "where the level is at least {near_level_atr} away.",
            evidence=_LOCATION_EVIDENCE, action="WAIT_FOR_CLOSE_BEYOND_OR_PULLBACK",
            harm="the move toward the target stalls at the strong level just below the entry",
            measure="target_reached",
            action_facts=_LOCATION_ACTION),
        "STOP_NOT_BEYOND_LEVEL": Code(
            "Stop not beyond the nearest level",
            "The stop at {stop} sits {stop_level_gap_atr} {stop_side} {level_name} at "
            "{level_price}, the nearest level behind the entry (wanted: at least "
            "{stop_buffer_atr} beyond it).",
            "Place the stop at {suggested_stop}, beyond the level, and resize to keep the "
            "same risk.",
            evidence=(Evidence("stop", "price"), Evidence("entry", "price"),
                      Evidence("level_name"), Evidence("level_price", "price", _PRICE_DIGITS),
                      Evidence("stop_beyond_level_atr", "ATR", 4, threshold="stop_buffer_atr"),
                      Evidence("stop_level_gap_atr", "ATR", 4), Evidence("stop_side"),
                      Evidence("stop_buffer_atr", "ATR"), Evidence("atr_14", "price")),
            action="MOVE_STOP_BEYOND_LEVEL",
            harm=("an ordinary test of the level behind the entry reaches the stop before the "
                  "trade develops"),
            measure="stopped_early", action_facts=(Evidence("suggested_stop", "price"),)),
        "EXTENDED_FROM_EMA": Code(
            "Entry extended from EMA(20)",
            "The entry at {entry} is {ema_extension_atr} beyond EMA(20) at {ema_20} "
            "(limit {max_ema_extension_atr}).",
            "A limit entry at {suggested_entry} keeps the extension within "
            "{max_ema_extension_atr}.",
            evidence=(Evidence("entry", "price"), Evidence("ema_20", "price", _PRICE_DIGITS),
                      Evidence("ema_extension_atr", "ATR", 4,
                               threshold="max_ema_extension_atr"),
                      Evidence("max_ema_extension_atr", "ATR"), Evidence("atr_14", "price")),
            action="USE_LIMIT_ENTRY_NEARER_EMA",
            harm=("an entry stretched far from EMA(20) meets a pullback toward it first: a "
                  "deeper move against the trade"),
            measure="adverse_excursion",
            action_facts=(Evidence("suggested_entry", "price"),)),
        "EXTENDED_FROM_VWAP": Code(
            "Entry extended from the anchored VWAP",
            "The entry at {entry} is {vwap_extension_atr} ({vwap_extension_sd}) beyond the "
            "{vwap_anchor} VWAP at {vwap} (limit {max_vwap_extension_atr}).",
            "A limit entry at {suggested_entry} keeps the extension within "
            "{max_vwap_extension_atr}.",
            evidence=(Evidence("entry", "price"), Evidence("vwap_anchor"),
                      Evidence("vwap", "price", _PRICE_DIGITS),
                      Evidence("vwap_extension_atr", "ATR", 4,
                               threshold="max_vwap_extension_atr"),
                      Evidence("vwap_extension_sd", "sd", 4),
                      Evidence("max_vwap_extension_atr", "ATR"), Evidence("atr_14", "price")),
            action="USE_LIMIT_ENTRY_NEARER_VWAP",
            harm=("an entry stretched far from the anchored VWAP meets a pullback toward it "
                  "first: a deeper move against the trade"),
            measure="adverse_excursion",
            action_facts=(Evidence("suggested_entry", "price"),)),
        "ENTRY_AT_SESSION_EDGE": Code(
            "Entry at the edge of the session",
            "The entry time is {minutes_from_edge} from the session {session_edge} "
            "(threshold {session_edge_minutes}); spreads and gaps are widest there.",
            "Enter away from the first and last {session_edge_minutes} of the session, or use "
            "a limit order at {limit_price}.",
            evidence=(Evidence("minutes_from_edge", "minutes", 2,
                               threshold="session_edge_minutes"),
                      Evidence("session_edge"), Evidence("session_edge_minutes", "minutes"),
                      Evidence("session_open"), Evidence("session_close_estimate")),
            action="WAIT_FOR_SESSION_TO_SETTLE",
            harm=("the erratic first and last minutes of a session swing against the trade right "
                  "after the entry"),
            measure="adverse_excursion", action_facts=(Evidence("limit_price", "price"),)),
        "ENTRY_MID_BAR": Code(
            "Entry before the bar closes",
            "The {timeframe} bar in progress is {bar_progress_pct} complete at the entry time; "
            "its close is still {minutes_to_bar_close} away.",
            "Wait for the bar to close before acting on it, or keep the order as a limit at "
            "{limit_price}.",
            evidence=(Evidence("bar_progress_pct", "%", 2, threshold="mid_bar_min_pct"),
                      Evidence("minutes_to_bar_close", "minutes", 2), Evidence("timeframe"),
                      Evidence("bar_open")),
            action="WAIT_FOR_BAR_CLOSE",
            harm=("the bar acted on can still reverse before it closes, so the trade is shaken "
                  "out soon after the entry"),
            measure="stopped_early", action_facts=(Evidence("limit_price", "price"),)),
        "WIDE_RANGE_BAR": Code(
            "Entry right after a wide-range bar",
            "The last bar spanned {last_bar_range_atr} from {last_bar_low} to {last_bar_high} "
            "(threshold {wide_range_atr}).",
            "Use a limit entry nearer the bar's midpoint at {suggested_entry}, or reduce the "
            "size.",
            evidence=(Evidence("last_bar_range_atr", "ATR", 4, threshold="wide_range_atr"),
                      Evidence("last_bar_high", "price"), Evidence("last_bar_low", "price"),
                      Evidence("wide_range_atr", "ATR"), Evidence("atr_14", "price")),
            action="USE_LIMIT_NEAR_MIDPOINT_OR_REDUCE_SIZE",
            harm=("a wide-range bar is often partly retraced, against an entry made near its "
                  "extreme"),
            measure="adverse_excursion",
            action_facts=(Evidence("suggested_entry", "price"),)),
        "LOW_RELATIVE_VOLUME": Code(
            "Thin volume on the last bar",
            "The last bar traded {relative_volume} of its reference volume over "
            "{reference_bars} (threshold {min_relative_volume}).",
            "Use a limit order at {limit_price} rather than a market order, and keep the size "
            "small against the volume.",
            evidence=(Evidence("relative_volume", "ratio", 4, threshold="min_relative_volume"),
                      Evidence("last_bar_volume", "units"),
                      Evidence("reference_volume", "units", 2),
                      # intraday: one bar per earlier session, at the last bar's hour
                      Evidence("reference_bars", "bars"),
                      Evidence("min_relative_volume", "ratio")),
            action="USE_LIMIT_ORDER",
            harm="thin volume gaps and slips: an exit can fill beyond the stop",
            measure="loss_beyond_stop", action_facts=(Evidence("limit_price", "price"),)),
    }
    explain = (Evidence("atr_14", "price"), Evidence("atr_source"),
               Evidence("nearest_level_ahead_atr", "ATR", 4),
               Evidence("stop_beyond_level_atr", "ATR", 4),
               Evidence("ema_extension_atr", "ATR", 4),
               Evidence("vwap_extension_atr", "ATR", 4),
               Evidence("last_bar_range_atr", "ATR", 4),
               Evidence("minutes_from_session_edge", "minutes", 2),
               Evidence("bar_progress_pct", "%", 2),
               Evidence("relative_volume", "ratio", 4))

    def evaluate_batch(self, ctx: BatchContext) -> BatchResult:
        """Flag entries near a level ahead, stops inside the level behind, extension from
        EMA(20) and the anchored VWAP, wide-range bars, entries at a session's edge or in a
        forming bar, and thin volume; every check is an array expression over the rows.

        Explain facts are NaN (null) where a check did not run: no ATR, no level, no EMA or
        VWAP, stale data, a window whose bars or sessions are out of order, too little
        history for a reference volume.
        """
        n = ctx.n
        if n and (ctx.bars.lengths < 1).any():
            raise ValueError("entry_quality: a row has no bars; market requires at least one")
        rows = _Rows.read(ctx)
        blocks: list[IssueBlock] = []
        explain: dict[str, Any] = {e.name: np.full(n, np.nan) for e in self.explain}
        explain["atr_14"] = np.where(rows.has_atr, rows.atr, np.nan)
        explain["atr_source"] = rows.atr_source
        blocks += self._levels(ctx, rows, explain)
        blocks += self._extension(ctx, rows, explain)
        blocks += self._wide_range(rows, explain)
        blocks += self._timing(ctx, rows, explain)
        blocks += self._volume(ctx, rows, explain)
        return self.result(n, blocks, explain=explain)

    # ------------------------------------------------------------------------- location
    def _levels(self, ctx: BatchContext, r: _Rows, explain: dict[str, Any]) -> list[IssueBlock]:
        """ENTRY_UNDER_RESISTANCE / ENTRY_OVER_SUPPORT (a level ahead nearer than
        ``near_level_atr``) and STOP_NOT_BEYOND_LEVEL (the stop not ``stop_buffer_atr`` beyond
        the nearest level behind, within ``stop_level_search_atr``)."""
        cfg = self.config
        piece_code, snapshots = level_pieces(ctx)
        table = level_table(snapshots, piece_code, r.atr, pivot_method=cfg.pivot_method,
                            merge_atr=cfg.level_merge_atr, min_strength=cfg.min_level_strength)
        ahead, behind = _pick_levels(table, r, cfg.stop_level_search_atr)
        blocks: list[IssueBlock] = []

        has = ahead.column >= 0
        distance = np.full(len(r.entry), np.nan)
        distance[has] = np.abs(ahead.price[has] - r.entry[has]) / r.atr[has]
        # the rounded distance decides, so the evidence never shows a distance at the limit
        distance = np.round(distance, 4)
        explain["nearest_level_ahead_atr"] = distance
        near = has & (distance < cfg.near_level_atr)
        for code, side in (("ENTRY_UNDER_RESISTANCE", r.long), ("ENTRY_OVER_SUPPORT", ~r.long)):
            at = np.flatnonzero(near & side)
            if not len(at):
                continue
            level, atr, sign = ahead.price[at], r.atr[at], r.sign[at]
            pullback = _on_tick(level - sign * cfg.near_level_atr * atr, r.tick[at], sign,
                                against_risk=True)
            blocks.append(self.fire(
                code, at, Severity.MEDIUM, entry=r.entry[at],
                level_name=table.name_of(ahead.rank[at]), level_price=level,
                distance_atr=distance[at], near_level_atr=cfg.near_level_atr,
                touches=ahead.touches_of(at), level_strength=ahead.strength[at], atr_14=atr,
                confirm_price=_on_tick(level + sign * cfg.stop_buffer_atr * atr, r.tick[at],
                                       sign, against_risk=False),
                pullback_entry=np.where(pullback > 0, pullback, np.nan)))

        checked = (behind.column >= 0) & np.isfinite(r.stop) & (r.sign * (r.entry - r.stop) > 0)
        beyond = np.full(len(r.entry), np.nan)
        beyond[checked] = (r.sign[checked] * (behind.price[checked] - r.stop[checked])
                           / r.atr[checked])
        explain["stop_beyond_level_atr"] = beyond
        at = np.flatnonzero(checked & (beyond < cfg.stop_buffer_atr - 1e-9))
        if len(at):
            level, sign = behind.price[at], r.sign[at]
            suggested = _on_tick(level - sign * cfg.stop_buffer_atr * r.atr[at], r.tick[at],
                                 sign, against_risk=True)
            blocks.append(self.fire(
                "STOP_NOT_BEYOND_LEVEL", at, Severity.MEDIUM, stop=r.stop[at], entry=r.entry[at],
                level_name=table.name_of(behind.rank[at]), level_price=level,
                stop_beyond_level_atr=beyond[at], stop_level_gap_atr=np.abs(beyond[at]),
                stop_side=choose(beyond[at] >= 0, "beyond", "inside"),
                stop_buffer_atr=cfg.stop_buffer_atr, atr_14=r.atr[at],
                suggested_stop=np.where(suggested > 0, suggested, np.nan)))
        return blocks

    # ------------------------------------------------------------------------- extension
    def _extension(self, ctx: BatchContext, r: _Rows, explain: dict[str, Any]
                   ) -> list[IssueBlock]:
        """EXTENDED_FROM_EMA and EXTENDED_FROM_VWAP: the entry beyond EMA(20) or the anchored
        VWAP in the trade's direction by more than the limit (medium beyond 1.5 x)."""
        cfg = self.config
        blocks: list[IssueBlock] = []
        ema = _latest(ctx, "ema_20")
        ok = r.has_atr & np.isfinite(ema)
        with np.errstate(invalid="ignore"):
            extension = np.where(ok, r.sign * (r.entry - ema) / r.atr, np.nan)
        explain["ema_extension_atr"] = extension
        at = np.flatnonzero(ok & (extension > cfg.max_ema_extension_atr))
        if len(at):
            blocks.append(self.fire(
                "EXTENDED_FROM_EMA", at, severity_where(
                    extension[at] > 1.5 * cfg.max_ema_extension_atr, Severity.MEDIUM,
                    Severity.LOW),
                entry=r.entry[at], ema_20=ema[at], ema_extension_atr=extension[at],
                max_ema_extension_atr=cfg.max_ema_extension_atr, atr_14=r.atr[at],
                suggested_entry=_on_tick(ema[at] + r.sign[at] * cfg.max_ema_extension_atr
                                         * r.atr[at], r.tick[at], r.sign[at],
                                         against_risk=True)))

        anchor = (choose(r.intraday, "session", "month") if cfg.vwap_anchor == "auto"
                  else repeated(cfg.vwap_anchor, len(r.entry)))
        vwap, upper = _vwaps(ctx, anchor)
        ok = r.has_atr & np.isfinite(vwap)
        with np.errstate(invalid="ignore", divide="ignore"):
            away = r.sign * (r.entry - vwap)
            extension = np.where(ok, away / r.atr, np.nan)
            sd = upper - vwap
            in_sd = np.where(sd > 0, away / sd, np.nan)
        explain["vwap_extension_atr"] = extension
        at = np.flatnonzero(ok & (extension > cfg.max_vwap_extension_atr))
        if len(at):
            blocks.append(self.fire(
                "EXTENDED_FROM_VWAP", at, severity_where(
                    extension[at] > 1.5 * cfg.max_vwap_extension_atr, Severity.MEDIUM,
                    Severity.LOW),
                entry=r.entry[at], vwap_anchor=anchor[at], vwap=vwap[at],
                vwap_extension_atr=extension[at], vwap_extension_sd=in_sd[at],
                max_vwap_extension_atr=cfg.max_vwap_extension_atr, atr_14=r.atr[at],
                suggested_entry=_on_tick(vwap[at] + r.sign[at] * cfg.max_vwap_extension_atr
                                         * r.atr[at], r.tick[at], r.sign[at],
                                         against_risk=True)))
        return blocks

    # ------------------------------------------------------------------------- microstructure
    def _wide_range(self, r: _Rows, explain: dict[str, Any]) -> list[IssueBlock]:
        """WIDE_RANGE_BAR: the last bar's high-low range at least ``wide_range_atr``."""
        cfg = self.config
        with np.errstate(invalid="ignore"):
            width = np.where(r.has_atr, (r.high - r.low) / r.atr, np.nan)
        explain["last_bar_range_atr"] = width
        at = np.flatnonzero(r.has_atr & (width >= cfg.wide_range_atr))
        if not len(at):
            return []
        return [self.fire(
            "WIDE_RANGE_BAR", at, Severity.LOW, last_bar_range_atr=width[at],
            last_bar_high=r.high[at], last_bar_low=r.low[at], wide_range_atr=cfg.wide_range_atr,
            atr_14=r.atr[at], suggested_entry=_on_tick((r.high[at] + r.low[at]) / 2.0,
                                                       r.tick[at], r.sign[at],
                                                       against_risk=True))]

    def _volume(self, ctx: BatchContext, r: _Rows, explain: dict[str, Any]) -> list[IssueBlock]:
        """LOW_RELATIVE_VOLUME: the last bar's volume under ``min_relative_volume`` of the mean
        of the previous ``relvol_lookback`` bars (intraday: of the bars at the same offset
        from their session's open in the previous sessions)."""
        cfg = self.config
        bars = ctx.bars
        volume = bars.column("volume")[bars.stop - 1]
        reference = np.full(len(r.entry), np.nan)
        count = np.zeros(len(r.entry), dtype=np.int64)
        daily = np.flatnonzero(~r.intraday)
        if len(daily):
            reference[daily], count[daily] = _mean_of_previous(bars.take(daily),
                                                               cfg.relvol_lookback)
        sessions = r.sessions(ctx, cfg.relvol_lookback)
        if sessions is not None:
            at, window, _, mean, same = sessions
            reference[at], count[at] = mean[window], same[window]
        with np.errstate(invalid="ignore", divide="ignore"):
            relative = volume / reference
        # a missing volume (or none to compare with) is not checked, never read as thin
        known = (count >= 2) & (reference > 0) & np.isfinite(relative)
        relative[~known] = np.nan
        explain["relative_volume"] = relative
        at = np.flatnonzero(known & (relative < cfg.min_relative_volume))
        if not len(at):
            return []
        return [self.fire(
            "LOW_RELATIVE_VOLUME", at, Severity.LOW, relative_volume=relative[at],
            last_bar_volume=volume[at], reference_volume=reference[at],
            reference_bars=count[at], min_relative_volume=cfg.min_relative_volume,
            limit_price=_on_tick(r.entry[at], r.tick[at], r.sign[at], against_risk=None))]

    # ------------------------------------------------------------------------- timing
    def _timing(self, ctx: BatchContext, r: _Rows, explain: dict[str, Any]) -> list[IssueBlock]:
        """ENTRY_AT_SESSION_EDGE (intraday: as_of within ``session_edge_minutes`` of the
        estimated open or close) and ENTRY_MID_BAR (as_of inside a forming bar, at least
        ``mid_bar_min_pct`` through it). Skipped on stale data and disordered windows."""
        cfg = self.config
        n = len(r.entry)
        as_of = _ns(ctx.intents["as_of"])
        last_close = r.times.ts_close[ctx.bars.stop - 1]
        timed = (ctx.market["sessions_since_last_bar"].to_numpy(np.int64) == 0) & r.ordered
        bar_start = np.zeros(n, dtype=np.int64)  # the bar forming at as_of, where there is one
        bar_end = np.zeros(n, dtype=np.int64)
        forming = np.zeros(n, dtype=bool)
        blocks: list[IssueBlock] = []
        sessions = r.sessions(ctx, cfg.relvol_lookback)
        if sessions is not None:
            at, window, found, _, _ = sessions
            keep = timed[at] & (found.count[window] >= 2)
            at, window = at[keep], window[keep]
            t, nominal = as_of[at], r.nominal[at]
            opened, closes = found.opened[window], found.closes[window]
            next_open = found.next_open[window]
            # after the estimated close the market is shut (an order fills at the next
            # open) until the next open projected from a week earlier
            shut = t >= closes
            reopened = shut & (next_open != NAT) & (t >= next_open)
            length = closes - opened
            opened = np.where(reopened, next_open, opened)
            closes = np.where(reopened, next_open + length, closes)
            since_open = (t - opened) / _NS_PER_MINUTE
            to_close = (closes - t) / _NS_PER_MINUTE
            at_open = shut | (since_open <= to_close)
            minutes = np.where(shut, np.where(reopened, since_open, 0.0),
                               np.where(at_open, since_open, to_close))
            starting = reopened & (t < opened + nominal)
            running = ~shut & (t > last_close[at])
            forming[at] = starting | running
            bar_start[at] = np.where(starting, opened, last_close[at])
            bar_end[at] = bar_start[at] + nominal
            explain["minutes_from_session_edge"][at] = minutes
            edge = minutes < cfg.session_edge_minutes
            if edge.any():
                blocks.append(self.fire(
                    "ENTRY_AT_SESSION_EDGE", at[edge], Severity.LOW,
                    minutes_from_edge=minutes[edge],
                    session_edge=choose(at_open[edge], "open", "close"),
                    session_edge_minutes=cfg.session_edge_minutes,
                    session_open=iso_utc(opened[edge]), session_close_estimate=iso_utc(
                        closes[edge]),
                    limit_price=_on_tick(r.entry[at[edge]], r.tick[at[edge]], r.sign[at[edge]],
                                         against_risk=None)))

        at = np.flatnonzero(timed & ~r.intraday & (as_of > last_close))
        if len(at):
            found_bar, begins, ends = _projected_bars(r.times, ctx.bars.start[at],
                                                      ctx.bars.stop[at], as_of[at])
            at = at[found_bar]
            forming[at] = True
            bar_start[at], bar_end[at] = begins[found_bar], ends[found_bar]

        at = np.flatnonzero(forming)
        progress = 100.0 * (as_of[at] - bar_start[at]) / (bar_end[at] - bar_start[at])
        explain["bar_progress_pct"][at] = progress
        mid = (cfg.mid_bar_min_pct <= progress) & (progress < 100.0)
        at = at[mid]
        if len(at):
            blocks.append(self.fire(
                "ENTRY_MID_BAR", at, Severity.LOW, bar_progress_pct=progress[mid],
                minutes_to_bar_close=(bar_end[at] - as_of[at]) / _NS_PER_MINUTE,
                timeframe=r.label[at], bar_open=iso_utc(bar_start[at]),
                limit_price=_on_tick(r.entry[at], r.tick[at], r.sign[at], against_risk=None)))
        return blocks


# ---------------------------------------------------------------------------- rows
@dataclass(slots=True)
class _BarTimes:
    """The concatenated bars' times as UTC nanoseconds, and sessions as ordered codes (read
    only when a row is intraday)."""

    data: pd.DataFrame
    ts: np.ndarray
    ts_close: np.ndarray
    _session: np.ndarray | None = None

    @classmethod
    def read(cls, data: pd.DataFrame) -> _BarTimes:
        return cls(data=data, ts=_ns(data["ts"]), ts_close=_ns(data["ts_close"]))

    @property
    def session(self) -> np.ndarray:
        """Each bar's session code (-1 where missing)."""
        if self._session is None:
            self._session = (session_codes(self.data["session"])
                             if "session" in self.data.columns
                             else np.full(len(self.data), -1, dtype=np.int64))
        return self._session


#: Nanoseconds per unit of a datetime64 column.
_UNIT_NS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


def _ns(times: pd.Series) -> np.ndarray:
    """Return tz-aware times as UTC int64 nanoseconds (NaT as NAT), without an index."""
    array = times.array
    if not isinstance(array, pd.arrays.DatetimeArray) or array.tz is None:
        return utc_ns(times)  # raises on naive times, as every read of UTC times does
    values = array.asi8
    if array.unit == "ns":
        return values.copy()
    return np.where(values == NAT, NAT, values * _UNIT_NS[array.unit])


_SessionRead = tuple[np.ndarray, np.ndarray, WindowSessions, np.ndarray, np.ndarray]


@dataclass(slots=True)
class _Rows:
    """What every check reads, per row: the intent, ATR, last bar, timeframe and bar times."""

    entry: np.ndarray
    stop: np.ndarray  # NaN: none
    sign: np.ndarray  # +1 long, -1 short
    long: np.ndarray
    tick: np.ndarray
    atr: np.ndarray  # NaN where has_atr is False
    has_atr: np.ndarray
    atr_source: np.ndarray  # 'ta_features', 'bars' or 'none'
    high: np.ndarray  # the last closed bar's
    low: np.ndarray
    intraday: np.ndarray
    nominal: np.ndarray  # ns
    label: np.ndarray  # object: the timeframe's label
    times: _BarTimes
    ordered: np.ndarray  # the window's times (intraday: and sessions) ascend, none missing
    _sessions: dict[int, _SessionRead | None]

    @classmethod
    def read(cls, ctx: BatchContext) -> _Rows:
        intents, bars = ctx.intents, ctx.bars
        sign = intents["sign"].to_numpy(np.float64)
        last = bars.stop - 1
        atr, source = row_atr(ctx)
        has_atr = np.isfinite(atr)
        names, code = np.unique(intents["timeframe"].to_numpy(object).astype(str),
                                return_inverse=True)
        frames = [Timeframe.parse(v) for v in names]
        intraday = np.array([t.is_intraday for t in frames], dtype=bool)[code]
        times = _BarTimes.read(bars.data)
        ordered = count_in((times.ts == NAT) | (times.ts_close == NAT), bars.start, bars.stop) == 0
        pairs_end = np.maximum(bars.stop - 1, bars.start)
        ordered &= count_in(times.ts[1:] <= times.ts[:-1], bars.start, pairs_end) == 0
        hours = np.flatnonzero(intraday)
        if len(hours):
            ordered[hours] &= ~disordered(times.ts, times.ts_close, times.session,
                                          bars.start[hours], bars.stop[hours])
        return cls(
            entry=intents["proposed_entry"].to_numpy(np.float64),
            stop=intents["proposed_stop"].to_numpy(np.float64), sign=sign, long=sign > 0,
            tick=ctx.instrument["tick_size"].to_numpy(np.float64), atr=atr, has_atr=has_atr,
            atr_source=source, high=bars.column("high")[last], low=bars.column("low")[last],
            intraday=intraday,
            nominal=np.array([t.nominal.value for t in frames], dtype=np.int64)[code],
            label=np.array([str(t) for t in frames], dtype=object)[code],
            times=times, ordered=ordered, _sessions={})

    def sessions(self, ctx: BatchContext, lookback: int) -> _SessionRead | None:
        """Return (the ordered intraday rows, each one's distinct window, the windows'
        sessions, their same-offset mean volume and its count), read once."""
        if lookback not in self._sessions:
            at = np.flatnonzero(self.intraday & self.ordered)
            read: _SessionRead | None = None
            if len(at):
                span = len(self.times.ts) + 1
                keys, window = np.unique(ctx.bars.start[at] * span + ctx.bars.stop[at],
                                         return_inverse=True)
                start, stop = keys // span, keys % span
                runs = SessionRuns.of(self.times.ts, self.times.session)
                found = window_sessions(self.times.ts, self.times.ts_close, runs, start, stop)
                mean, same = same_offset_mean(ctx.bars.column("volume"), self.times.ts, runs,
                                              start, stop, lookback)
                read = (at, window.ravel(), found, mean, same)
            self._sessions[lookback] = read
        return self._sessions[lookback]


def _latest(ctx: BatchContext, name: str) -> np.ndarray:
    """Return the latest feature ``name`` per row (NaN where absent)."""
    if name not in ctx.latest.columns:
        return np.full(len(ctx.latest), np.nan)
    return ctx.latest[name].to_numpy(np.float64, copy=True)


def _on_tick(price: np.ndarray, tick: np.ndarray, sign: np.ndarray, *,
             against_risk: bool | None) -> np.ndarray:
    """Return ``price`` on each row's tick grid: ``against_risk`` rounds away from the
    trade's side (down for a long, up for a short), False toward it, None to the nearest."""
    return to_tick(price, tick, up=None if against_risk is None else (sign < 0) == against_risk)


def _mean_of_previous(bars: Windows, lookback: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the mean volume of the ``lookback`` bars before each window's last (NaN
    skipped) and their number."""
    volume = bars.tail("volume", lookback + 1)[:, :-1]
    count = np.minimum(bars.lengths - 1, lookback)
    valid = (np.arange(lookback)[None, :] >= (lookback - count)[:, None]) & ~np.isnan(volume)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(valid, volume, 0.0).sum(axis=1) / valid.sum(axis=1)
    return mean, count


def _projected_bars(times: _BarTimes, start: np.ndarray, stop: np.ndarray, as_of: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (found, open, close) of the bar forming at ``as_of`` per window, projected from
    the bars of its last week: the same weekday and hours a week later (holidays are not
    known, so a holiday reads like a normal day)."""
    last_ts = times.ts[stop - 1]
    last_close = times.ts_close[stop - 1]
    longest = int((stop - start).max())
    k = min(8, longest)
    while True:  # widen until every window's last week fits in its last k bars
        index = stop[:, None] - k + np.arange(k)[None, :]
        valid = index >= start[:, None]
        index = np.where(valid, index, 0)
        in_week = valid & (times.ts[index] > (last_ts - WEEK_NS)[:, None])
        if k >= longest or not in_week[:, 0].any():
            break
        k = min(2 * k, longest)
    opens = times.ts[index] + WEEK_NS
    closes = times.ts_close[index] + WEEK_NS
    t = as_of[:, None]
    match = in_week & (opens >= last_close[:, None]) & (opens < t) & (t < closes)
    column = match.argmax(axis=1)
    row = np.arange(len(start))
    return match.any(axis=1), opens[row, column], closes[row, column]


# ---------------------------------------------------------------------------- levels
@dataclass(frozen=True, slots=True)
class _Picked:
    """The level picked per row: its column in the row's table (-1: none), price, name rank,
    swing touches and strength."""

    column: np.ndarray
    price: np.ndarray
    rank: np.ndarray
    touches: np.ndarray
    strength: np.ndarray

    def touches_of(self, rows: np.ndarray) -> np.ndarray:
        """Return the touches of the levels picked on ``rows`` (None where a level has none)."""
        out = self.touches[rows].astype(object)
        out[self.touches[rows] <= 0] = None
        return out


def _pick_levels(table: LevelTable, r: _Rows, search_atr: float) -> tuple[_Picked, _Picked]:
    """Return the nearest strong level ahead of each entry and the nearest behind it within
    ``search_atr`` ATR (rows without ATR pick none)."""
    n = len(r.entry)
    width = table.price.shape[1]
    picks = [_Picked(column=np.full(n, -1, dtype=np.int64), price=np.full(n, np.nan),
                     rank=np.zeros(n, dtype=np.int64), touches=np.zeros(n, dtype=np.int64),
                     strength=np.full(n, np.nan)) for _ in range(2)]
    rows_all = np.flatnonzero(r.has_atr)
    if not width:
        return picks[0], picks[1]
    step = max(1, _CHUNK_CELLS // width)
    for begin in range(0, len(rows_all), step):
        rows = rows_all[begin:begin + step]
        code = table.code[rows]
        price, rank = table.price[code], table.rank[code]
        entry, sign = r.entry[rows], r.sign[rows]
        columns = (nearest_level(price, rank, entry, sign, side="ahead"),
                   nearest_level(price, rank, entry, sign, side="behind",
                                 within=search_atr * r.atr[rows]))
        at = np.arange(len(rows))
        for picked, column in zip(picks, columns, strict=True):
            cell = np.maximum(column, 0)
            picked.column[rows] = column
            picked.price[rows] = np.where(column >= 0, price[at, cell], np.nan)
            picked.rank[rows] = rank[at, cell]
            picked.touches[rows] = np.where(column >= 0, table.touches[code, cell], 0)
            picked.strength[rows] = np.where(column >= 0, table.strength[code, cell], np.nan)
    return picks[0], picks[1]


def _vwaps(ctx: BatchContext, anchor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return each row's anchored VWAP for its ``anchor`` and its upper 1-sd band (NaN where
    the snapshot has none, or the levels piece is not a KeyLevelsSnapshot)."""
    code, snapshots = level_pieces(ctx)
    vwap, upper = np.full(len(anchor), np.nan), np.full(len(anchor), np.nan)
    for name in np.unique(anchor.astype(str)):
        at = anchor == name
        vwap[at], upper[at] = anchored_vwaps(snapshots, code[at], str(name))
    return vwap, upper
