"""The interactive path stays cheap: `buddy --help` imports no pandas, numpy or duckdb, its
lazily listed commands read exactly as they do once imported, and the Makefile compiles
bytecode (these machines set PYTHONDONTWRITEBYTECODE=1)."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

from click.testing import CliRunner

from buddy.cli import COMMANDS_GROUP, TIMEFRAME_VALUES, cli, installed_entry_points
from buddy.timeframes import Timeframe

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("pandas", "numpy", "duckdb", "pyarrow", "mlflow")

# Renders every group's help before and after importing all its lazy commands, in a fresh
# process (this one may already hold them), and reports which heavy modules the lazy pass
# imported.
_HELP_SCRIPT = """
import json, sys
import click
from buddy.cli import cli

groups = [[], ["jobs"], ["context"], ["events"]]

def render(path):
    ctx = cli.make_context("buddy", [*path, "--help"], resilient_parsing=True)
    group = cli
    for name in path:
        group = group.get_command(ctx, name)
        ctx = group.make_context(name, ["--help"], parent=ctx, resilient_parsing=True)
    return group.get_help(ctx), group, ctx

lazy = [render(p)[0] for p in groups]
heavy = sorted(m for m in {heavy!r} if m in sys.modules)
for path in groups:
    _, group, ctx = render(path)
    for name in group.list_commands(ctx):
        group.get_command(ctx, name)
eager = [render(p)[0] for p in groups]
print(json.dumps({{"lazy": lazy, "eager": eager, "heavy": heavy}}))
"""


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_help_imports_no_pandas_numpy_or_duckdb() -> None:
    out = _run("import sys\nfrom buddy.cli import main\nsys.argv = ['buddy', '--help']\n"
               "try:\n    main()\nexcept SystemExit:\n    pass\n"
               f"print('HEAVY', sorted(m for m in {HEAVY!r} if m in sys.modules))")
    assert "Commands:" in out and "evaluate" in out and "replay" in out
    assert out.strip().splitlines()[-1] == "HEAVY []"


def test_lazy_help_reads_as_the_imported_commands_do() -> None:
    found = json.loads(_run(_HELP_SCRIPT.format(heavy=HEAVY)))
    assert found["heavy"] == []
    assert found["lazy"] == found["eager"]
    root = found["lazy"][0]
    for name in ("user", "trades", "review", "playbooks", "replay", "experiments"):
        assert f"\n  {name} " in root


def test_timeframe_choices_are_the_timeframes() -> None:
    assert tuple(t.value for t in Timeframe) == TIMEFRAME_VALUES


def test_a_lazy_command_runs_when_invoked() -> None:
    run = CliRunner().invoke(cli, ["context", "mtfa", "--help"])
    assert run.exit_code == 0, run.output
    assert "context mtfa [OPTIONS] SYMBOL" in run.output
    bad = CliRunner().invoke(cli, ["jobs", "nope"])
    assert bad.exit_code == 2 and "No such command 'nope'" in bad.output


def _make_dry_run(*args: str) -> str:
    done = subprocess.run(["make", "-n", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_make_compiles_bytecode_at_install_and_when_sources_change() -> None:
    install = _make_dry_run("-B", ".venv/.installed")
    assert install.count("uv pip install") == 2
    assert install.count("--compile-bytecode") == 2
    # a changed source recompiles the project before the targets people run
    for target in ("compiled", "demo", "test", "bench", "replay"):
        assert "-m compileall -q buddy replay experiments" in _make_dry_run(
            "-W", "buddy/cli.py", target), target


def test_entry_points_are_read_as_importlib_metadata_reads_them() -> None:
    for group in (COMMANDS_GROUP, "trading_buddy.config_sources", "console_scripts",
                  "pytest11"):
        expected = {ep.name: ep.value for ep in entry_points(group=group)}
        assert installed_entry_points(group) == expected, group
    assert set(installed_entry_points(COMMANDS_GROUP)) == {"replay", "experiments"}
