"""One command line: every entry point is a click command with the same conventions.

An entry point is a ``[project.scripts]`` target or a module run as ``python -m`` (it has an
``if __name__ == "__main__":`` guard) in buddy, replay, experiments or benchmarks. Each is a
click command (or a function calling one), answers ``-h`` and ``--help`` with its usage and
exit code 0, and refuses a bad option value with exit code 2 naming the option. Nothing in
those packages parses arguments with argparse.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import tomllib
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("buddy", "replay", "experiments", "benchmarks")
#: Modules run with ``python -m`` that are not entry points, with the reason.
NOT_ENTRY_POINTS = {
    # run by benchmarks.one_form in a subprocess against an older source tree (the
    # baseline), with one positional path; it may import only what both trees have
    "benchmarks.one_form_probe",
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__main__" else parts)


def _main_guard_calls(path: Path) -> list[str] | None:
    """Return the names the module's ``__main__`` guard calls (None without a guard)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
                and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__"):
            return [call.func.id for call in ast.walk(node)
                    if isinstance(call, ast.Call) and isinstance(call.func, ast.Name)
                    and call.func.id not in ("SystemExit", "print")]
    return None


def _python_m_entry_points() -> dict[str, tuple[str, str]]:
    """Return ``python -m`` name -> (module to import, the name its guard calls)."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            calls = _main_guard_calls(path)
            name = _module_name(path)
            if calls is not None and name not in NOT_ENTRY_POINTS:
                assert calls, f"{name}: its __main__ guard calls nothing"
                module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
                found[name] = (module, calls[0])
    return found


def _script_entry_points() -> dict[str, str]:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    return {f"{name} ({target})": target for name, target in scripts.items()}


def _command(module: str, attribute: str) -> click.Command:
    """Return the click command ``module.attribute`` is or calls."""
    target = getattr(importlib.import_module(module), attribute)
    if isinstance(target, click.Command):
        return target
    assert inspect.isfunction(target), f"{module}.{attribute} is neither a command nor a function"
    commands = [getattr(inspect.getmodule(target), name, None)
                for name in target.__code__.co_names]
    called = [c for c in commands if isinstance(c, click.Command)]
    assert called, f"{module}.{attribute} calls no click command"
    return called[0]


ENTRY_POINTS = {
    **_python_m_entry_points(),
    **{label: tuple(target.split(":")) for label, target in _script_entry_points().items()},
}


def test_the_entry_points_are_found() -> None:
    for expected in ("buddy.widgets.serve", "benchmarks", "benchmarks.context_reads",
                     "replay.reports", "experiments.pipeline", "buddy (buddy.cli:main)"):
        assert expected in ENTRY_POINTS


@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
def test_each_entry_point_is_click_and_answers_help(name: str) -> None:
    module, attribute = ENTRY_POINTS[name]
    command = _command(module, attribute)
    runner = CliRunner()
    for flag in ("-h", "--help"):
        result = runner.invoke(command, [flag], prog_name=name)
        assert result.exit_code == 0, f"{name} {flag}: {result.output}"
        assert result.output.startswith("Usage:"), f"{name} {flag}: {result.output[:200]}"
    bad = runner.invoke(command, ["--no-such-option"], prog_name=name)
    assert bad.exit_code == 2 and "--no-such-option" in bad.output, bad.output


def test_nothing_parses_arguments_with_argparse() -> None:
    users = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                if any(n.split(".")[0] == "argparse" for n in names):
                    users.append(str(path.relative_to(ROOT)))
    assert users == []
