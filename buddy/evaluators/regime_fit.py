"""RegimeFit: does the trade fit the market regime it would be placed in?

Reads the regime snapshot of the last closed bar (trend, volatility and liquidity labels, and
the forward-filtered HMM state with its transition matrix) and flags:

- REGIME_TRANSITION_RISK: the chance, under the fitted transition matrix, of leaving the
  current HMM state within the holding horizon (``RegimeSnapshot.transition_risk``) is above
  ``max_transition_risk``: the conditions the trade is planned in may not last the trade;
- VOLATILITY_EXPANSION: short-term return volatility is expanding against the 20-bar one;
- VOLATILE_REGIME: volatility is high against its own trailing history (vol_z);
- COUNTER_TREND: a long in a down-trend regime or a short in an up-trend regime, with ADX at
  or above ``counter_trend_min_adx``;
- THIN_LIQUIDITY: low relative volume or a spread proxy wide against its own history;
- REGIME_OUT_OF_DATE: the regime snapshot is older than the last closed bar of the market data.

Whether the trader's own setups have worked in this regime is the strategy-consistency
module's question (personalization), not this one's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from buddy.batch.columns import iso_utc
from buddy.batch.result import BatchResult, IssueBlock
from buddy.config import ModuleConfig, param
from buddy.context.pieces import RegimeSnapshot
from buddy.domain import Severity, Side
from buddy.evaluators.base import Code, Evaluator, Evidence, severity_where
from buddy.evaluators.registry import register

if TYPE_CHECKING:
    from buddy.batch.context import BatchContext

#: Longest horizon searched for the horizon that keeps the transition risk within the limit.
MAX_HORIZON_SEARCH_BARS = 10_000


@dataclass(frozen=True, slots=True, kw_only=True)
class RegimeFitConfig(ModuleConfig):
    """Thresholds of the regime-fit checks."""

    config_name = "regime_fit"

    default_horizon_bars: int = param(10, lo=1, hi=10_000, unit="bars",
                                      doc="holding horizon assumed when the intent has none")
    max_transition_risk: float = param(0.5, lo=0.0, hi=1.0, unit="fraction",
                                       doc="chance of leaving the current HMM state within "
                                           "the horizon above which the regime may not last "
                                           "the trade")
    high_transition_risk: float = param(0.8, lo=0.0, hi=1.0, unit="fraction",
                                        doc="transition risk from which the issue is MEDIUM")
    high_vol_z: float = param(2.0, lo=0.0, hi=10.0, unit="z",
                              doc="vol_z from which volatility issues are MEDIUM")
    volatile_vol_z: float = param(1.5, lo=0.0, hi=10.0, unit="z",
                                  doc="vol_z at or above which the regime counts as volatile")
    counter_trend_min_adx: float = param(20.0, lo=0.0, hi=100.0, unit="ADX points",
                                         doc="trend strength from which trading against the "
                                             "trend regime is flagged")
    strong_trend_adx: float = param(35.0, lo=0.0, hi=100.0, unit="ADX points",
                                    doc="trend strength from which COUNTER_TREND is MEDIUM")
    very_thin_relvol: float = param(0.25, lo=0.0, hi=1.0, unit="ratio",
                                    doc="relative volume below which THIN_LIQUIDITY is MEDIUM")


@register
class RegimeFitEvaluator(Evaluator[RegimeFitConfig]):
    """Check the intent against the trend, volatility, liquidity and HMM regime."""

    name = "regime_fit"
    version = "1.0.0"
    requires = frozenset({"market", "regime"})
    config_cls = RegimeFitConfig
    codes: ClassVar = {
        "REGIME_TRANSITION_RISK": Code(
            "Regime may not last the trade",
            "Under the fitted transition matrix, the share of paths that leave the current "
            "{hmm_state_label} state within {horizon_bars} is {transition_risk_pct} "
            "(limit {max_transition_risk_pct}); the state lasts about {expected_stay_bars} "
            "on average.",
            "Plan for a change of conditions during the trade, or keep the holding period "
            "within {horizon_within_limit_bars}.",
            evidence=(Evidence("transition_risk_pct", "%", digits=2),
                      Evidence("max_transition_risk_pct", "%"),
                      Evidence("horizon_bars", "bars"), Evidence("hmm_state_label"),
                      Evidence("expected_stay_bars", "bars", digits=1)),
            action="SHORTEN_HORIZON",
            action_facts=(Evidence("horizon_within_limit_bars", "bars"),)),
        "VOLATILITY_EXPANSION": Code(
            "Volatility is expanding",
            "Return volatility over the last few bars has expanded against the longer "
            "window; realised volatility stands at {vol_z} against its own history.",
            "Size the position and place the stop for the wider bars, not the calmer past.",
            evidence=(Evidence("vol_z", "z", digits=2, threshold="high_vol_z"),
                      Evidence("vol_state")),
            action="RESIZE_FOR_VOLATILITY"),
        "VOLATILE_REGIME": Code(
            "Volatile regime",
            "Realised volatility stands at {vol_z} against its own history (flagged from "
            "{volatile_vol_z}); the HMM reads the {hmm_state_label} state.",
            "Size the position for the current volatility and check the stop distance in "
            "ATR.",
            evidence=(Evidence("vol_z", "z", digits=2, threshold="volatile_vol_z"),
                      Evidence("volatile_vol_z", "z"), Evidence("hmm_state_label")),
            action="RESIZE_FOR_VOLATILITY"),
        "COUNTER_TREND": Code(
            "Against the trend regime",
            "This {side} idea runs against a {trend_state} trend regime with ADX "
            "{trend_strength} (flagged from {counter_trend_min_adx}).",
            "Check that the setup is a deliberate counter-trend one, with a defined "
            "invalidation level and a size that allows for it.",
            evidence=(Evidence("trend_strength", "ADX", digits=1,
                               threshold="counter_trend_min_adx"),
                      Evidence("counter_trend_min_adx", "ADX"), Evidence("trend_state"),
                      Evidence("side")),
            action="CHECK_COUNTER_TREND_SETUP"),
        "THIN_LIQUIDITY": Code(
            "Thin liquidity",
            "Relative volume is {relvol} and the spread proxy {spread_pct}: liquidity "
            "reads thin.",
            "Prefer a limit order and a smaller size; expect wider fills than usual.",
            evidence=(Evidence("relvol", "ratio", digits=2, threshold="very_thin_relvol"),
                      Evidence("spread_pct", "%", digits=4)),
            action="USE_LIMIT_ORDER_SMALLER_SIZE"),
        "REGIME_OUT_OF_DATE": Code(
            "Regime snapshot out of date",
            "The regime snapshot is {bars_behind} behind the last closed bar.",
            "Run `buddy jobs regime` for this symbol and timeframe.",
            evidence=(Evidence("bars_behind", "bars"), Evidence("regime_bar"),
                      Evidence("last_bar")),
            action="RUN_REGIME_JOB"),
    }
    explain = (Evidence("trend_state"), Evidence("trend_strength", "ADX", digits=1),
               Evidence("vol_state"), Evidence("vol_z", "z", digits=2),
               Evidence("liquidity_state"), Evidence("hmm_state_label"),
               Evidence("transition_risk_pct", "%", digits=2),
               Evidence("horizon_bars", "bars"))

    def evaluate_batch(self, ctx: BatchContext) -> BatchResult:
        """Flag a regime that may not last the horizon, expanding or high volatility, a trade
        against the trend regime, thin liquidity and an out-of-date snapshot.

        Snapshot values are read once per distinct snapshot; the transition risk
        ``1 - sum_i p_i * A_ii ** h`` of every row's horizon is one array expression.
        """
        cfg = self.config
        snap, snapshots = ctx.distinct_pieces("regime")
        per = _snapshot_columns(snapshots)
        intents = ctx.intents
        sign = intents["sign"].to_numpy(np.float64)
        side = np.where(sign > 0, Side.LONG.value, Side.SHORT.value).astype(object)
        held = intents["holding_horizon"].to_numpy(np.float64)
        horizon = np.where(np.isnan(held) | (held == 0), cfg.default_horizon_bars,
                           np.nan_to_num(held)).astype(np.int64)
        blocks: list[IssueBlock] = []

        has_hmm = per["has_hmm"][snap]
        risk = np.where(has_hmm, _transition_risk(per["probs"][snap], per["stays"][snap],
                                                  horizon), np.nan)
        rows = np.flatnonzero(has_hmm & (risk > cfg.max_transition_risk))
        if len(rows):
            at = snap[rows]
            blocks.append(self.fire(
                "REGIME_TRANSITION_RISK", rows,
                severity_where(risk[rows] >= cfg.high_transition_risk, Severity.MEDIUM,
                               Severity.LOW),
                thresholds={"transition_risk_pct": 100.0 * cfg.max_transition_risk},
                transition_risk_pct=100.0 * risk[rows],
                max_transition_risk_pct=100.0 * cfg.max_transition_risk,
                horizon_bars=horizon[rows], hmm_state_label=per["label"][at],
                expected_stay_bars=per["expected_stay"][at],
                horizon_within_limit_bars=_horizon_within(
                    per["probs"][at], per["stays"][at], horizon[rows],
                    cfg.max_transition_risk)))

        vol_z = per["vol_z"][snap]
        rows = np.flatnonzero(per["vol_expansion_flag"][snap])
        if len(rows):
            blocks.append(self.fire(
                "VOLATILITY_EXPANSION", rows,
                severity_where(vol_z[rows] >= cfg.high_vol_z, Severity.MEDIUM, Severity.LOW),
                vol_z=vol_z[rows], vol_state=per["vol_state"][snap[rows]]))

        rows = np.flatnonzero(vol_z >= cfg.volatile_vol_z)
        if len(rows):
            blocks.append(self.fire(
                "VOLATILE_REGIME", rows,
                severity_where(vol_z[rows] >= cfg.high_vol_z, Severity.MEDIUM, Severity.LOW),
                vol_z=vol_z[rows], volatile_vol_z=cfg.volatile_vol_z,
                hmm_state_label=per["label"][snap[rows]]))

        trend = per["trend_state"][snap]
        strength = per["trend_strength"][snap]
        against = np.where(sign > 0, trend == "down", trend == "up")
        rows = np.flatnonzero(against & (strength >= cfg.counter_trend_min_adx))
        if len(rows):
            blocks.append(self.fire(
                "COUNTER_TREND", rows,
                severity_where(strength[rows] >= cfg.strong_trend_adx, Severity.MEDIUM,
                               Severity.LOW),
                trend_strength=strength[rows], counter_trend_min_adx=cfg.counter_trend_min_adx,
                trend_state=trend[rows], side=side[rows]))

        rows = np.flatnonzero(per["liquidity_state"][snap] == "thin")
        if len(rows):
            relvol = per["relvol"][snap[rows]]
            blocks.append(self.fire(
                "THIN_LIQUIDITY", rows,
                severity_where(relvol < cfg.very_thin_relvol, Severity.MEDIUM, Severity.LOW),
                relvol=relvol, spread_pct=100.0 * per["spread_proxy"][snap[rows]]))

        start, stop = ctx.bars.start, ctx.bars.stop
        if (stop <= start).any():  # a required market piece always has bars
            raise ValueError("regime_fit: a row has no bars")
        if ctx.n:
            bar_ts = ctx.bars.data["ts"]
            ts = pd.DatetimeIndex(bar_ts).as_unit("ns").asi8
            regime_ts = per["ts"][snap]
            rows = np.flatnonzero(regime_ts < ts[stop - 1])  # the last bar is behind: >= 1
            if len(rows):
                blocks.append(self.fire(
                    "REGIME_OUT_OF_DATE", rows, Severity.LOW,
                    thresholds={"bars_behind": 0},
                    bars_behind=_count_after(ts, start[rows], stop[rows], regime_ts[rows]),
                    regime_bar=per["regime_bar"][snap[rows]],
                    last_bar=iso_utc(ts[stop[rows] - 1])))
        return self.result(ctx.n, blocks, explain={
            "trend_state": trend, "trend_strength": strength,
            "vol_state": per["vol_state"][snap], "vol_z": vol_z,
            "liquidity_state": per["liquidity_state"][snap],
            "hmm_state_label": per["label"][snap], "transition_risk_pct": 100.0 * risk,
            "horizon_bars": horizon})


def _horizon_within(probs: np.ndarray, stays: np.ndarray, horizon: np.ndarray,
                    limit: float) -> np.ndarray:
    """Return per row the longest horizon h <= its horizon (and <= MAX_HORIZON_SEARCH_BARS)
    whose transition risk is within ``limit`` (0: not even one bar): the risk grows with h,
    so a binary search over h finds it for every row at once."""
    lo = np.zeros(len(horizon), dtype=np.int64)  # risk(lo) within the limit (lo = 0: none)
    hi = np.minimum(horizon, MAX_HORIZON_SEARCH_BARS).astype(np.int64)
    while (active := lo < hi).any():
        mid = (lo + hi + 1) // 2
        within = _transition_risk(probs, stays, np.maximum(mid, 1)) <= limit
        lo = np.where(active & within, mid, lo)
        hi = np.where(active & ~within, mid - 1, hi)
    return lo


def _snapshot_columns(snapshots: list[RegimeSnapshot]) -> dict[str, np.ndarray]:
    """Return what the checks read of each snapshot, as arrays indexed like ``snapshots``.

    ``probs`` and ``stays`` are (snapshots, states) matrices of ``hmm_probs`` and the
    matching diagonal of the transition matrix, zero-padded (a zero term adds nothing);
    ``expected_stay`` is 1 / (1 - A_ss) of the current state s (NaN when it never leaves).
    """
    n = len(snapshots)
    k = max((len(s.hmm_probs) for s in snapshots), default=0)
    probs, stays = np.zeros((n, k)), np.zeros((n, k))
    has_hmm = np.zeros(n, dtype=bool)
    expected = np.full(n, np.nan)
    for j, s in enumerate(snapshots):
        matrix = s.transition_matrix
        if not (s.hmm_probs and matrix):
            continue
        has_hmm[j] = True
        for i, p in enumerate(s.hmm_probs):
            probs[j, i], stays[j, i] = p, matrix[i][i]
        state = s.hmm_state_id if s.hmm_state_id is not None else 0
        if not 0 <= state < len(matrix):
            raise ValueError(f"regime snapshot of {s.ts}: HMM state {state} has no row in its "
                             f"{len(matrix)}-state transition matrix")
        if matrix[state][state] < 1.0:
            expected[j] = 1.0 / (1.0 - matrix[state][state])

    def text(values: list[Any]) -> np.ndarray:
        out = np.empty(n, dtype=object)
        out[:] = values
        return out

    def number(values: list[Any]) -> np.ndarray:
        return np.array(values, dtype=np.float64)

    return {
        "probs": probs, "stays": stays, "has_hmm": has_hmm, "expected_stay": expected,
        "label": text([s.hmm_state_label for s in snapshots]),
        "trend_state": text([s.trend_state for s in snapshots]),
        "vol_state": text([s.vol_state for s in snapshots]),
        "liquidity_state": text([s.liquidity_state for s in snapshots]),
        "trend_strength": number([s.trend_strength for s in snapshots]),
        "vol_z": number([s.vol_z for s in snapshots]),
        "relvol": number([s.relvol for s in snapshots]),
        "spread_proxy": number([s.spread_proxy for s in snapshots]),
        "vol_expansion_flag": np.array([bool(s.vol_expansion_flag) for s in snapshots],
                                       dtype=bool),
        "ts": np.array([pd.Timestamp(s.ts).as_unit("ns").value for s in snapshots],
                       dtype=np.int64),
        "regime_bar": iso_utc(np.array([pd.Timestamp(s.ts).as_unit("ns").value
                                        for s in snapshots], dtype=np.int64)),
    }


def _transition_risk(probs: np.ndarray, stays: np.ndarray, horizon: np.ndarray) -> np.ndarray:
    """Return ``RegimeSnapshot.transition_risk(horizon)`` per row (meaningless where the
    snapshot has no HMM): the terms added state by state in the scalar order, then clamped
    with ``min(1, max(0, .))``'s treatment of NaN (max(0.0, nan) is 0.0)."""
    exponent = np.maximum(1, horizon).astype(np.float64)
    stay = np.zeros(len(horizon))
    for i in range(probs.shape[1]):
        stay = stay + probs[:, i] * stays[:, i] ** exponent
    risk = 1.0 - stay
    risk = np.where(risk > 0.0, risk, 0.0)
    return np.where(risk < 1.0, risk, 1.0)


def _count_after(ts: np.ndarray, start: np.ndarray, stop: np.ndarray, after: np.ndarray
                 ) -> np.ndarray:
    """Return how many of ``ts[start[i]:stop[i]]`` are greater than ``after[i]`` (int64).

    Windows in time order (bars are) are binary-searched all at once; a window out of order
    (none is expected) is counted directly.
    """
    drops = np.zeros(len(ts) + 1, dtype=np.int64)  # drops[m]: j < m with ts[j] < ts[j - 1]
    drops[2:] = np.cumsum(ts[1:] < ts[:-1])
    ordered = drops[stop] == drops[np.minimum(start + 1, stop)]
    lo, hi = start.copy(), stop.copy()  # the first later one lies in ts[lo:hi + 1]
    active = ordered & (lo < hi)
    while active.any():
        mid = (lo + hi) // 2
        above = ts[np.where(active, mid, 0)] > after
        hi = np.where(active & above, mid, hi)
        lo = np.where(active & ~above, mid + 1, lo)
        active = ordered & (lo < hi)
    count = stop - lo
    for i in np.flatnonzero(~ordered):
        count[i] = int((ts[start[i]:stop[i]] > after[i]).sum())
    return count
