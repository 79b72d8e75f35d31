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

``evaluate_batch`` reads each distinct snapshot once, computes the transition risk of every
row's horizon with array operations and counts the bars behind the snapshot by binary search.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from buddy.batch.columns import (
    evidence_once,
    isoformat,
    py_round,
    severity_blocks,
    side_values,
)
from buddy.batch.result import BatchResult, FactColumn, IssueBlock, issues_frame
from buddy.config import ModuleConfig, param
from buddy.context.pack import ContextPack
from buddy.context.pieces import RegimeSnapshot
from buddy.domain import EvaluationResult, Fact, Issue, Severity, Side, TradeIntent
from buddy.evaluators.base import Evaluator, IssueTemplate
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

    def evaluate_batch(self, ctx: BatchContext) -> BatchResult:
        """Return ``evaluate``'s verdicts on every row of ``ctx``, column-wise.

        Snapshot values (rounded the scalar way) are read once per distinct snapshot; the
        transition risk ``1 - sum_i p_i * A_ii ** h`` is summed state by state in the scalar
        order, so it equals ``RegimeSnapshot.transition_risk`` bit for bit. The
        personalisation hook adds no evidence to issues, so it has no batch counterpart yet.
        """
        cfg = self.config
        n = ctx.n
        snapshots: list[RegimeSnapshot] = []

        def number(snapshot: RegimeSnapshot) -> int:
            snapshots.append(snapshot)
            return len(snapshots) - 1

        snap = ctx.piece_values("regime", number, dtype=np.int64, default=-1)
        if (snap < 0).any():
            raise ValueError("regime_fit: a row has no regime piece")
        per = _snapshot_columns(snapshots)
        intents = ctx.intents
        sign = intents["sign"].to_numpy(np.float64)
        held = intents["holding_horizon"].to_numpy(np.float64)
        horizon = np.where(np.isnan(held) | (held == 0), cfg.default_horizon_bars,
                           np.nan_to_num(held)).astype(np.int64)
        blocks: list[IssueBlock] = []

        risk = _transition_risk(per["probs"][snap], per["stays"][snap], horizon)
        rows = np.flatnonzero(per["has_hmm"][snap] & (risk > cfg.max_transition_risk))
        if len(rows):
            if (~per["stay_ok"][snap[rows]]).any():  # evaluate raises there: fall back
                raise ValueError("regime_fit: a transition matrix lacks the current state")
            blocks += severity_blocks(
                "REGIME_TRANSITION_RISK", rows, risk[rows] >= cfg.high_transition_risk,
                Severity.MEDIUM, Severity.LOW, evidence_once(
                    rows, (snap[rows], horizon[rows]), lambda r: [
                        FactColumn("transition_risk_pct", py_round(100.0 * risk[r], 2), "%",
                                   100.0 * cfg.max_transition_risk),
                        FactColumn("max_transition_risk_pct", 100.0 * cfg.max_transition_risk,
                                   "%"),
                        FactColumn("horizon_bars", horizon[r], "bars"),
                        FactColumn("hmm_state_label", per["label"][snap[r]]),
                        FactColumn("expected_stay_bars", per["expected_stay_r1"][snap[r]],
                                   "bars")]))

        vol_z = per["vol_z"][snap]
        rows = np.flatnonzero(per["vol_expansion_flag"][snap])
        if len(rows):
            blocks += severity_blocks(
                "VOLATILITY_EXPANSION", rows, vol_z[rows] >= cfg.high_vol_z, Severity.MEDIUM,
                Severity.LOW, evidence_once(rows, (snap[rows],), lambda r: [
                    FactColumn("vol_z", per["vol_z_r2"][snap[r]], "z", cfg.high_vol_z),
                    FactColumn("vol_state", per["vol_state"][snap[r]])]))

        rows = np.flatnonzero(vol_z >= cfg.volatile_vol_z)
        if len(rows):
            blocks += severity_blocks(
                "VOLATILE_REGIME", rows, vol_z[rows] >= cfg.high_vol_z, Severity.MEDIUM,
                Severity.LOW, evidence_once(rows, (snap[rows],), lambda r: [
                    FactColumn("vol_z", per["vol_z_r2"][snap[r]], "z", cfg.volatile_vol_z),
                    FactColumn("volatile_vol_z", cfg.volatile_vol_z, "z"),
                    FactColumn("hmm_state_label", per["label"][snap[r]])]))

        trend = per["trend_state"][snap]
        strength = per["trend_strength"][snap]
        against = np.where(sign > 0, trend == "down", trend == "up")
        rows = np.flatnonzero(against & (strength >= cfg.counter_trend_min_adx))
        if len(rows):
            blocks += severity_blocks(
                "COUNTER_TREND", rows, strength[rows] >= cfg.strong_trend_adx, Severity.MEDIUM,
                Severity.LOW, evidence_once(rows, (snap[rows], sign[rows]), lambda r: [
                    FactColumn("trend_strength", per["trend_strength_r1"][snap[r]], "ADX",
                               cfg.counter_trend_min_adx),
                    FactColumn("counter_trend_min_adx", cfg.counter_trend_min_adx, "ADX"),
                    FactColumn("trend_state", trend[r]),
                    FactColumn("side", side_values(sign[r]))]))

        rows = np.flatnonzero(per["liquidity_state"][snap] == "thin")
        if len(rows):
            blocks += severity_blocks(
                "THIN_LIQUIDITY", rows, per["relvol"][snap[rows]] < cfg.very_thin_relvol,
                Severity.MEDIUM, Severity.LOW, evidence_once(rows, (snap[rows],), lambda r: [
                    FactColumn("relvol", per["relvol_r2"][snap[r]], "ratio",
                               cfg.very_thin_relvol),
                    FactColumn("spread_pct", per["spread_pct_r4"][snap[r]], "%")]))

        start, stop = ctx.bars.start, ctx.bars.stop
        if (stop <= start).any():  # evaluate raises on an empty window: let the caller fall back
            raise ValueError("regime_fit: a row has no bars")
        if n:
            bar_ts = ctx.bars.data["ts"]
            ts = pd.DatetimeIndex(bar_ts).as_unit("ns").asi8
            regime_ts = per["ts"][snap]
            rows = np.flatnonzero(regime_ts < ts[stop - 1])  # the last bar is behind: >= 1
            if len(rows):
                blocks.append(IssueBlock("REGIME_OUT_OF_DATE", rows, Severity.LOW, evidence_once(
                    rows, (snap[rows], start[rows], stop[rows]), lambda r: [
                        FactColumn("bars_behind", _count_after(ts, start[r], stop[r],
                                                               regime_ts[r]), "bars", 0),
                        FactColumn("regime_bar", per["regime_bar"][snap[r]]),
                        FactColumn("last_bar", isoformat(bar_ts.iloc[stop[r] - 1],
                                                         pandas=True))])))
        return BatchResult.from_issues(self.name, self.version, n, issues_frame(blocks))

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


