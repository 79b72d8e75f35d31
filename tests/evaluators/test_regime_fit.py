"""RegimeFit: each check fires on its case with the right numbers, thresholds come from config,
issues render through the guardrails, and results are point-in-time on the real data."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pandas as pd
import pytest

from buddy.context.builder import ContextPackBuilder
from buddy.context.pack import ContextPack
from buddy.domain import EvaluationResult, Issue, ModuleStatus, Severity, Side, TradeIntent
from buddy.errors import ConfigError
from buddy.evaluators.regime_fit import RegimeFitConfig, RegimeFitEvaluator
from buddy.explain import render_issue
from buddy.guardrails import check_text
from buddy.orchestrator import run_module
from buddy.regime.provider import regime_provider
from buddy.store import Store
from buddy.timeframes import Timeframe
from tests import factories

from .test_point_in_time_cases import PIT_POINTS

WARM_UP_BARS = 80  # bars before every rule state of a regime is defined


def pack(**regime: Any) -> ContextPack:
    return factories.pack(regime=factories.regime(**regime), missing={})


def run(intent: TradeIntent | None = None, ctx: ContextPack | None = None, **config: Any
        ) -> EvaluationResult:
    return RegimeFitEvaluator(config).evaluate(intent or factories.intent(), ctx or pack())


def only(result: EvaluationResult, code: str) -> Issue:
    matches = [i for i in result.issues if i.code == code]
    assert len(matches) == 1, [i.code for i in result.issues]
    return matches[0]


def codes(result: EvaluationResult) -> set[str]:
    return {i.code for i in result.issues}


def value(facts, name: str) -> Any:
    return next(f.value for f in facts if f.name == name)


def test_an_orderly_regime_raises_nothing_and_explains_itself() -> None:
    result = run()
    assert result.issues == () and result.score == 100.0
    assert value(result.explain_facts, "hmm_state_label") == "calm"
    assert value(result.explain_facts, "trend_state") == "up"
    # 1 - (0.95 * 0.98^10 + 0.05 * 0.97^10)
    assert value(result.explain_facts, "transition_risk_pct") == pytest.approx(18.69, abs=0.01)
    assert value(result.explain_facts, "horizon_bars") == 10


#: A short-lived volatile state: it stays with probability 0.8 (5 bars expected) where the
#: calm one stays with 0.98 (50 bars); the chain spends 10/11 of its bars calm.
SHORT_LIVED = dict(hmm_state_id=1, hmm_probs=(0.0, 1.0),
                   transition_matrix=((0.98, 0.02), (0.2, 0.8)))


def test_transition_risk_compares_the_stay_and_the_base_rate() -> None:
    issue = only(run(factories.intent(holding_horizon=10), pack(**SHORT_LIVED)),
                 "REGIME_TRANSITION_RISK")
    pi = (0.2 / 0.22, 0.02 / 0.22)  # stationary: pi_0 = a_10 / (a_01 + a_10)
    risk = 1 - 0.8 ** 10
    base = 1 - (pi[0] * 0.98 ** 10 + pi[1] * 0.8 ** 10)
    assert issue.severity is Severity.MEDIUM  # 3.6x the base rate, MEDIUM from 1.5x
    assert issue.fact("transition_risk_pct").value == pytest.approx(100 * risk, abs=0.01)
    assert issue.fact("base_rate_pct").value == pytest.approx(100 * base, abs=0.01)
    assert issue.fact("risk_over_base").value == pytest.approx(risk / base, abs=0.01)
    assert issue.fact("risk_over_base").threshold == 1.2
    assert issue.fact("expected_stay_bars").value == pytest.approx(5.0)
    assert issue.fact("typical_stay_bars").value == pytest.approx(
        pi[0] * 50 + pi[1] * 5, abs=0.1)
    assert issue.fact("hmm_state_label").value == "volatile"
    within = value(issue.mitigation.facts, "horizon_within_stay_bars")
    assert within == 4
    quiet = run(factories.intent(holding_horizon=within), pack(**SHORT_LIVED))
    assert "REGIME_TRANSITION_RISK" not in codes(quiet)  # horizon shorter than the stay


def test_a_long_horizon_alone_is_no_warning() -> None:
    # the factories' calm state outlasts the chain's typical one: leaving it within any
    # horizon is less likely than the base rate, however sure the raw risk is
    for horizon in (10, 60, 400):
        intent = factories.intent(holding_horizon=horizon)
        assert "REGIME_TRANSITION_RISK" not in codes(run(intent))
    assert factories.regime().transition_risk(400) > 0.99


def test_transition_risk_thresholds_come_from_config() -> None:
    intent = factories.intent(holding_horizon=10)
    ctx = pack(**SHORT_LIVED)  # 3.6x the base rate, horizon 2x the expected stay
    assert "REGIME_TRANSITION_RISK" not in codes(run(intent, ctx, min_risk_over_base=4.0,
                                                     high_risk_over_base=4.0))
    assert "REGIME_TRANSITION_RISK" not in codes(run(intent, ctx, min_horizon_over_stay=2.5))
    low = only(run(intent, ctx, high_risk_over_base=5.0), "REGIME_TRANSITION_RISK")
    assert low.severity is Severity.LOW


def test_transition_risk_uses_the_default_horizon_and_needs_an_hmm() -> None:
    no_horizon = factories.intent(holding_horizon=None)
    assert "REGIME_TRANSITION_RISK" in codes(run(no_horizon, pack(**SHORT_LIVED)))
    assert "REGIME_TRANSITION_RISK" not in codes(run(no_horizon, pack(**SHORT_LIVED),
                                                     default_horizon_bars=4))
    no_hmm = pack(hmm_state_id=None, hmm_state_labels=(), hmm_probs=(), transition_matrix=())
    result = run(factories.intent(holding_horizon=400), no_hmm)
    assert result.issues == ()
    assert value(result.explain_facts, "transition_risk_pct") is None
    assert value(result.explain_facts, "base_rate_pct") is None


@pytest.mark.parametrize(("vol_z", "severity"), [(0.5, Severity.LOW), (2.5, Severity.MEDIUM)])
def test_volatility_expansion(vol_z: float, severity: Severity) -> None:
    issue = only(run(ctx=pack(vol_expansion_flag=True, vol_z=vol_z)), "VOLATILITY_EXPANSION")
    assert issue.severity is severity and issue.fact("vol_z").value == vol_z


def test_volatile_regime_from_the_vol_z_threshold() -> None:
    issue = only(run(ctx=pack(vol_z=1.6, hmm_state_id=1, hmm_probs=(0.1, 0.9))),
                 "VOLATILE_REGIME")
    assert issue.severity is Severity.LOW
    assert issue.fact("hmm_state_label").value == "volatile"
    assert "VOLATILE_REGIME" not in codes(run(ctx=pack(vol_z=1.4)))
    assert "VOLATILE_REGIME" not in codes(run(ctx=pack(vol_z=1.6), volatile_vol_z=2.0))


@pytest.mark.parametrize(("side", "trend", "adx", "severity"), [
    (Side.LONG, "down", 25.0, Severity.LOW), (Side.SHORT, "up", 40.0, Severity.MEDIUM),
    (Side.LONG, "up", 40.0, None), (Side.SHORT, "range", 40.0, None),
    (Side.LONG, "down", 15.0, None)])
def test_counter_trend(side: Side, trend: str, adx: float, severity: Severity | None) -> None:
    intent = factories.intent(side=side, proposed_stop=105.0 if side is Side.SHORT else 95.0,
                              proposed_target=90.0 if side is Side.SHORT else 110.0)
    result = run(intent, pack(trend_state=trend, trend_strength=adx))
    if severity is None:
        assert "COUNTER_TREND" not in codes(result)
        return
    issue = only(result, "COUNTER_TREND")
    assert issue.severity is severity
    assert issue.fact("trend_strength").value == adx
    assert issue.fact("side").value == side.value


@pytest.mark.parametrize(("relvol", "severity"), [(0.4, Severity.LOW), (0.1, Severity.MEDIUM)])
def test_thin_liquidity(relvol: float, severity: Severity) -> None:
    issue = only(run(ctx=pack(liquidity_state="thin", relvol=relvol, spread_proxy=0.012)),
                 "THIN_LIQUIDITY")
    assert issue.severity is severity
    assert issue.fact("spread_pct").value == pytest.approx(1.2)
    assert "THIN_LIQUIDITY" not in codes(run(ctx=pack(liquidity_state="heavy")))


def test_a_snapshot_older_than_the_last_bar_is_out_of_date() -> None:
    ctx = factories.pack()
    three_back = ctx.market.bars["ts"].iloc[-4].to_pydatetime()
    issue = only(run(ctx=pack(ts=three_back)), "REGIME_OUT_OF_DATE")
    assert issue.fact("bars_behind").value == 3


def test_every_issue_renders_and_passes_the_guardrails() -> None:
    ctx = pack(ts=factories.pack().market.bars["ts"].iloc[-3].to_pydatetime(),
               trend_state="down", trend_strength=41.0, vol_z=2.4, vol_expansion_flag=True,
               liquidity_state="thin", relvol=0.2, spread_proxy=0.01, **SHORT_LIVED)
    result = run(factories.intent(holding_horizon=60), ctx)
    assert codes(result) == set(RegimeFitEvaluator.templates)
    for issue in result.issues:
        template = RegimeFitEvaluator.templates[issue.code]
        rendered = render_issue(issue, template)
        assert rendered.renderer == "template", (issue.code, rendered)
        facts = (*issue.evidence, *issue.mitigation.facts)
        for text in (rendered.explanation, rendered.mitigation, *rendered.evidence):
            verdict = check_text(text, facts, allowed=(template.explanation,
                                                       template.mitigation))
            assert verdict.ok, (issue.code, text, verdict.reasons)


def test_config_errors_name_the_field_the_range_and_the_value() -> None:
    with pytest.raises(ConfigError) as err:
        RegimeFitConfig(min_risk_over_base=0.5)
    text = str(err.value)
    assert "regime_fit.min_risk_over_base" in text and "0.5" in text
    with pytest.raises(ConfigError, match=r"regime_fit\.high_risk_over_base"):
        RegimeFitConfig(min_risk_over_base=2.0, high_risk_over_base=1.5)
    with pytest.raises(ConfigError, match="did you mean 'strong_trend_adx'"):
        RegimeFitEvaluator({"strong_trend_adz": 30.0})


# ------------------------------------------------------------------------- point in time
def regime_pack(store: Store, symbol: str, tf: str, as_of: datetime) -> ContextPack:
    builder = ContextPackBuilder(store, providers={"regime": regime_provider})
    return builder.build("u1", symbol, Timeframe(tf), as_of)


@pytest.mark.parametrize(("symbol", "tf", "as_of"), PIT_POINTS)
def test_point_in_time(sample_store: Store, truncated_store: Callable[[str, datetime], Store],
                       symbol: str, tf: str, as_of: str) -> None:
    t = pd.Timestamp(as_of).to_pydatetime()
    full = regime_pack(sample_store, symbol, tf, t)  # on demand from the full history
    cut = regime_pack(truncated_store(symbol, t), symbol, tf, t)
    assert full.regime == cut.regime and full.missing.get("regime") == cut.missing.get("regime")
    evaluator = RegimeFitEvaluator()
    for side, horizon in ((Side.LONG, 5), (Side.SHORT, 60)):
        close = full.market.last_close
        intent = factories.intent(symbol=symbol, timeframe=Timeframe(tf), as_of=t, side=side,
                                  proposed_entry=close, holding_horizon=horizon,
                                  proposed_stop=close * (0.97 if side is Side.LONG else 1.03),
                                  proposed_target=close * (1.06 if side is Side.LONG else 0.94))
        result = run_module(evaluator, intent, full)
        assert result == run_module(evaluator, intent, cut)
        if full.regime is not None:
            assert result.status is ModuleStatus.OK
            facts = {f.name: f.value for f in result.explain_facts}
            assert facts["trend_state"] == full.regime.trend_state
            if full.regime.hmm_probs:  # a 60-bar horizon is long for any fitted state
                assert facts["transition_risk_pct"] is not None
        else:
            assert result.status is ModuleStatus.SKIPPED
    # Not vacuous: a regime once the rules have warmed up, an HMM state once fitted.
    n_bars = int(sample_store.query("SELECT count(*) FROM bars WHERE symbol = ? AND "
                                    "timeframe = ? AND ts_close <= ?", [symbol, tf, t]
                                    ).iloc[0, 0])
    assert (full.regime is not None) == (n_bars >= WARM_UP_BARS)
    assert (full.regime is not None and bool(full.regime.hmm_probs)) == (n_bars >= 252)

