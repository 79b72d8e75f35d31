"""The gate as pure functions: the paired bootstrap rule, the least evidence, fit windows,
the point rule for metric-only scorers, and the gate's JSON form."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from experiments.gate import (
    DEFAULT_GATE,
    FitWindow,
    GateConfig,
    HoldoutReplay,
    HoldoutWindow,
    MetricRule,
    WindowOverlapError,
    auc,
    check_rule,
    check_windows,
    compare,
    compare_paired,
    spearman,
)

FAST = GateConfig(n_boot=300, min_n=200)


def holdout(n: int = 480, seed: int = 5) -> pd.DataFrame:
    """Return a holdout of ``n`` trades on 4 symbols over 2 years whose R a good score
    ranks (score = R plus noise)."""
    rng = np.random.default_rng(seed)
    r = np.round(rng.normal(0.1, 1.2, n), 3)
    symbols = np.array(["AAPL", "IBM", "MSFT", "GOOG"])[rng.integers(0, 4, n)]
    as_of = pd.Timestamp("2012-03-01", tz="UTC") + pd.to_timedelta(
        rng.integers(0, 730, n), unit="D")
    return pd.DataFrame({"intent_id": [f"i{k:04d}" for k in range(n)], "symbol": symbols,
                         "as_of": as_of, "score": 60 + 10 * r + rng.normal(0, 6, n),
                         "realized_r": r, "win": r > 0,
                         "exit_reason": np.where(r > 0, "target", "stop")})


def replay(frame: pd.DataFrame, score: np.ndarray | None = None) -> HoldoutReplay:
    return HoldoutReplay(frame=frame if score is None else frame.assign(score=score))


def test_the_rank_metrics_equal_scikit_learn_and_scipy_with_ties() -> None:
    rng = np.random.default_rng(0)
    score = rng.integers(0, 12, 300).astype(float)  # many ties
    r = np.round(rng.normal(0, 1, 300), 1)
    win = r > 0
    assert auc(score, r, win) == pytest.approx(roc_auc_score(win, score), abs=1e-12)
    assert spearman(score, r, win) == pytest.approx(spearmanr(score, r).statistic, abs=1e-12)
    assert math.isnan(auc(score, r, np.ones(300, bool)))
    assert math.isnan(spearman(np.full(300, 5.0), r, win))


def test_a_challenger_ranking_trades_as_production_does_passes_with_its_interval() -> None:
    frame = holdout()
    # a monotone rescaling ranks every resample identically: the difference is exactly 0
    checks, passed, reason, evidence = compare_paired(
        FAST, replay(frame, frame["score"].to_numpy() * 0.5 + 3), replay(frame))
    assert passed and "no worse" in reason
    assert [c.metric for c in checks] == ["auc", "spearman", "decile_spread_r"]
    assert all(c.passed and c.low == c.high == pytest.approx(0.0) for c in checks)
    assert evidence.n == 480 and evidence.n_intents == 480
    months = frame["symbol"] + frame["as_of"].dt.strftime("%Y-%m")
    assert evidence.n_clusters == months.nunique()


def test_a_clearly_worse_challenger_is_refused_naming_each_metric_and_its_bound() -> None:
    frame = holdout()
    noise = np.random.default_rng(9).normal(60, 10, len(frame))  # ranks nothing
    checks, passed, reason, _ = compare_paired(FAST, replay(frame, noise), replay(frame))
    assert not passed and "not shown to be no worse" in reason
    by_metric = {c.metric: c for c in checks}
    for metric in ("auc", "spearman", "decile_spread_r"):
        check = by_metric[metric]
        assert not check.passed and metric in reason
        assert check.low <= check.delta <= check.high < 0  # the whole interval is worse
        assert f"lower bound {check.low:+.4f}" in check.line()


def test_the_decision_is_the_lower_bound_not_the_point_estimate() -> None:
    frame = holdout(n=240)
    slightly = frame["score"].to_numpy() + np.random.default_rng(2).normal(0, 4, len(frame))
    loose = GateConfig(rules=(MetricRule(metric="auc", tolerance=0.5),), n_boot=300, min_n=200)
    tight = GateConfig(rules=(MetricRule(metric="auc", tolerance=0.0),), n_boot=300, min_n=200)
    (check,), passed, _, _ = compare_paired(tight, replay(frame, slightly), replay(frame))
    assert check.low < 0 and not passed  # the interval reaches below -0
    assert compare_paired(loose, replay(frame, slightly), replay(frame))[1]


def test_too_few_resolved_trades_are_refused_as_not_enough_evidence_even_when_better() -> None:
    frame = holdout(n=150)
    better = frame["realized_r"].to_numpy()  # a perfect ranking
    checks, passed, reason, evidence = compare_paired(FAST, replay(frame, better),
                                                      replay(frame))
    assert not passed and all(c.passed for c in checks)  # better on every metric, still no
    assert reason.startswith("not enough evidence: 150 resolved trades")
    assert "at least 200" in reason and evidence.n == 150


def test_unfilled_and_open_intents_are_left_out_and_counted() -> None:
    frame = holdout(n=260)
    frame.loc[:59, "exit_reason"] = "not_filled"
    frame.loc[:59, ["realized_r"]] = np.nan
    frame.loc[:59, "win"] = False
    frame.loc[60:64, "exit_reason"] = "open"
    _, passed, reason, evidence = compare_paired(FAST, replay(frame), replay(frame))
    assert evidence.n == 195 and evidence.n_intents == 260
    assert evidence.excluded["not_filled"] == 60 and evidence.excluded["open"] == 5
    assert not passed and "195 resolved trades" in reason  # 260 intents are not 200 trades


def test_replays_of_different_intents_or_outcomes_cannot_be_paired() -> None:
    frame = holdout(n=220)
    with pytest.raises(ValueError, match="different intents"):
        compare_paired(FAST, replay(frame.iloc[1:]), replay(frame))
    other = frame.assign(realized_r=frame["realized_r"] + 1)
    with pytest.raises(ValueError, match="different outcomes"):
        compare_paired(FAST, replay(other), replay(frame))


def test_a_holdout_overlapping_the_fit_window_is_refused_naming_both_windows() -> None:
    fit = FitWindow(start=pd.Timestamp("2010-01-04 21:00", tz="UTC"),
                    end=pd.Timestamp("2012-06-29 20:00", tz="UTC"), run_id="rp_fit")
    window = HoldoutWindow(start="2012-03-01", end="2013-03-01")
    with pytest.raises(WindowOverlapError) as caught:
        check_windows(window, fit, challenger="v2")
    (error,) = caught.value.errors
    assert error.field == "gate.window" and error.value == "2012-03-01..2013-03-01"
    assert "2010-01-04T21:00:00+00:00..2012-06-29T20:00:00+00:00" in error.rule
    assert "v2" in error.rule and "rp_fit" in error.rule
    with pytest.raises(WindowOverlapError):  # an open start reaches back over any fit
        check_windows(HoldoutWindow(start=None, end="2013-03-01"), fit)
    with pytest.raises(WindowOverlapError):  # the fit's last day is inside the holdout's
        check_windows(HoldoutWindow(start="2012-06-29", end="2013-03-01"), fit)
    check_windows(HoldoutWindow(start="2012-06-30", end=None), fit)  # after the fit
    check_windows(HoldoutWindow(start="2008-01-01", end="2009-12-31"), fit)  # before it
    check_windows(window, None)  # not fitted on a replay
    assert FitWindow.from_tags(fit.tags()) == fit and FitWindow.from_tags({}) is None


def test_the_point_rule_for_metric_only_scorers_keeps_its_bounds() -> None:
    gate = GateConfig(rules=(MetricRule(metric="coverage", tolerance=0.05),), min_n=30)
    assert compare(gate, {"coverage": 0.76, "n": 40.0}, {"coverage": 0.80})[1]
    assert not compare(gate, {"coverage": 0.74, "n": 40.0}, {"coverage": 0.80})[1]
    _, passed, reason = compare(gate, {"coverage": 0.9, "n": 12.0}, {"coverage": 0.8})
    assert not passed and reason.startswith("not enough evidence") and "n=12" in reason
    rule = MetricRule(metric="max_drawdown_r", tolerance=0.5, higher_is_better=False)
    assert check_rule(rule, {"max_drawdown_r": 3.4}, {"max_drawdown_r": 3.0}).passed
    assert not check_rule(rule, {"max_drawdown_r": 3.6}, {"max_drawdown_r": 3.0}).passed
    both = check_rule(MetricRule(metric="spearman"), {"spearman": math.nan},
                      {"spearman": math.nan})
    assert both.passed and "both" in both.note


def test_gate_config_round_trips_through_json_and_validates() -> None:
    gate = GateConfig(rules=(MetricRule(metric="auc", tolerance=0.02),
                             MetricRule(metric="spearman", tolerance=0.1)),
                      window=HoldoutWindow(symbols=("AAPL",), start="2012-01-01",
                                           end="2012-12-31", providers="none"),
                      min_n=10, n_boot=500, cluster="trade", method="BCa")
    again = GateConfig.from_json(gate.to_json())
    assert again == gate and again.hash == gate.hash
    assert GateConfig.from_json("{}") == DEFAULT_GATE
    assert DEFAULT_GATE.min_n == 200 and DEFAULT_GATE.window.intent_source == "corpus"
    with pytest.raises(ValueError, match="twice"):
        GateConfig(rules=(MetricRule(metric="auc"), MetricRule(metric="auc")))
    with pytest.raises(ValueError, match="tolerance"):
        MetricRule(metric="auc", tolerance=-0.1)
    with pytest.raises(ValueError, match=r"gate\.rulez: .*did you mean 'rules'"):
        GateConfig.from_json('{"rulez": []}')
    with pytest.raises(ValueError, match=r"gate\.min_n: must be >= 0 \(got -1\)"):
        GateConfig(min_n=-1)
    with pytest.raises(ValueError, match=r"gate\.cluster"):
        GateConfig(cluster="day")
    with pytest.raises(ValueError, match=r"gate\.rules\.coverage: must name a paired"):
        compare_paired(GateConfig(rules=(MetricRule(metric="coverage"),), n_boot=100),
                       replay(holdout(40)), replay(holdout(40)))
