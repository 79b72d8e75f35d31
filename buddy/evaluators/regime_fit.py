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

Personalisation hook: ``compatibility(regime, strategy)`` will say whether the trader's own
setups have worked in this regime. It returns None until strategy profiles exist; that work
adds 'strategy' to ``optional`` and passes ``ctx.strategy`` to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import pandas as pd

from buddy.config import ModuleConfig, param
from buddy.context.pack import ContextPack
from buddy.context.pieces import RegimeSnapshot
from buddy.domain import EvaluationResult, Fact, Issue, Severity, Side, TradeIntent
from buddy.evaluators.base import Evaluator, IssueTemplate
from buddy.evaluators.registry import register

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
class RegimeFitEvaluator(Evaluator):
    """Check the intent against the trend, volatility, liquidity and HMM regime."""

    name = "regime_fit"
    version = "1.0.0"
    requires = frozenset({"market", "regime"})
    config_cls = RegimeFitConfig
    templates: ClassVar = {
        "REGIME_TRANSITION_RISK": IssueTemplate(
            "Regime may not last the trade",
            "Under the fitted transition matrix, the share of paths that leave the current "
            "{hmm_state_label} state within {horizon_bars} is {transition_risk_pct} "
            "(limit {max_transition_risk_pct}); the state lasts about {expected_stay_bars} "
            "on average.",
            "Plan for a change of conditions during the trade, or keep the holding period "
            "within {horizon_within_limit_bars}."),
        "VOLATILITY_EXPANSION": IssueTemplate(
            "Volatility is expanding",
            "Return volatility over the last few bars has expanded against the longer "
            "window; realised volatility stands at {vol_z} against its own history.",
            "Size the position and place the stop for the wider bars, not the calmer past."),
        "VOLATILE_REGIME": IssueTemplate(
            "Volatile regime",
            "Realised volatility stands at {vol_z} against its own history (flagged from "
            "{volatile_vol_z}); the HMM reads the {hmm_state_label} state.",
            "Size the position for the current volatility and check the stop distance in ATR."),
        "COUNTER_TREND": IssueTemplate(
            "Against the trend regime",
            "This {side} idea runs against a {trend_state} trend regime with ADX "
            "{trend_strength} (flagged from {counter_trend_min_adx}).",
            "Check that the setup is a deliberate counter-trend one, with a defined "
            "invalidation level and a size that allows for it."),
        "THIN_LIQUIDITY": IssueTemplate(
            "Thin liquidity",
            "Relative volume is {relvol} and the spread proxy {spread_pct}: liquidity "
            "reads thin.",
            "Prefer a limit order and a smaller size; expect wider fills than usual."),
        "REGIME_OUT_OF_DATE": IssueTemplate(
            "Regime snapshot out of date",
            "The regime snapshot is {bars_behind} behind the last closed bar.",
            "Run `buddy jobs regime` for this symbol and timeframe."),
    }

    def evaluate(self, intent: TradeIntent, ctx: ContextPack) -> EvaluationResult:
        """Return regime-fit issues for ``intent`` against the regime piece of ``ctx``."""
        regime: RegimeSnapshot = ctx.regime
        market = ctx.market
        assert regime is not None and market is not None  # guaranteed by requires
        cfg = self.config
        horizon = intent.holding_horizon or cfg.default_horizon_bars
        issues: list[Issue] = []
        risk = regime.transition_risk(horizon)
        label = regime.hmm_state_label
        if risk is not None and risk > cfg.max_transition_risk:
            issues.append(self._transition_issue(regime, horizon, risk))
        if regime.vol_expansion_flag:
            issues.append(self.issue(
                "VOLATILITY_EXPANSION",
                Severity.MEDIUM if regime.vol_z >= cfg.high_vol_z else Severity.LOW,
                [Fact(name="vol_z", value=_round(regime.vol_z, 2), unit="z",
                      threshold=cfg.high_vol_z),
                 Fact(name="vol_state", value=regime.vol_state)],
                "RESIZE_FOR_VOLATILITY"))
        if regime.vol_z >= cfg.volatile_vol_z:
            issues.append(self.issue(
                "VOLATILE_REGIME",
                Severity.MEDIUM if regime.vol_z >= cfg.high_vol_z else Severity.LOW,
                [Fact(name="vol_z", value=_round(regime.vol_z, 2), unit="z",
                      threshold=cfg.volatile_vol_z),
                 Fact(name="volatile_vol_z", value=cfg.volatile_vol_z, unit="z"),
                 Fact(name="hmm_state_label", value=label)],
                "RESIZE_FOR_VOLATILITY"))
        against = {Side.LONG: "down", Side.SHORT: "up"}[intent.side]
        if regime.trend_state == against and regime.trend_strength >= cfg.counter_trend_min_adx:
            issues.append(self.issue(
                "COUNTER_TREND",
                Severity.MEDIUM if regime.trend_strength >= cfg.strong_trend_adx
                else Severity.LOW,
                [Fact(name="trend_strength", value=_round(regime.trend_strength, 1),
                      unit="ADX", threshold=cfg.counter_trend_min_adx),
                 Fact(name="counter_trend_min_adx", value=cfg.counter_trend_min_adx,
                      unit="ADX"),
                 Fact(name="trend_state", value=regime.trend_state),
                 Fact(name="side", value=intent.side.value)],
                "CHECK_COUNTER_TREND_SETUP"))
        if regime.liquidity_state == "thin":
            issues.append(self.issue(
                "THIN_LIQUIDITY",
                Severity.MEDIUM if regime.relvol < cfg.very_thin_relvol else Severity.LOW,
                [Fact(name="relvol", value=_round(regime.relvol, 2), unit="ratio",
                      threshold=cfg.very_thin_relvol),
                 Fact(name="spread_pct", value=_round(100.0 * regime.spread_proxy, 4),
                      unit="%")],
                "USE_LIMIT_ORDER_SMALLER_SIZE"))
        last_bar = pd.Timestamp(market.bars["ts"].iloc[-1])
        behind = int((market.bars["ts"] > pd.Timestamp(regime.ts)).sum())
        if pd.Timestamp(regime.ts) < last_bar and behind:
            issues.append(self.issue(
                "REGIME_OUT_OF_DATE", Severity.LOW,
                [Fact(name="bars_behind", value=behind, unit="bars", threshold=0),
                 Fact(name="regime_bar", value=pd.Timestamp(regime.ts).isoformat()),
                 Fact(name="last_bar", value=last_bar.isoformat())],
                "RUN_REGIME_JOB"))
        compatibility = self.compatibility(regime, None)
        facts = [Fact(name="trend_state", value=regime.trend_state),
                 Fact(name="trend_strength", value=_round(regime.trend_strength, 1),
                      unit="ADX"),
                 Fact(name="vol_state", value=regime.vol_state),
                 Fact(name="vol_z", value=_round(regime.vol_z, 2), unit="z"),
                 Fact(name="liquidity_state", value=regime.liquidity_state),
                 Fact(name="hmm_state_label", value=label),
                 Fact(name="transition_risk_pct",
                      value=None if risk is None else _round(100.0 * risk, 2), unit="%"),
                 Fact(name="horizon_bars", value=horizon, unit="bars"),
                 *([compatibility] if compatibility is not None else [])]
        return self.result(issues, facts)

    def compatibility(self, regime: RegimeSnapshot, strategy: Any | None) -> Fact | None:
        """Return whether the trader's setups have worked in ``regime`` (a Fact), or None.

        The personalization hook: None until strategy profiles (which regimes the trader's
        playbooks have worked in) exist.
        """
        return None

    def _transition_issue(self, regime: RegimeSnapshot, horizon: int, risk: float) -> Issue:
        cfg = self.config
        state = regime.hmm_state_id if regime.hmm_state_id is not None else 0
        stay = regime.transition_matrix[state][state]
        expected_stay = 1.0 / (1.0 - stay) if stay < 1.0 else math.inf
        within = 0
        for h in range(1, min(horizon, MAX_HORIZON_SEARCH_BARS) + 1):
            r = regime.transition_risk(h)
            if r is None or r > cfg.max_transition_risk:
                break
            within = h
        return self.issue(
            "REGIME_TRANSITION_RISK",
            Severity.MEDIUM if risk >= cfg.high_transition_risk else Severity.LOW,
            [Fact(name="transition_risk_pct", value=_round(100.0 * risk, 2), unit="%",
                  threshold=100.0 * cfg.max_transition_risk),
             Fact(name="max_transition_risk_pct", value=100.0 * cfg.max_transition_risk,
                  unit="%"),
             Fact(name="horizon_bars", value=horizon, unit="bars"),
             Fact(name="hmm_state_label", value=regime.hmm_state_label),
             Fact(name="expected_stay_bars",
                  value=_round(expected_stay, 1) if math.isfinite(expected_stay) else None,
                  unit="bars")],
            "SHORTEN_HORIZON",
            [Fact(name="horizon_within_limit_bars", value=within, unit="bars")])


def _round(value: float, digits: int) -> float | None:
    return round(float(value), digits) if math.isfinite(value) else None
