"""The score and verdict rule (buddy.scoring): verdict by the worst ranked issue, the score
inside the verdict's band, unknown modules at the neutral value, a risk module unknown caps
the verdict at review, not_checked codes neither ranked nor scored; one rule for the scalar
report and the batch."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest

from buddy.batch.context import from_packs
from buddy.batch.orchestrate import run_batch
from buddy.config import ModuleConfig, ModuleSpec, ScoringConfig, param
from buddy.domain import Severity, Verdict
from buddy.errors import ConfigError
from buddy.evaluators import registry
from buddy.evaluators.base import Code, Evaluator, Evidence
from buddy.orchestrator import Orchestrator
from buddy.scoring import overall_columns
from tests import factories

CONFIG = ScoringConfig()


def _one(config: ScoringConfig = CONFIG, *, scores=(), weights=None, known=None,
         guards=None, worst: Severity | None = None):
    """Return the overall row of one report with these modules and one worst issue."""
    m = len(scores)
    return overall_columns(
        1, config, module_row=np.zeros(m, dtype=np.int64),
        module_score=np.array(scores, dtype=np.float64),
        module_weight=np.array(weights or [1.0] * m),
        module_known=np.array(known if known is not None else [True] * m, dtype=bool),
        module_guards_risk=np.array(guards or [False] * m, dtype=bool),
        issue_row=np.zeros(0 if worst is None else 1, dtype=np.int64),
        issue_rank=np.array([] if worst is None else [worst.rank], dtype=np.int64)).iloc[0]


@pytest.mark.parametrize(("worst", "verdict", "lo", "hi"), [
    (None, Verdict.CLEAR, 75, 100), (Severity.INFO, Verdict.CLEAR, 75, 100),
    (Severity.LOW, Verdict.CLEAR, 75, 100), (Severity.MEDIUM, Verdict.REVIEW, 50, 75),
    (Severity.HIGH, Verdict.FIX_FIRST, 25, 50), (Severity.CRITICAL, Verdict.BLOCKED, 0, 25)])
def test_the_worst_issue_sets_the_verdict_and_the_band(worst, verdict, lo, hi) -> None:
    for mean in (0.0, 40.0, 100.0):
        row = _one(scores=[mean], worst=worst)
        assert row["verdict"] == verdict.value
        assert row["overall_score"] == pytest.approx(lo + (hi - lo) * mean / 100, abs=0.05)
        assert lo <= row["overall_score"] <= hi


def test_the_weighted_module_mean_places_the_report_in_its_band() -> None:
    row = _one(scores=[100.0, 40.0], weights=[3.0, 1.0], worst=Severity.HIGH)
    assert row["module_mean"] == pytest.approx(85.0)
    assert row["overall_score"] == pytest.approx(25 + 25 * 0.85, abs=0.05)


def test_an_unknown_module_enters_at_the_neutral_value_not_renormalised_away() -> None:
    clean = _one(scores=[100.0, 100.0])
    unknown = _one(scores=[100.0, np.nan], known=[True, False])
    assert unknown["n_unknown"] == 1 and unknown["module_mean"] == pytest.approx(75.0)
    assert unknown["overall_score"] < clean["overall_score"] == 100.0  # unknown is not good
    neutral = dataclasses.replace(CONFIG, unknown_module_score=20.0)
    assert _one(neutral, scores=[100.0, np.nan], known=[True, False])["module_mean"] == (
        pytest.approx(60.0))


def test_an_unknown_risk_module_caps_the_verdict_at_review() -> None:
    row = _one(scores=[100.0, np.nan], known=[True, False], guards=[False, True])
    assert row["verdict"] == Verdict.REVIEW.value and bool(row["risk_unknown"])
    assert 50 <= row["overall_score"] <= 75
    # a worse verdict stays worse
    assert _one(scores=[100.0, np.nan], known=[True, False], guards=[False, True],
                worst=Severity.HIGH)["verdict"] == Verdict.FIX_FIRST.value
    # a risk module that ran does not cap anything
    assert _one(scores=[100.0], guards=[True])["verdict"] == Verdict.CLEAR.value


def test_bands_are_configurable_and_checked() -> None:
    wide = dataclasses.replace(CONFIG, score_band_critical=10.0, score_band_high=30.0,
                               score_band_medium=60.0)
    assert _one(wide, scores=[100.0], worst=Severity.HIGH)["overall_score"] == 30.0
    assert _one(wide, scores=[0.0])["overall_score"] == 60.0
    with pytest.raises(ConfigError, match="score_band_critical/score_band_high"):
        ScoringConfig(score_band_high=80.0)
    with pytest.raises(ConfigError, match="unknown_module_score"):
        ScoringConfig(unknown_module_score=101.0)


def test_no_module_no_score() -> None:
    assert np.isnan(_one(scores=[])["overall_score"])


# --------------------------------------------------------------- through the orchestrator
@dataclass(frozen=True, slots=True, kw_only=True)
class _Config(ModuleConfig):
    config_name = "scored"

    severity: str = param("medium", choices=tuple(s.value for s in Severity))
    unknown_input: bool = param(False)


class _Scored(Evaluator[_Config]):
    """One issue at the configured severity; a not_checked code (at LOW, which would cost
    5 points if it were scored) when ``unknown_input``."""

    name = "scored"
    version = "1"
    requires = frozenset({"market"})
    config_cls = _Config
    codes: ClassVar = {
        "FOUND": Code("Found", "Found {n}.", "Do less.", evidence=(Evidence("n", "bars"),),
                      action="DO_LESS", harm="a test harm", measure="realized_r"),
        "INPUT_UNKNOWN": Code("Input unknown", "The input was not known ({n}).",
                              "Provide it.", evidence=(Evidence("n", "bars"),),
                              action="PROVIDE_INPUT", kind="not_checked",
                              harm="not judged: an input is missing")}

    def evaluate_batch(self, ctx):
        rows = np.arange(ctx.n)
        blocks = [self.fire("FOUND", rows, Severity(self.config.severity), n=1)]
        if self.config.unknown_input:
            blocks.append(self.fire("INPUT_UNKNOWN", rows, Severity.LOW, n=0))
        return self.result(ctx.n, blocks)


class _Risk(_Scored):
    name = "risk_guard"
    requires = frozenset({"market", "account"})
    guards_risk = True


@pytest.fixture(autouse=True)
def _registered() -> Iterator[None]:
    for cls in (_Scored, _Risk):
        registry.register(cls)
    yield
    for cls in (_Scored, _Risk):
        registry.unregister(cls.name)


def _orchestrator(**params) -> Orchestrator:
    return Orchestrator(ScoringConfig(modules=(
        ModuleSpec(name="scored", weight=2.0, params=params),
        ModuleSpec(name="risk_guard", params={"severity": "info"}))))


def test_a_not_checked_code_is_listed_never_ranked_and_never_scored() -> None:
    plain = _orchestrator().run(factories.intent(), factories.pack())
    report = _orchestrator(unknown_input=True).run(factories.intent(), factories.pack())
    assert report.overall_score == plain.overall_score
    assert report.verdict is plain.verdict is Verdict.REVIEW
    assert next(m for m in report.modules if m.module == "scored").score == 85.0
    assert "INPUT_UNKNOWN" not in {i.code for i in report.ranked_issues}
    assert "INPUT_UNKNOWN" not in {i.code for i in report.top_issues}
    (item,) = report.not_checked
    assert (item.module, item.code, item.what) == ("scored", "INPUT_UNKNOWN", "Input unknown")
    assert "not checked: input unknown" in str(report)
    assert [i["code"] for i in report.to_dict()["issues"]] == ["FOUND", "FOUND"][:len(
        report.ranked_issues)]
    assert report.to_dict()["not_checked"][0]["why"] == "The input was not known (0 bars)."


def test_a_skipped_risk_module_is_named_and_the_verdict_is_at_best_review() -> None:
    orch = _orchestrator(severity="info")
    ran = orch.run(factories.intent(), factories.pack())
    assert ran.verdict is Verdict.CLEAR
    skipped = orch.run(factories.intent(),
                       factories.pack(account=None, missing={"account": "no account for u1"}))
    assert skipped.verdict is Verdict.REVIEW
    assert skipped.not_checked_text() == "not checked: risk_guard (no account for u1)"
    assert skipped.overall_score < ran.overall_score
    assert 50 <= skipped.overall_score <= 75
    assert all(i.code != "CONTEXT_MISSING" for i in skipped.ranked_issues)


def test_the_batch_gives_each_row_what_a_report_of_one_gives() -> None:
    orch = _orchestrator(severity="high", unknown_input=True)
    packs = [factories.pack(), factories.pack(account=None, missing={"account": "none"}),
             factories.pack()]
    intents = [factories.intent(), factories.intent(), factories.intent(proposed_size=5)]
    batch = run_batch(orch, from_packs(intents, packs)).overall
    for i, (intent, pack) in enumerate(zip(intents, packs, strict=True)):
        report = orch.run(intent, pack)
        row = batch.iloc[i]
        assert row["overall_score"] == report.overall_score
        assert row["overall_severity"] == report.overall_severity.value
        assert row["verdict"] == report.verdict.value
        assert row["n_issues"] == len(report.all_issues)
        assert row["n_ranked"] == len(report.ranked_issues)
        assert row["n_unknown"] == report.n_unknown
