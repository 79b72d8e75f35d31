"""RegimeFit: does the trade fit the market regime it would be placed in?

Reads the regime snapshot of the last closed bar (trend, volatility and liquidity labels, and
the forward-filtered HMM state with its transition matrix) and flags:

- REGIME_TRANSITION_RISK: the current HMM state is short-lived for this trade AND for this
  series. Two comparisons, both from the HMM fit in force at the snapshot's bar (fitted on
  bars up to ``fitted_through`` <= as_of) and its filtered probabilities p at that bar, so
  nothing after as_of is read:

  1. the expected remaining stay E = sum_i p_i / (1 - A_ii) bars (a Markov state's duration
     is geometric: its expected remaining stay does not depend on its age) is short against
     the holding horizon h: h >= ``min_horizon_over_stay`` x E;
  2. the chance of leaving the state within h, risk = 1 - sum_i p_i A_ii^h
     (``RegimeSnapshot.transition_risk``), is well above the series' base rate for the same
     h, base = 1 - sum_i pi_i A_ii^h with pi the chain's stationary distribution (the state
     mix of a bar picked at random): risk >= ``min_risk_over_base`` x base.

  The raw risk alone is no warning: HMM states on these series last a few bars to a few
  dozen (on 750 real intents over every bundled series the current state's median expected
  stay is 7 bars: 18 for a calm daily state, 5 for a volatile one, 3 on 4-hour bars), so
  for the generators' 10- and 20-bar horizons the raw risk is above 50% on 73% of them;
  the two comparisons flag 3.3% (27 of the 812 evaluated). What the code claims when it
  fires is that the trade starts in a state that is both expected to end within the trade
  and markedly less lasting than the series' usual one (for example a volatile daily state
  expected to last 6 bars, where a typical bar's state lasts 9; over a 10-bar horizon the
  chance of leaving it is 83% against a 69% base rate, 1.2x). MEDIUM from
  ``high_risk_over_base``;
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
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pandas as pd

from buddy.batch.columns import choose, iso_utc
from buddy.batch.result import BatchResult, IssueBlock
from buddy.config import ModuleConfig, param
from buddy.domain import Severity, Side
from buddy.errors import ConfigError, FieldError
from buddy.evaluators.base import Code, Evaluator, Evidence, severity_where
from buddy.evaluators.registry import register
from buddy.regime.columns import regime_columns
from buddy.regime.markov import leave_probability

if TYPE_CHECKING:
    from buddy.batch.context import BatchContext

@dataclass(frozen=True, slots=True, kw_only=True)
class RegimeFitConfig(ModuleConfig):
    """Thresholds of the regime-fit checks."""

    config_name = "regime_fit"

    default_horizon_bars: int = param(10, lo=1, hi=10_000, unit="bars",
                                      doc="holding horizon assumed when the intent has none")
    min_horizon_over_stay: float = param(1.0, lo=0.0, hi=1_000.0,
                                         unit="x expected stay",
                                         doc="the horizon must be at least this many times "
                                             "the current HMM state's expected remaining "
                                             "stay for REGIME_TRANSITION_RISK")
    min_risk_over_base: float = param(1.2, lo=1.0, hi=100.0, unit="ratio",
                                      doc="the chance of leaving the current state within "
                                          "the horizon must be at least this multiple of "
                                          "the series' base rate (the same chance from the "
                                          "chain's stationary mix) for "
                                          "REGIME_TRANSITION_RISK")
    high_risk_over_base: float = param(1.5, lo=1.0, hi=100.0, unit="ratio",
                                       doc="risk over base rate from which "
                                           "REGIME_TRANSITION_RISK is MEDIUM")
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

    def __post_init__(self) -> None:
        ModuleConfig.__post_init__(self)
        if self.high_risk_over_base < self.min_risk_over_base:
            raise ConfigError([FieldError(
                "regime_fit.high_risk_over_base",
                f"must be >= min_risk_over_base ({self.min_risk_over_base})",
                self.high_risk_over_base)])


@register
class RegimeFitEvaluator(Evaluator[RegimeFitConfig]):
    """Check the intent against the trend, volatility, liquidity and HMM regime."""

    name = "regime_fit"
    version = "2.0.0"
    requires = frozenset({"market", "regime"})
    config_cls = RegimeFitConfig
    codes: ClassVar = {
        "REGIME_TRANSITION_RISK": Code(
            "Regime may not last the trade",
            "The current {hmm_state_label} state is expected to last {expected_stay_bars} "
            "more, within the {horizon_bars} horizon, where a typical bar's state of this "
            "series lasts {typical_stay_bars}. Under the fitted transition matrix the "
            "chance of leaving it within the horizon is {transition_risk_pct}, "
            "{risk_over_base} the series' base rate of {base_rate_pct} (flagged from "
            "{min_risk_over_base}).",
            "Plan for a change of conditions during the trade, or keep the holding period "
            "within {horizon_within_stay_bars}.",
            evidence=(Evidence("transition_risk_pct", "%", digits=2),
                      Evidence("base_rate_pct", "%", digits=2),
                      Evidence("risk_over_base", "x", digits=2,
                               threshold="min_risk_over_base"),
                      Evidence("min_risk_over_base", "x"),
                      Evidence("horizon_bars", "bars"), Evidence("hmm_state_label"),
                      Evidence("expected_stay_bars", "bars", digits=1),
                      Evidence("typical_stay_bars", "bars", digits=1)),
            action="SHORTEN_HORIZON",
            action_facts=(Evidence("horizon_within_stay_bars", "bars"),),
            harm="the conditions the trade was planned in end before the trade does: a stop "
                 "and target sized for them are left stranded and the trade runs out its "
                 "horizon",
            measure="time_stopped"),
        "VOLATILITY_EXPANSION": Code(
            "Volatility is expanding",
            "Return volatility over the last few bars has expanded against the longer "
            "window; realised volatility stands at {vol_z} against its own history.",
            "Size the position and place the stop for the wider bars, not the calmer past.",
            evidence=(Evidence("vol_z", "z", digits=2, threshold="high_vol_z"),
                      Evidence("vol_state")),
            action="RESIZE_FOR_VOLATILITY",
            harm="bars widen beyond what the stop was placed for, so ordinary swings reach "
                 "it soon after the entry",
            measure="stopped_early"),
        "VOLATILE_REGIME": Code(
            "Volatile regime",
            "Realised volatility stands at {vol_z} against its own history (flagged from "
            "{volatile_vol_z}); the HMM reads the {hmm_state_label} state.",
            "Size the position for the current volatility and check the stop distance in "
            "ATR.",
            evidence=(Evidence("vol_z", "z", digits=2, threshold="volatile_vol_z"),
                      Evidence("volatile_vol_z", "z"), Evidence("hmm_state_label")),
            action="RESIZE_FOR_VOLATILITY",
            harm="in a volatile market prices jump through the stop, so a loss can exceed "
                 "the planned risk",
            measure="loss_beyond_stop"),
        "COUNTER_TREND": Code(
            "Against the trend regime",
            "This {side} idea runs against a {trend_state} trend regime with "
            "{trend_strength} (flagged from {counter_trend_min_adx}).",
            "Check that the setup is a deliberate counter-trend one, with a defined "
            "invalidation level and a size that allows for it.",
            evidence=(Evidence("trend_strength", "ADX", digits=1,
                               threshold="counter_trend_min_adx"),
                      Evidence("counter_trend_min_adx", "ADX"), Evidence("trend_state"),
                      Evidence("side")),
            action="CHECK_COUNTER_TREND_SETUP",
            harm="the trend's moves run against the position, so the trade ends at its stop "
                 "more often",
            measure="stopped_out"),
        "THIN_LIQUIDITY": Code(
            "Thin liquidity",
            "Relative volume is {relvol} and the spread proxy {spread_pct}: liquidity "
            "reads thin.",
            "Prefer a limit order and a smaller size; expect wider fills than usual.",
            evidence=(Evidence("relvol", "ratio", digits=2, threshold="very_thin_relvol"),
                      Evidence("spread_pct", "%", digits=4)),
            action="USE_LIMIT_ORDER_SMALLER_SIZE",
            harm="thin trading moves prices in jumps, so exits (the stop above all) fill "
                 "beyond their planned price and a loss can exceed the planned risk",
            measure="loss_beyond_stop"),
        "REGIME_OUT_OF_DATE": Code(
            "Regime snapshot out of date",
            "The regime snapshot is {bars_behind} behind the last closed bar.",
            "Run `buddy jobs regime` for this symbol and timeframe.",
            evidence=(Evidence("bars_behind", "bars"), Evidence("regime_bar"),
                      Evidence("last_bar")),
            action="RUN_REGIME_JOB",
            harm="the regime checks read a snapshot older than the last closed bar and may "
                 "describe conditions that have since changed; this concerns the report's "
                 "own input, which no trade outcome can judge",
            measure=None),
    }
    explain = (Evidence("trend_state"), Evidence("trend_strength", "ADX", digits=1),
               Evidence("vol_state"), Evidence("vol_z", "z", digits=2),
               Evidence("liquidity_state"), Evidence("hmm_state_label"),
               Evidence("transition_risk_pct", "%", digits=2),
               Evidence("base_rate_pct", "%", digits=2), Evidence("horizon_bars", "bars"))

    def evaluate_batch(self, ctx: BatchContext) -> BatchResult:
        """Flag a regime that may not last the horizon, expanding or high volatility, a trade
        against the trend regime, thin liquidity and an out-of-date snapshot.

        Snapshot values are read once per distinct snapshot; the transition risk
        ``1 - sum_i p_i * A_ii ** h`` and its base rate ``1 - sum_i pi_i * A_ii ** h`` of
        every row's horizon are array expressions.
        """
        cfg = self.config
        snap, per = regime_columns(ctx)
        intents = ctx.intents
        sign = intents["sign"].to_numpy(np.float64)
        held = intents["holding_horizon"].to_numpy(np.float64)
        horizon = np.where(np.isnan(held) | (held == 0), cfg.default_horizon_bars,
                           np.nan_to_num(held)).astype(np.int64)
        blocks: list[IssueBlock] = []

        has_hmm = per["has_hmm"][snap]
        stays = per["stays"][snap]
        risk = np.where(has_hmm, leave_probability(per["probs"][snap], stays, horizon), np.nan)
        base = np.where(has_hmm, leave_probability(per["stationary"][snap], stays, horizon),
                        np.nan)
        stay = per["expected_stay"][snap]  # inf: a weighted state is never left
        with np.errstate(divide="ignore", invalid="ignore"):
            over_base = np.where(base > 0.0, risk / base, np.nan)
        shortest = _shortest_flagged_horizon(stay, cfg.min_horizon_over_stay)
        rows = np.flatnonzero(has_hmm & (horizon >= shortest)
                              & (risk > base) & (over_base >= cfg.min_risk_over_base))
        if len(rows):
            at = snap[rows]
            blocks.append(self.fire(
                "REGIME_TRANSITION_RISK", rows,
                severity_where(over_base[rows] >= cfg.high_risk_over_base, Severity.MEDIUM,
                               Severity.LOW),
                transition_risk_pct=100.0 * risk[rows], base_rate_pct=100.0 * base[rows],
                risk_over_base=over_base[rows], min_risk_over_base=cfg.min_risk_over_base,
                horizon_bars=horizon[rows], hmm_state_label=per["label"][at],
                expected_stay_bars=stay[rows], typical_stay_bars=per["typical_stay"][at],
                horizon_within_stay_bars=np.maximum(np.ceil(shortest[rows]) - 1.0, 0.0
                                                    ).astype(np.int64)))

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

        # labels are compared once per snapshot, then read per row
        trend = per["trend_state"][snap]
        strength = per["trend_strength"][snap]
        against = np.where(sign > 0, (per["trend_state"] == "down")[snap],
                           (per["trend_state"] == "up")[snap])
        rows = np.flatnonzero(against & (strength >= cfg.counter_trend_min_adx))
        if len(rows):
            blocks.append(self.fire(
                "COUNTER_TREND", rows,
                severity_where(strength[rows] >= cfg.strong_trend_adx, Severity.MEDIUM,
                               Severity.LOW),
                trend_strength=strength[rows], counter_trend_min_adx=cfg.counter_trend_min_adx,
                trend_state=trend[rows],
                side=choose(sign[rows] > 0, Side.LONG.value, Side.SHORT.value)))

        rows = np.flatnonzero((per["liquidity_state"] == "thin")[snap])
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
                    regime_bar=iso_utc(regime_ts[rows]),
                    last_bar=iso_utc(ts[stop[rows] - 1])))
        return self.result(ctx.n, blocks, explain={
            "trend_state": trend, "trend_strength": strength,
            "vol_state": per["vol_state"][snap], "vol_z": vol_z,
            "liquidity_state": per["liquidity_state"][snap],
            "hmm_state_label": per["label"][snap], "transition_risk_pct": 100.0 * risk,
            "base_rate_pct": 100.0 * base, "horizon_bars": horizon})


def _shortest_flagged_horizon(stay: np.ndarray, factor: float) -> np.ndarray:
    """Return ``factor`` x ``stay`` per row, rounded to 1e-9 bars so that float noise
    (1 / (1 - 0.8) is 5.000000000000001) does not move a whole horizon across it: horizons
    at or above it pass the first comparison of REGIME_TRANSITION_RISK, and the longest
    whole horizon below it is the mitigation's ``horizon_within_stay_bars``."""
    with np.errstate(invalid="ignore"):
        return np.round(factor * stay, 9)


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
