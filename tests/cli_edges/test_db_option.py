"""``--db`` on every subcommand, and a --db naming no file refused by the commands that read
(a mistyped path must not start a new, empty database)."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from buddy.cli import CREATING_COMMANDS, cli

EVALUATE = ["evaluate", "--user", "cli-edge", "--symbol", "AAPL", "--side", "long", "--tf",
            "1d", "--entry", "560.99", "--stop", "540", "--target", "600", "--size", "10",
            "--as-of", "2012-06-01", "--no-log", "--json"]

#: Commands that only read the file, with arguments that get them as far as opening it.
READERS = [EVALUATE, ["data", "info"], ["jobs", "features"], ["replay", "list"],
           ["replay", "run", "--source", "database"],
           ["context", "levels", "AAPL", "--tf", "1d", "--as-of", "2012-06-01"],
           ["user", "show", "--user", "cli-edge"], ["profile", "--user", "cli-edge"]]


def _every_command(group: click.Group, ctx: click.Context, path: tuple[str, ...] = ()
                   ) -> list[tuple[tuple[str, ...], click.Command]]:
    found = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, name
        found.append(((*path, name), command))
        if isinstance(command, click.Group):
            found += _every_command(command, click.Context(command, parent=ctx,
                                                           info_name=name), (*path, name))
    return found


def test_every_subcommand_takes_db() -> None:
    commands = _every_command(cli, click.Context(cli, info_name="buddy"))
    assert len(commands) > 30  # plug-ins (replay, experiments) and lazy groups included
    missing = [" ".join(path) for path, command in commands
               if not any("--db" in getattr(param, "opts", ()) for param in command.params)]
    assert not missing, missing
    names = {path for path, _ in commands}
    assert names >= CREATING_COMMANDS  # every command named as a creator exists


@pytest.mark.parametrize("args", [
    [*EVALUATE[:1], "--db", "{db}", *EVALUATE[1:]],
    ["data", "info", "--db", "{db}"],
    ["replay", "list", "--db", "{db}"],
    ["replay", "--db", "{db}", "list"],
    ["context", "levels", "AAPL", "--tf", "1d", "--as-of", "2012-06-01", "--db", "{db}"],
], ids=["evaluate", "data-info", "replay-list", "replay-group", "context-levels"])
def test_db_after_the_subcommand_opens_that_file(edge_db: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 args: list[str]) -> None:
    # the default file is somewhere else and absent: only the subcommand's --db can work
    monkeypatch.setenv("BUDDY_DB", str(tmp_path / "elsewhere.duckdb"))
    run = CliRunner().invoke(cli, [a.replace("{db}", str(edge_db)) for a in args])
    assert run.exit_code == 0, run.output + run.stderr
    assert not (tmp_path / "elsewhere.duckdb").exists()


@pytest.mark.parametrize("args", READERS, ids=lambda a: "-".join(a[:2]))
def test_a_reader_refuses_a_db_that_names_no_file(tmp_path: Path, args: list[str]) -> None:
    missing = tmp_path / "typo.duckdb"
    run = CliRunner().invoke(cli, ["--db", str(missing), *args])
    assert run.exit_code == 2, run.output + run.stderr
    assert "--db" in run.stderr and str(missing) in run.stderr
    assert "existing database file" in run.stderr
    assert not missing.exists() and list(tmp_path.iterdir()) == []


def test_a_creating_command_still_starts_a_new_file(tmp_path: Path) -> None:
    bars = tmp_path / "bars.csv"
    bars.write_text("date,open,high,low,close,volume\n"
                    "2020-01-02,10,11,9,10.5,100\n2020-01-03,10.5,11.5,10,11,120\n")
    new = tmp_path / "new.duckdb"
    run = CliRunner().invoke(cli, ["data", "import", str(bars), "--symbol", "NEWCO", "--tf",
                                   "1d", "--tz", "America/New_York", "--db", str(new)])
    assert run.exit_code == 0, run.output + run.stderr
    assert new.is_file()
