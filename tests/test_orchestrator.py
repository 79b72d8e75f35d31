"""The orchestrator: failing modules become items, issues are deduped, ranked and capped."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest

from buddy.config import ModuleConfig, ModuleSpec, ScoringConfig, param
from buddy.domain import ModuleStatus, Severity, Verdict
from buddy.evaluators import registry
from buddy.evaluators.base import Code, Evaluator, Evidence
from buddy.orchestrator import Orchestrator
from tests import factories


@dataclass(frozen=True, slots=True, kw_only=True)
class _FixedConfig(ModuleConfig):
    config_name = "fixed_a"

    n_issues: int = param(1, lo=0, hi=10)
    severity: str = param("medium", choices=tuple(s.value for s in Severity))


def _code() -> Code:
    return Code("Found {n}", "Value is {n}.", "Do less than {n}.",
                evidence=(Evidence("n", "bars"),), action="DO_LESS", harm="a test harm",
                measure="realized_r")


class _Fixed(Evaluator[_FixedConfig]):
    name = "fixed_a"
    version = "1"
    requires = frozenset({"market"})
    config_cls = _FixedConfig
    codes: ClassVar = {f"CODE_{i}": _code() for i in range(10)}

    def evaluate_batch(self, ctx):
        sev = Severity(self.config.severity)
        rows = np.arange(ctx.n)
        return self.result(ctx.n, [self.fire(f"CODE_{i}", rows, sev, n=i)
                                   for i in range(self.config.n_issues)])


class _FixedB(_Fixed):
    name = "fixed_b"


class _Broken(_Fixed):
    name = "broken"

    def evaluate_batch(self, ctx):
        raise ZeroDivisionError("boom")


class _NeedsRegime(_Fixed):
    name = "needs_regime"
    requires = frozenset({"regime"})


@pytest.fixture(autouse=True)
def _registered() -> Iterator[None]:
    classes = (_Fixed, _FixedB, _Broken, _NeedsRegime)
    for cls in classes:
        registry.register(cls)
    yield
    for cls in classes:
        registry.unregister(cls.name)


def _config(*specs: ModuleSpec, **kw) -> ScoringConfig:
    return ScoringConfig(modules=specs, **kw)


def test_a_failing_module_becomes_an_error_item() -> None:
    orch = Orchestrator(_config(ModuleSpec(name="fixed_a"), ModuleSpec(name="broken")))
    report = orch.run(factories.intent(), factories.pack())
    broken = next(m for m in report.modules if m.module == "broken")
    assert broken.status is ModuleStatus.ERROR and "ZeroDivisionError" in broken.error
    assert any(i.code == "MODULE_ERROR" and i.module == "broken" for i in report.all_issues)
    # the failed module enters at the neutral 50; its MEDIUM error item makes it a review
    fixed = next(m for m in report.modules if m.module == "fixed_a").score
    assert report.verdict is Verdict.REVIEW
    assert report.overall_score == pytest.approx(50 + 25 * (fixed + 50) / 2 / 100, abs=0.05)
    assert [(n.module, n.code) for n in report.not_checked] == [("broken", "MODULE_ERROR")]
    assert "broken (failed: ZeroDivisionError: boom)" in str(report)


def test_missing_context_skips_with_the_reason() -> None:
    orch = Orchestrator(_config(ModuleSpec(name="needs_regime")))
    report = orch.run(factories.intent(), factories.pack())
    (result,) = report.modules
    assert result.status is ModuleStatus.SKIPPED
    assert result.missing == {"regime": "not computed in tests"}
    # unknown enters at the neutral 50, in the clear band (the module guards no risk)
    assert report.overall_score == pytest.approx(75 + 25 * 50 / 100)
    (issue,) = report.all_issues
    assert issue.code == "CONTEXT_MISSING" and issue.fact("reason").value == (
        "not computed in tests")
    assert report.top_issues == () and report.ranked_issues == ()  # not an issue
    assert report.not_checked_text() == "not checked: needs_regime (not computed in tests)"


def test_duplicates_keep_the_most_severe() -> None:
    orch = Orchestrator(_config(
        ModuleSpec(name="fixed_a", params={"n_issues": 2, "severity": "low"}),
        ModuleSpec(name="fixed_b", params={"n_issues": 2, "severity": "high"})))
    report = orch.run(factories.intent(), factories.pack())
    assert [(i.module, i.code) for i in report.all_issues] == [("fixed_b", "CODE_0"),
                                                               ("fixed_b", "CODE_1")]


def test_ranked_and_capped_between_min_and_max() -> None:
    orch = Orchestrator(_config(
        ModuleSpec(name="fixed_a", params={"n_issues": 8, "severity": "medium"}),
        max_issues=6))
    report = orch.run(factories.intent(), factories.pack())
    assert len(report.all_issues) == 8 and len(report.top_issues) == 6
    low = Orchestrator(_config(ModuleSpec(name="fixed_a", params={"n_issues": 5,
                                                                  "severity": "info"})))
    assert len(low.run(factories.intent(), factories.pack()).top_issues) == 3


def test_overall_score_is_the_weighted_mean() -> None:
    orch = Orchestrator(_config(
        ModuleSpec(name="fixed_a", weight=3.0, params={"n_issues": 0}),
        ModuleSpec(name="fixed_b", weight=1.0, params={"n_issues": 2, "severity": "high"})))
    report = orch.run(factories.intent(), factories.pack())
    # the weighted mean (3 * 100 + 1 * 40) / 4 places the report within the HIGH band 25-50
    assert report.overall_score == pytest.approx(25 + 25 * (3 * 100 + 1 * 40) / 4 / 100,
                                                 abs=0.05)
    assert report.overall_severity is Severity.HIGH and report.verdict is Verdict.FIX_FIRST


def test_disabled_modules_do_not_run_and_are_reported() -> None:
    orch = Orchestrator(_config(ModuleSpec(name="fixed_a"), ModuleSpec(name="fixed_b")),
                        disabled={"fixed_b"})
    report = orch.run(factories.intent(), factories.pack())
    assert [m.module for m in report.modules] == ["fixed_a"]
    assert report.disabled_modules == ("fixed_b",)
    assert "switched off: fixed_b" in str(report)


def test_module_config_errors_surface_at_construction() -> None:
    from buddy.errors import ConfigError

    with pytest.raises(ConfigError, match=r"fixed_a\.n_isues.*did you mean 'n_issues'"):
        Orchestrator(_config(ModuleSpec(name="fixed_a", params={"n_isues": 1})))
    with pytest.raises(KeyError, match="did you mean 'fixed_a'"):
        Orchestrator(_config(ModuleSpec(name="fixed_aa")))


def test_report_json_carries_modules_config_and_issues() -> None:
    orch = Orchestrator(_config(ModuleSpec(name="fixed_a", params={"n_issues": 1})))
    data = orch.run(factories.intent(), factories.pack()).to_dict()
    assert data["config_hash"] == orch.config.hash
    assert data["issues"][0]["code"] == "CODE_0"
    assert data["issues"][0]["evidence"][0] == {"name": "n", "value": 0, "unit": "bars",
                                                "threshold": None}
    assert data["issues"][0]["recommendation"]["text"] == "Do less than 0 bars."
    assert data["modules_run"][0]["version"] == "1"
