"""The report on the bundled real data: the AAPL demo intent (risk 2.33x the budget) leads
with "fix first" and scores in the HIGH band; without an account the risk checks are named as
not checked and the verdict is no better than review; every ranked issue is reachable; the
as-of time reads in the exchange's zone; no stale context message; evidence in words."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from buddy import Buddy
from buddy.cli import cli
from buddy.config import default_scoring_config
from buddy.demo import SAMPLE_IDEAS, ensure_demo_user, place_idea
from buddy.domain import Severity, Verdict
from buddy.report import BuddyReport
from buddy.store import Store

AAPL = dict(symbol="AAPL", side="long", timeframe="1d", entry=560.99, stop=537.68,
            target=607.62, size=100, as_of="2012-06-01")


@pytest.fixture(scope="module")
def db(sample_store: Store, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("verdict") / "buddy.duckdb"
    shutil.copy(sample_store.path, path)
    ensure_demo_user(Store(path))
    return path


@pytest.fixture(scope="module")
def buddy(db: Path) -> Buddy:
    return Buddy.open(db)


@pytest.fixture(scope="module")
def demo(buddy: Buddy) -> BuddyReport:
    return buddy.evaluate(user="demo", **AAPL, log=False)


@pytest.fixture(scope="module")
def no_account(buddy: Buddy) -> BuddyReport:
    return buddy.evaluate(user="nobody", **AAPL, log=False)


def test_risk_above_budget_leads_with_fix_first_and_a_score_in_the_high_band(
        demo: BuddyReport) -> None:
    risk = next(i for i in demo.ranked_issues if i.code == "RISK_ABOVE_BUDGET")
    assert risk.severity is Severity.HIGH
    assert risk.fact("risk_pct_equity").value == pytest.approx(2.331, abs=0.001)  # 2.33x 1%
    assert demo.verdict is Verdict.FIX_FIRST
    assert demo.overall_score is not None and 25 <= demo.overall_score <= 50
    assert demo.top_issues[0].code == "RISK_ABOVE_BUDGET"
    assert str(demo).splitlines()[1].startswith("  verdict FIX FIRST   score ")


def test_without_an_account_the_risk_checks_are_not_checked_and_at_best_review(
        no_account: BuddyReport, demo: BuddyReport) -> None:
    assert {"risk_reward", "exit_plan"} <= {n.module for n in no_account.not_checked
                                            if n.code == "CONTEXT_MISSING"}
    banner = no_account.not_checked_text()
    assert banner.startswith("not checked: risk_reward, exit_plan (user nobody has no account")
    assert banner in str(no_account)
    assert no_account.verdict.rank >= Verdict.REVIEW.rank
    assert no_account.overall_score is not None and no_account.overall_score <= 75
    assert all(i.code != "CONTEXT_MISSING" for i in no_account.ranked_issues)
    # a skipped module no longer raises the score above the report that checked the risk
    assert no_account.n_unknown >= 2


def test_the_as_of_time_reads_in_the_exchange_zone_at_the_session_close(
        demo: BuddyReport) -> None:
    assert demo.intent.as_of.isoformat() == "2012-06-01T20:00:00+00:00"
    assert demo.as_of_text() == "2012-06-01 16:00 America/New_York"
    assert "as of 2012-06-01 16:00 America/New_York" in str(demo).splitlines()[0]


def test_context_missing_names_only_pieces_a_module_reads(demo: BuddyReport) -> None:
    assert "state" not in demo.context_missing  # no module reads it: not missing from this
    assert not any("HMM provider" in reason for reason in demo.context_missing.values())
    read = {"market", "account", "mtfa", "regime", "levels", "schedule", "portfolio",
            "strategy", "behavior"}
    assert set(demo.context_missing) <= read


def test_evidence_reads_in_words(demo: BuddyReport) -> None:
    words = next(r for r in demo.rendered if r.code == "RISK_ABOVE_BUDGET")
    assert "risk, % of equity: 2.33%" in " | ".join(words.evidence)
    assert not any("risk_pct_equity" in line for line in words.evidence)
    assert "risk_pct_equity" not in demo._repr_html_()


def test_issues_below_the_cap_are_reachable(db: Path) -> None:
    config = dataclasses.replace(default_scoring_config(), min_issues=1, max_issues=1)
    buddy = Buddy(Store(db), config)
    report = buddy.evaluate(**place_idea(buddy, SAMPLE_IDEAS[1]), log=False)  # EURUSD 1h
    n = len(report.ranked_issues)
    assert n > len(report.top_issues) == 1  # the case --all exists for
    assert f"issues {n} (top 1 shown; --all shows every one)" in str(report)
    hidden = report.ranked_issues[1:]
    assert not any(f"({i.module}/{i.code})" in str(report) for i in hidden)
    full = report.text(show_all=True)
    assert all(f"({i.module}/{i.code})" in full for i in report.ranked_issues)
    items = report.to_dict()["issues"]
    assert [(item["rank"], item["code"], item["shown"]) for item in items] == [
        (k + 1, issue.code, k == 0) for k, issue in enumerate(report.ranked_issues)]
    assert all(item["title"] and item["explanation"] for item in items)
    assert f"{n - 1} more issue(s)" in report._repr_html_()


def test_the_cli_prints_every_ranked_issue_with_all_and_ranks_them_in_json(
        db: Path, demo: BuddyReport) -> None:
    args = ["--db", str(db), "evaluate", "--user", "demo", "--symbol", "AAPL", "--side",
            "long", "--timeframe", "1d", "--entry", "560.99", "--stop", "537.68", "--target",
            "607.62", "--size", "100", "--as-of", "2012-06-01", "--no-log"]
    runner = CliRunner()
    full = runner.invoke(cli, [*args, "--all"])
    data = json.loads(runner.invoke(cli, [*args, "--json"]).output)
    assert full.exit_code == 0, full.output
    n = len(demo.ranked_issues)
    assert f"issues {n} (all {n} shown)" in full.output
    for issue in demo.ranked_issues:
        assert f"({issue.module}/{issue.code})" in full.output
    assert [(item["rank"], item["code"]) for item in data["issues"]] == [
        (k + 1, issue.code) for k, issue in enumerate(demo.ranked_issues)]
    assert [item["shown"] for item in data["issues"]] == [
        k < len(demo.top_issues) for k in range(n)]
    assert data["verdict"] == "fix first" and data["overall_score"] <= 50
    assert data["as_of_local"] == "2012-06-01 16:00 America/New_York"
    assert data["not_checked"] == [item.as_dict() for item in demo.not_checked]
