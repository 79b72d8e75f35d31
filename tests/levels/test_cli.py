"""``buddy jobs levels`` and ``buddy context levels``, through click on real database files:
on their own (opening $BUDDY_DB) and attached to a copy of the main group (``--db PATH``)."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pandas as pd
import pytest
from click.testing import CliRunner

from buddy.cli import cli as main_cli
from buddy.levels.cli import context_levels, jobs_levels
from buddy.levels.provider import key_levels_at
from buddy.store import Store


@pytest.fixture
def db(sample_db: Path) -> Path:
    return sample_db


def test_context_levels_prints_the_snapshot_on_the_as_of_basis(db: Path) -> None:
    run = CliRunner().invoke(context_levels, ["aapl", "--tf", "1d", "--as-of",
                                              "2005-02-28T15:00Z"], env={"BUDDY_DB": str(db)})
    assert run.exit_code == 0, run.output
    snap = key_levels_at(Store(db), "AAPL", "1d", pd.Timestamp("2005-02-28T15:00Z"))
    assert snap is not None
    lines = run.output.splitlines()
    assert lines[0].startswith("AAPL 1d key levels at the bar opened 2005-02-25T14:30:00")
    assert f"high {snap.prior_day_high:,.3f}" in lines[1]
    assert any(line.strip().startswith("pivots camarilla") for line in lines)
    assert sum(line.strip().startswith("avwap ") for line in lines) == len(snap.anchored_vwaps)


def test_context_levels_on_a_date_reads_the_bar_of_that_day(db: Path) -> None:
    # the case: 2012-06-01 means that session's close, as in a report; its bar closed
    run = CliRunner().invoke(context_levels, ["AAPL", "--tf", "1d", "--as-of", "2012-06-01"],
                             env={"BUDDY_DB": str(db)})
    assert run.exit_code == 0, run.output
    lines = run.output.splitlines()
    assert lines[0].startswith("AAPL 1d key levels at the bar opened 2012-06-01T13:30:00")
    assert "(as of 2012-06-01T20:00:00+00:00;" in lines[0]
    assert "high 572.650" in lines[1] and "low 560.520" in lines[1]
    assert not any(line.strip().startswith("avwap month") for line in lines)


def test_context_levels_json_and_user_anchor(db: Path) -> None:
    from buddy.levels.anchors import save_level_anchor

    save_level_anchor(Store(db), "cli-user", "EURUSD", "ecb", "2017-06-08T11:45Z")
    run = CliRunner().invoke(context_levels, ["EURUSD", "--tf", "1h", "--as-of",
                                              "2017-06-15T14:00Z", "--json", "--user",
                                              "cli-user"], env={"BUDDY_DB": str(db)})
    assert run.exit_code == 0, run.output
    data = json.loads(run.output)
    assert data["symbol"] == "EURUSD" and data["ts"] == "2017-06-15T13:00:00+00:00"
    assert set(data["pivots"]) == {"classic", "fibonacci", "camarilla"}
    assert "user:ecb" in [v["anchor"] for v in data["anchored_vwaps"]]


def test_errors_exit_2_naming_the_field(db: Path) -> None:
    env = {"BUDDY_DB": str(db)}
    unknown = CliRunner().invoke(context_levels, ["NOPE", "--tf", "1d"], env=env)
    assert unknown.exit_code == 2 and "symbol" in unknown.output
    early = CliRunner().invoke(context_levels, ["IBM", "--tf", "1d", "--as-of", "1990-01-02"],
                               env=env)
    assert early.exit_code == 2 and "as_of" in early.output
    bad = CliRunner().invoke(context_levels, ["IBM", "--tf", "1d", "--as-of", "soon"], env=env)
    assert bad.exit_code == 2 and "as_of" in bad.output


def test_jobs_levels_attached_to_the_main_group(db: Path) -> None:
    group = click.Group("buddy", params=main_cli.params, callback=main_cli.callback,
                        commands=dict(main_cli.commands))
    jobs = click.Group("jobs", commands={"levels": jobs_levels})
    group.add_command(jobs)
    context = click.Group("context", commands={"levels": context_levels})
    group.add_command(context)
    run = CliRunner().invoke(group, ["--db", str(db), "jobs", "levels", "--symbols", "ibm",
                                     "--timeframes", "1w", "--workers", "1"])
    assert run.exit_code == 0, run.output
    assert run.output.strip().endswith("levels: 1 of 1 series updated, "
                                       f"{len(Store(db).bars('IBM', '1w'))} rows written")
    again = CliRunner().invoke(group, ["--db", str(db), "jobs", "levels", "--symbols", "IBM"])
    assert "levels: 1 of 2 series updated" in again.output  # 1d had no rows yet
    shown = CliRunner().invoke(group, ["--db", str(db), "context", "levels", "IBM", "--tf",
                                       "1w"])
    assert shown.exit_code == 0 and shown.output.startswith("IBM 1w key levels")
