"""Summaries with n and intervals, the journal, and the review/summary/journal commands."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from statsmodels.stats.proportion import proportion_confint

from buddy.cli import cli
from buddy.store import Store
from buddy.store.trades import read_journal, read_trades
from buddy.trades.summary import bootstrap_mean, load_summary, period_bounds, wilson
from tests.trades.conftest import T0


def test_day_summary_counts_r_with_n_intervals_process_and_issues(
        reviewed_store: Store) -> None:
    s = load_summary(reviewed_store, "u1", "day", T0.date(), n_boot=500)
    assert s.n_trades == 3 and s.n_with_r == 2  # the unplanned trade has no stop: no R
    assert s.mean_r.value == pytest.approx((1.5 - 1.0) / 2) and s.mean_r.n == 2
    # two values: every resample mean is -1, 0.25 or 1.5
    assert (s.mean_r.low, s.mean_r.high) == (pytest.approx(-1.0), pytest.approx(1.5))
    assert s.win_rate.value == pytest.approx(2 / 3) and s.win_rate.n == 3
    assert s.grades == {"A": 1, "C": 1, "not graded": 1}
    assert s.process_outcome == {"bad_process_good_outcome": 1,
                                 "good_process_bad_outcome": 1, "process_not_graded": 1}
    assert dict(s.issue_codes) == {"RISK_ABOVE_BUDGET": 1, "ENTRY_MID_BAR": 1}
    assert dict(s.rule_breaks) == {"EXIT_OFF_PLAN": 1, "ISSUES_NOT_ACTED_ON": 1}
    assert [t["symbol"] for t in s.best_by_process] == ["MSFT", "AAPL"]
    assert s.worst_by_process[0]["process_grade"] == "C"
    assert s.equity_r == pytest.approx([-1.0, 0.5])  # by close: MSFT 16:45, AAPL 17:50
    week = load_summary(reviewed_store, "u1", "week", T0.date(), n_boot=500)
    assert week.n_trades == 3 and week.start.weekday() == 0
    empty = load_summary(reviewed_store, "u1", "day", T0.date().replace(day=5))
    assert empty.n_trades == 0 and empty.mean_r.value is None and empty.mean_r.n == 0


def test_intervals_state_their_method_and_refuse_tiny_samples() -> None:
    one = bootstrap_mean(np.array([0.7]))
    assert one.value == 0.7 and one.low is None and "n too small" in one.text()
    rate = wilson(7, 20)
    low, high = proportion_confint(7, 20, alpha=0.05, method="wilson")
    assert (rate.low, rate.high) == (pytest.approx(low), pytest.approx(high))
    with pytest.raises(ValueError, match="period"):
        period_bounds("month", T0.date())


@pytest.fixture
def own_store(reviewed_store: Store, tmp_path: Path) -> Path:
    path = tmp_path / "buddy.duckdb"
    shutil.copy(reviewed_store.path, path)
    return path


def test_journal_notes_on_trades_and_intents_with_tags(own_store: Path) -> None:
    store = Store(own_store)
    trade_id = read_trades(store, "u1")["trade_id"].iloc[0]
    runner = CliRunner()
    db = ["--db", str(own_store)]
    added = runner.invoke(cli, [*db, "journal", "add", "--user", "u1", "--trade", trade_id,
                                "--note", "Chased the open", "--tag", "fomo", "--tag", "open"])
    assert added.exit_code == 0, added.output
    on_intent = runner.invoke(cli, [*db, "journal", "add", "--user", "u1", "--intent",
                                    "i-msft", "--note", "Waited for the pullback"])
    assert on_intent.exit_code == 0, on_intent.output
    notes = read_journal(store, "u1")
    assert notes["note_text"].tolist() == ["Chased the open", "Waited for the pullback"]
    assert json.loads(notes["tags_json"].iloc[0]) == ["fomo", "open"]
    assert read_journal(store, "u1", tag="fomo")["trade_id_optional"].tolist() == [trade_id]
    listed = runner.invoke(cli, [*db, "journal", "list", "--user", "u1", "--tag", "fomo"])
    assert "Chased the open" in listed.output and "Waited" not in listed.output
    # another user's trade, or neither target: refused, nothing written
    refused = runner.invoke(cli, [*db, "journal", "add", "--user", "u2", "--trade", trade_id,
                                  "--note", "x"])
    assert refused.exit_code == 2 and "trade_id" in refused.output
    neither = runner.invoke(cli, [*db, "journal", "add", "--user", "u1", "--note", "x"])
    assert neither.exit_code == 2 and "--trade/--intent" in neither.output
    assert len(read_journal(store, "u1")) == 2


def test_review_and_summary_commands_print_from_the_store(own_store: Path) -> None:
    store = Store(own_store)
    trades = read_trades(store, "u1")
    unplanned = trades[trades["linked_intent_id"].isna()]["trade_id"].iloc[0]
    runner = CliRunner()
    db = ["--db", str(own_store)]
    out = runner.invoke(cli, [*db, "review", unplanned, "--stop", "103.0"])
    assert out.exit_code == 0, out.output
    assert "MAE/MFE not measured on 1h bars" in out.output
    assert read_trades(store, "u1", trade_ids=[unplanned])["r_source"].iloc[0] == "user"
    summary = runner.invoke(cli, [*db, "summary", "--user", "u1", "--period", "day",
                                  "--date", str(T0.date()), "--n-boot", "200"])
    assert summary.exit_code == 0, summary.output
    assert "3 closed trades" in summary.output and "bootstrap percentile 95%" in summary.output
    assert "n=3" in summary.output  # mean R now over three trades with a stop
    missing = runner.invoke(cli, [*db, "review", "T-nope"])
    assert missing.exit_code == 2 and "trade_id" in missing.output
