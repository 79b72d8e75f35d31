"""The gate as a pure function: rules, tolerances, undefined metrics, min_n, its JSON form."""

from __future__ import annotations

import math

import pytest

from experiments.gate import (
    DEFAULT_GATE,
    GateConfig,
    HoldoutWindow,
    MetricRule,
    check_rule,
    compare,
)

PRODUCTION = {"auc": 0.60, "spearman": 0.20, "decile_spread_r": 0.50, "n": 80.0}


def test_a_clearly_worse_challenger_is_refused_and_the_failing_metric_named() -> None:
    worse = {**PRODUCTION, "auc": 0.55}
    checks, passed, reason = compare(DEFAULT_GATE, worse, PRODUCTION)
    assert not passed
    assert "auc" in reason and "spearman" not in reason
    assert [c.metric for c in checks if not c.passed] == ["auc"]


def test_a_challenger_within_tolerance_or_better_passes() -> None:
    within = {"auc": 0.595, "spearman": 0.185, "decile_spread_r": 0.46, "n": 80.0}
    assert compare(DEFAULT_GATE, within, PRODUCTION)[1]
    better = {"auc": 0.70, "spearman": 0.30, "decile_spread_r": 0.90, "n": 80.0}
    assert compare(DEFAULT_GATE, better, PRODUCTION)[1]
    assert compare(DEFAULT_GATE, PRODUCTION, PRODUCTION)[1]


def test_just_beyond_the_tolerance_fails() -> None:
    gate = GateConfig(rules=(MetricRule(metric="auc", tolerance=0.01),), min_n=0)
    assert compare(gate, {"auc": 0.5901}, {"auc": 0.60})[1]
    assert not compare(gate, {"auc": 0.5899}, {"auc": 0.60})[1]


def test_lower_is_better_metrics_flip_the_bound() -> None:
    rule = MetricRule(metric="max_drawdown_r", tolerance=0.5, higher_is_better=False)
    assert check_rule(rule, {"max_drawdown_r": 3.4}, {"max_drawdown_r": 3.0}).passed
    assert not check_rule(rule, {"max_drawdown_r": 3.6}, {"max_drawdown_r": 3.0}).passed


def test_undefined_metrics_pass_only_when_undefined_for_both() -> None:
    rule = MetricRule(metric="spearman", tolerance=0.0)
    both = check_rule(rule, {"spearman": math.nan}, {"spearman": math.nan})
    assert both.passed and "both" in both.note
    assert not check_rule(rule, {"spearman": math.nan}, {"spearman": 0.1}).passed
    assert check_rule(rule, {"spearman": 0.1}, {}).passed


def test_too_few_outcomes_refuses_even_a_better_challenger() -> None:
    better_but_thin = {"auc": 0.9, "spearman": 0.9, "decile_spread_r": 3.0, "n": 12.0}
    checks, passed, reason = compare(DEFAULT_GATE, better_but_thin, PRODUCTION)
    assert not passed and "n=12" in reason
    assert all(c.passed for c in checks)


def test_gate_config_round_trips_through_json_and_validates() -> None:
    gate = GateConfig(rules=(MetricRule(metric="auc", tolerance=0.02),
                             MetricRule(metric="mean_r", tolerance=0.1)),
                      window=HoldoutWindow(symbols=("AAPL",), start="2012-01-01",
                                           end="2012-12-31", providers="none"),
                      min_n=10)
    again = GateConfig.from_json(gate.to_json())
    assert again == gate and again.hash == gate.hash
    assert GateConfig.from_json("{}") == DEFAULT_GATE
    with pytest.raises(ValueError, match="twice"):
        GateConfig(rules=(MetricRule(metric="auc"), MetricRule(metric="auc")))
    with pytest.raises(ValueError, match="tolerance"):
        MetricRule(metric="auc", tolerance=-0.1)
    with pytest.raises(ValueError, match=r"gate\.rulez: .*did you mean 'rules'"):
        GateConfig.from_json('{"rulez": []}')
    with pytest.raises(ValueError, match=r"gate\.min_n: must be >= 0 \(got -1\)"):
        GateConfig(min_n=-1)
    with pytest.raises(ValueError, match=r"gate\.min_n: must be a whole number"):
        GateConfig(min_n=2.5)
    assert GateConfig.from_mapping({"window": {"symbols": ["IBM"]}}).window.symbols == ("IBM",)
    with pytest.raises(ValueError, match="providers"):
        HoldoutWindow(providers="some")
