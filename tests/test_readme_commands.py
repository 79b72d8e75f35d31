"""Docs as tests: every command the README shows exists, and the README names every workflow.

Commands are read from the README's fenced code blocks (continuation lines joined, comments
dropped) and its inline code spans. For each:

- ``make TARGET [VAR=value]...``: the target is a rule of the Makefile, each VAR is used there;
- ``buddy ...``: every subcommand resolves, ``--help`` answers, and each ``--option`` shown is
  in that help;
- ``python -m MODULE ...``: the module exists; a project module's click command lists each
  ``--option`` shown;
- ``papermill IN OUT -p NAME VALUE``: the notebook exists and NAME is one of its parameters;
- ``mlflow ...``: the subcommand resolves in MLflow's own click CLI, with each option shown;
- every ``notebooks/*.ipynb`` the README names exists, and every notebook is named.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import re
import shlex
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PREFIXES = {"make": "make", "buddy": "buddy", ".venv/bin/buddy": "buddy",
            "python": "python", ".venv/bin/python": "python", "papermill": "papermill",
            "mlflow": "mlflow", ".venv/bin/mlflow": "mlflow"}
#: Words of the workflows the README must name (issue #17, section 5).
WORKFLOW_WORDS = ("make promote-demo", "make mlflow-ui", "buddy experiments",
                  "30_weight_search", "papermill", "environment.yml", "mlflow models serve",
                  "macOS", "make test", "make lab", "make replay", "make app", "make bench")


def _code_lines(text: str) -> Iterator[str]:
    """Yield the command lines of fenced blocks, then every inline code span."""
    blocks: list[list[str]] = []
    language: str | None = None  # inside a fence: its language ('' when none is given)
    for line in text.splitlines():
        if line.startswith("```"):
            language = line[3:].strip() if language is None else None
            if language is not None:
                blocks.append([])
        elif language in ("", "bash", "sh", "console"):
            blocks[-1].append(line)
    for block in blocks:
        for line in "\n".join(block).replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line:
                yield line
    outside = re.sub(r"```.*?```", "", text, flags=re.S)
    for span in re.findall(r"`([^`\n]+)`", outside.replace("\n", " ")):
        yield span.strip()


def _commands() -> list[tuple[str, list[str]]]:
    """Return (kind, words) of every command the README shows, once each."""
    found: dict[str, tuple[str, list[str]]] = {}
    for line in _code_lines(README.read_text(encoding="utf-8")):
        try:
            words = shlex.split(line)
        except ValueError:
            continue
        if len(words) < 2 or words[0] not in PREFIXES:
            continue
        kind = PREFIXES[words[0]]
        if kind == "python" and (words[1] != "-m" or len(words) < 3):
            continue  # `python -m` alone names the form, not a command
        # '[--all]' shows an optional flag; '...' elides arguments
        words = [w.strip("[]") for w in words[1:] if w.strip("[]") not in ("", "...")]
        found.setdefault(" ".join([kind, *words]), (kind, words))
    return sorted(found.values(), key=lambda item: " ".join([item[0], *item[1]]))


COMMANDS = _commands()


def _options(words: list[str]) -> list[str]:
    return sorted({w.split("=")[0] for w in words if w.startswith("--")})


def _assert_in_help(help_text: str, options: list[str], where: str) -> None:
    for option in options:
        assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", help_text), (
            f"{where}: the README shows {option}, which its --help does not list")


@cache
def _makefile() -> str:
    return (ROOT / "Makefile").read_text(encoding="utf-8")


def check_make(words: list[str]) -> None:
    targets = set(re.findall(r"^([\w.-]+):", _makefile(), flags=re.M))
    for word in words:
        if "=" in word:
            variable = word.split("=")[0]
            assert re.search(rf"\$\({variable}\)|^{variable}\s*[?:]?=", _makefile(),
                             flags=re.M), f"make: the Makefile does not use {variable}"
        elif not word.startswith("-"):
            assert word in targets, f"make {word}: no such target (targets: {sorted(targets)})"


def _walk(root: click.Command, name: str, words: list[str]) -> tuple[list[str], list[str]]:
    """Return (the subcommand path, the words after it) of ``words`` under ``root``."""
    command, path, ctx = root, [], click.Context(root, info_name=name)
    rest = list(words)
    while isinstance(command, click.Group) and rest:
        word = rest[0]
        if word.startswith("-"):  # a group's own option, e.g. --db PATH
            option = next((p for p in command.params if word.split("=")[0] in p.opts), None)
            assert option is not None, f"{name} {' '.join(path)}: no option {word}"
            takes_value = not getattr(option, "is_flag", False) and "=" not in word
            rest = rest[1 + takes_value:]
            continue
        sub = command.get_command(ctx, word)
        if sub is None:
            break
        path.append(word)
        ctx = click.Context(sub, info_name=word, parent=ctx)
        command, rest = sub, rest[1:]
    if isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        raise AssertionError(f"{name} {' '.join(path)}: no subcommand {rest[0]!r} "
                             f"(has {sorted(command.list_commands(ctx))})")
    return path, rest


def check_click(root: click.Command, name: str, words: list[str]) -> None:
    path, rest = _walk(root, name, words)
    result = CliRunner().invoke(root, [*path, "--help"], prog_name=name)
    assert result.exit_code == 0, f"{name} {' '.join(path)} --help: {result.output}"
    # a group's own options (e.g. buddy --db) may come before the subcommand
    group_help = "".join(CliRunner().invoke(root, [*path[:i], "--help"], prog_name=name).output
                         for i in range(len(path)))
    _assert_in_help(result.output + group_help, _options(rest), f"{name} {' '.join(path)}")


def check_buddy(words: list[str]) -> None:
    from buddy.cli import cli

    check_click(cli, "buddy", words)


def _project_command(module: str) -> click.Command | None:
    """Return the click command ``python -m module`` runs (None for a third-party module)."""
    if module.split(".")[0] not in ("buddy", "replay", "experiments", "benchmarks"):
        return None
    spec = importlib.util.find_spec(module)
    assert spec is not None
    name = f"{module}.__main__" if spec.submodule_search_locations else module
    loaded = importlib.import_module(name)
    source = inspect.getsource(loaded)
    guard = source[source.rindex('if __name__ == "__main__":'):]
    called = re.search(r"(\w+)\(", guard.split(":", 1)[1])
    assert called, f"python -m {module}: its __main__ guard calls nothing"
    target = getattr(loaded, called.group(1))
    if isinstance(target, click.Command):
        return target
    commands = [getattr(loaded, n, None) for n in target.__code__.co_names]
    command = next((c for c in commands if isinstance(c, click.Command)), None)
    assert command is not None, f"python -m {module} runs no click command"
    return command


def check_python(words: list[str]) -> None:
    assert words[0] == "-m" and len(words) > 1, words
    module = words[1]
    assert importlib.util.find_spec(module) is not None, f"python -m {module}: no such module"
    command = _project_command(module)
    if command is not None:
        check_click(command, f"python -m {module}", words[2:])


def _notebook_parameters(path: Path) -> set[str]:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert tagged, f"{path.name}: no cell tagged 'parameters'"
    source = "".join(tagged[0]["source"])
    return set(re.findall(r"^(\w+)\s*(?::[^=\n]+)?=", source, flags=re.M))


def check_papermill(words: list[str]) -> None:
    from papermill.cli import papermill

    notebooks = [w for w in words if w.endswith(".ipynb") and w.startswith("notebooks/")]
    for notebook in notebooks:
        assert (ROOT / notebook).is_file(), f"papermill: {notebook} does not exist"
    names = [words[i + 1] for i, w in enumerate(words[:-1]) if w in ("-p", "--parameters")]
    if names:
        assert notebooks, f"papermill {' '.join(words)}: parameters without a notebook"
        parameters = _notebook_parameters(ROOT / notebooks[0])
        for name in names:
            assert name in parameters, (f"papermill: {notebooks[0]} has no parameter {name} "
                                        f"(has {sorted(parameters)})")
    help_text = CliRunner().invoke(papermill, ["--help"]).output
    _assert_in_help(help_text, _options(words), "papermill")


def check_mlflow(words: list[str]) -> None:
    from mlflow.cli import cli

    check_click(cli, "mlflow", words)


CHECKS = {"make": check_make, "buddy": check_buddy, "python": check_python,
          "papermill": check_papermill, "mlflow": check_mlflow}


def test_the_readme_shows_commands_of_every_kind() -> None:
    kinds = {kind for kind, _ in COMMANDS}
    assert kinds == set(CHECKS), kinds
    assert len(COMMANDS) >= 30


@pytest.mark.parametrize(("kind", "words"), COMMANDS,
                         ids=[" ".join([k, *w])[:80] for k, w in COMMANDS])
def test_each_command_the_readme_shows_exists(kind: str, words: list[str]) -> None:
    CHECKS[kind](words)


def test_every_notebook_the_readme_names_exists_and_every_notebook_is_named() -> None:
    text = README.read_text(encoding="utf-8")
    named = set(re.findall(r"notebooks/(\d+_\w+\.ipynb)", text))  # not the NN_topic form
    present = {p.name for p in (ROOT / "notebooks").glob("*.ipynb")}
    assert named <= present, f"the README names missing notebooks: {sorted(named - present)}"
    assert present <= named, f"the README never names: {sorted(present - named)}"


def test_the_readme_has_a_workflows_section_naming_every_workflow() -> None:
    text = README.read_text(encoding="utf-8")
    assert "\n## Workflows\n" in text
    for words in WORKFLOW_WORDS:
        assert words in text, f"the README never mentions {words!r}"


def test_the_checks_catch_what_does_not_exist() -> None:
    """Each check fails on a command that does not exist (a test that cannot fail is none)."""
    for kind, words in (("make", ["no-such-target"]), ("make", ["replay", "NO_SUCH_VAR=1"]),
                        ("buddy", ["no-such-command"]), ("buddy", ["evaluate", "--no-such"]),
                        ("python", ["-m", "no_such_module_here"]),
                        ("python", ["-m", "benchmarks", "--no-such"]),
                        ("papermill", ["notebooks/10_replay.ipynb", "out.ipynb", "-p",
                                       "no_such_parameter", "1"]),
                        ("papermill", ["notebooks/99_none.ipynb", "out.ipynb"])):
        with pytest.raises(AssertionError):
            CHECKS[kind](words)