def _snapshot_columns(snapshots: list[RegimeSnapshot]) -> dict[str, np.ndarray]:
    """Return what the checks read of each snapshot, as arrays indexed like ``snapshots``;
    values rounded as ``evaluate`` rounds them (NaN where it writes None).

    ``probs`` and ``stays`` are (snapshots, states) matrices of ``hmm_probs`` and the
    matching diagonal of the transition matrix, zero-padded (a zero term adds nothing).
    """
    def rounded(value: float, digits: int) -> float:
        out = _round(value, digits)
        return math.nan if out is None else out

    k = max((len(s.hmm_probs) for s in snapshots), default=0)
    probs = np.zeros((len(snapshots), k))
    stays = np.zeros((len(snapshots), k))
    columns: dict[str, list[Any]] = {name: [] for name in (
        "has_hmm", "label", "expected_stay_r1", "stay_ok", "trend_state", "trend_strength",
        "trend_strength_r1", "vol_state", "vol_z", "vol_z_r2", "vol_expansion_flag",
        "liquidity_state", "relvol", "relvol_r2", "spread_pct_r4", "ts", "regime_bar")}
    for j, s in enumerate(snapshots):
        has_hmm = bool(s.hmm_probs) and bool(s.transition_matrix)
        if has_hmm:
            for i, p in enumerate(s.hmm_probs):
                probs[j, i], stays[j, i] = p, s.transition_matrix[i][i]
        expected, stay_ok = math.nan, True
        if has_hmm:  # as _transition_issue, which runs only where the issue fires
            state = s.hmm_state_id if s.hmm_state_id is not None else 0
            try:
                stay = s.transition_matrix[state][state]
                expected = rounded(1.0 / (1.0 - stay) if stay < 1.0 else math.inf, 1)
            except (IndexError, TypeError, ZeroDivisionError):
                stay_ok = False
        stamp = pd.Timestamp(s.ts)
        for name, value in (
                ("has_hmm", has_hmm), ("label", s.hmm_state_label),
                ("expected_stay_r1", expected), ("stay_ok", stay_ok),
                ("trend_state", s.trend_state), ("trend_strength", s.trend_strength),
                ("trend_strength_r1", rounded(s.trend_strength, 1)),
                ("vol_state", s.vol_state), ("vol_z", s.vol_z),
                ("vol_z_r2", rounded(s.vol_z, 2)),
                ("vol_expansion_flag", bool(s.vol_expansion_flag)),
                ("liquidity_state", s.liquidity_state), ("relvol", s.relvol),
                ("relvol_r2", rounded(s.relvol, 2)),
                ("spread_pct_r4", rounded(100.0 * s.spread_proxy, 4)),
                ("ts", stamp.as_unit("ns").value), ("regime_bar", stamp.isoformat())):
            columns[name].append(value)
    out: dict[str, np.ndarray] = {"probs": probs, "stays": stays}
    for name, values in columns.items():
        if name in ("has_hmm", "stay_ok", "vol_expansion_flag"):
            out[name] = np.array(values, dtype=bool)
        elif name == "ts":
            out[name] = np.array(values, dtype=np.int64)
        elif name in ("label", "trend_state", "vol_state", "liquidity_state", "regime_bar"):
            out[name] = np.empty(len(values), dtype=object)
            out[name][:] = values
        else:
            out[name] = np.array(values, dtype=np.float64)
    return out


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
