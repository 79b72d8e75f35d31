"""``buddy user``: run through click's CliRunner on a real database file.

The group is not attached to ``buddy.cli.cli`` yet, so it is invoked on its own with
$BUDDY_DB pointing at the file (what it opens when no parent command gave it a store), and
once through a copy of the main group with ``user`` added, as ``buddy --db PATH user ...``.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from buddy.cli import cli as main_cli
from buddy.store import Store
from buddy.users.cli import user
from buddy.users.store import get_user, rules_history


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "buddy.duckdb"


def _user(db: Path, *args: str) -> Result:
    return CliRunner().invoke(user, list(args), env={"BUDDY_DB": str(db)})


def test_set_show_and_history(db: Path) -> None:
    first = _user(db, "set", "--user", "alice", "--currency", "usd", "--equity", "25000",
                  "--max-risk-pct", "0.5", "--allow-symbols", "aapl,msft",
                  "--windows", "09:30-11:30", "--no-stop-required")
    assert first.exit_code == 0, first.output
    assert "rules v1 (new version)" in first.output
    same = _user(db, "set", "--user", "alice", "--rule", "max_risk_per_trade_pct=0.5")
    assert "rules v1 (unchanged)" in same.output
    second = _user(db, "set", "--user", "alice", "--min-rr", "2", "--buying-power", "5e4")
    assert "rules v2 (new version)" in second.output

    state = get_user(Store(db), "alice")
    assert state.rules.allowed_symbols == ("AAPL", "MSFT")
    assert state.rules.stop_required is False and state.rules.min_reward_risk == 2.0
    assert state.account.buying_power_snapshot == 50_000.0

    show = _user(db, "show", "--user", "alice")
    assert show.exit_code == 0
    assert "rules v2" in show.output and "AAPL,MSFT" in show.output
    assert "09:30-11:30" in show.output and "25,000.00" in show.output
    history = _user(db, "history", "--user", "alice")
    lines = history.output.splitlines()
    assert lines[0].startswith("v1") and "first version" in lines[0]
    assert lines[1].startswith("v2") and "min_reward_risk 1.5 -> 2" in lines[1]


def test_a_typo_exits_2_with_the_closest_key_and_writes_nothing(db: Path) -> None:
    run = _user(db, "set", "--user", "alice", "--equity", "1000",
                "--rule", "max_risk_per_trade_pc=2")
    assert run.exit_code == 2
    assert "rules.max_risk_per_trade_pc" in run.stderr
    assert "did you mean 'max_risk_per_trade_pct'" in run.stderr
    assert get_user(Store(db), "alice") is None


def test_an_out_of_range_value_exits_2_naming_key_range_and_value(db: Path) -> None:
    _user(db, "set", "--user", "alice")
    run = _user(db, "set", "--user", "alice", "--max-risk-pct", "25")
    assert run.exit_code == 2
    assert "rules.max_risk_per_trade_pct" in run.stderr
    assert "between 0.01 and 10" in run.stderr and "25" in run.stderr
    assert [v.version for v in rules_history(Store(db), "alice")] == [1]


@pytest.mark.parametrize(("args", "words"), [
    (["--rule", "max_risk"], "must be KEY=VALUE"),
    (["--rule", "min_reward_risk=3", "--min-rr", "2"], "given twice"),
    (["--rule", "stop_required=maybe"], "must be true or false"),
    (["--allow-timeframes", "1d,2d"], "rules.allowed_timeframes"),
    (["--currency", "dollars"], "account.base_currency"),
    (["--disable-module", "data_qualty"], "did you mean 'data_quality'"),
    (["--enable-module", "data_qualty"], "did you mean 'data_quality'"),
    (["--disclosure-off", "data_source"], "did you mean 'data_sources'"),
    (["--disclosure-off", "no_prediction"], "cannot be switched off"),
    (["--disable-module", "data_quality", "--enable-module", "data_quality"],
     "also switched off"),
    (["--default-exit-template", "swing"], "must name a saved exit template"),
])
def test_bad_input_exits_2_naming_the_problem(db: Path, args: list[str], words: str) -> None:
    run = _user(db, "set", "--user", "alice", *args)
    assert run.exit_code == 2
    assert words in run.stderr
    assert get_user(Store(db), "alice") is None


def test_modules_and_disclosures_switch_off_and_on(db: Path) -> None:
    _user(db, "set", "--user", "alice", "--disable-module", "data_quality",
          "--disclosure-off", "data_sources", "--disclosure-off", "hypothetical")
    prefs = get_user(Store(db), "alice").preferences
    assert prefs.disabled_modules == ("data_quality",)
    assert prefs.disclosures_off == ("data_sources", "hypothetical")
    _user(db, "set", "--user", "alice", "--enable-module", "data_quality",
          "--disclosure-on", "hypothetical", "--strictness", "strict")
    prefs = get_user(Store(db), "alice").preferences
    assert prefs.disabled_modules == () and prefs.disclosures_off == ("data_sources",)
    assert prefs.strictness == "strict"
    shown = json.loads(_user(db, "show", "--user", "alice", "--json").output)
    assert shown["preferences"]["disclosures_off"] == ["data_sources"]
    assert shown["rules_version"] == 1


def test_exit_template_save_and_use_as_default(db: Path) -> None:
    _user(db, "set", "--user", "alice")
    run = _user(db, "exit-template", "save", "--user", "alice", "--name", "swing",
                "--target-r", "2", "--time-stop-bars", "5", "--breakeven-at-r", "1",
                "--partial", "1R:0.5")
    assert run.exit_code == 0, run.output
    assert "target 2R, time stop 5 bars, break-even at 1R, take 50% at 1R" in run.output
    assert _user(db, "set", "--user", "alice", "--default-exit-template",
                 "swing").exit_code == 0
    state = get_user(Store(db), "alice")
    template = state.context.exit_template(None)
    assert template.name == "swing" and template.partials[0].fraction == 0.5
    assert "swing: target 2R" in _user(db, "show", "--user", "alice").output


@pytest.mark.parametrize(("args", "words"), [
    (["--partial", "1R-0.5"], "must look like 1R:0.5"),
    (["--partial", "1R:0.7", "--partial", "2R:0.7"], "fractions must sum to <= 1"),
    (["--target-r", "0"], "exit_template.target_r"),
])
def test_a_bad_exit_template_exits_2(db: Path, args: list[str], words: str) -> None:
    _user(db, "set", "--user", "alice")
    run = _user(db, "exit-template", "save", "--user", "alice", "--name", "x", *args)
    assert run.exit_code == 2
    assert words in run.stderr
    assert get_user(Store(db), "alice").exit_templates == ()


def test_an_unknown_user_exits_2_with_the_command_to_run(db: Path) -> None:
    for command in ("show", "history"):
        run = _user(db, command, "--user", "ghost")
        assert run.exit_code == 2
        assert "user ghost has no account; run `buddy user set --user ghost ...`" in run.stderr
    run = _user(db, "exit-template", "save", "--user", "ghost", "--name", "x")
    assert run.exit_code == 2 and "has no account" in run.stderr


def test_attached_to_the_main_command_it_uses_its_db(db: Path, tmp_path: Path) -> None:
    buddy = click.Group("buddy", commands={**main_cli.commands, "user": user},
                        callback=main_cli.callback, params=main_cli.params)
    other = tmp_path / "elsewhere.duckdb"
    run = CliRunner().invoke(buddy, ["--db", str(db), "user", "set", "--user", "alice"],
                             env={"BUDDY_DB": str(other)})
    assert run.exit_code == 0, run.output
    assert get_user(Store(db), "alice") is not None
    assert not other.exists()
