"""One door to the database: no SQL outside ``buddy/store``.

Every module of ``buddy``, ``replay`` and ``experiments`` outside ``buddy/store`` is parsed with
``ast``; a string constant (or the literal parts of an f-string) that opens with a SQL
statement, or a string handed straight to ``.execute``/``.executemany``/``.sql``, fails the
test with its file and line. Table-family modules in ``buddy/store`` own the queries.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("buddy", "replay", "experiments")
STORE = ROOT / "buddy" / "store"

#: A statement opening a string: keywords upper-case, as every query here is written, so
#: prose ("Select the rows from ...", "update the view and set ...") is not taken for SQL.
SQL_STATEMENT = re.compile(
    r"""^\s*\(?\s*(
        SELECT\s[\s\S]*?\bFROM\b
      | INSERT\s+(OR\s+[A-Z]+\s+)?INTO\b
      | DELETE\s+FROM\b
      | UPDATE\s+\w+(\s+\w+)?\s+SET\b
      | CREATE\s+(OR\s+REPLACE\s+)?(TEMP\w*\s+)?
            (TABLE|VIEW|INDEX|UNIQUE\s+INDEX|SEQUENCE|MACRO|SCHEMA|TYPE)\b
      | WITH\s+(RECURSIVE\s+)?\w+(\s*\([^)]*\))?\s+AS\s*\(
      | DROP\s+(TABLE|VIEW|INDEX|SEQUENCE|MACRO|SCHEMA)\b
      | ALTER\s+TABLE\b
      | MERGE\s+INTO\b
      | COPY\s+[\w(][\s\S]*?\b(TO|FROM)\s+'
    )""",
    re.VERBOSE,
)
#: Methods that run SQL on a DuckDB connection or relation.
SQL_METHODS = frozenset({"execute", "executemany", "sql"})

#: Modules outside buddy/store allowed to hold SQL, each with why. Empty: the files owned by
#: another engineer (Makefile, pyproject.toml, buddy/cli.py, buddy/config_sources.py,
#: experiments/config_source.py, experiments/registry.py, benchmarks/) hold none in the
#: scanned packages.
ALLOWED: dict[str, str] = {}


def _text(node: ast.AST) -> str | None:
    """Return a string constant's value, or an f-string's literal parts with each
    placeholder as ``x``; None for anything else."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(part.value if isinstance(part, ast.Constant)
                       and isinstance(part.value, str) else "x" for part in node.values)
    return None


def sql_strings(source: str) -> list[tuple[int, str]]:
    """Return (line, first 60 characters) of every SQL string in ``source``."""
    found: dict[tuple[int, str], None] = {}
    tree = ast.parse(source)
    inner: set[int] = set()  # constants inside f-strings: judged with their f-string
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            inner.update(id(part) for part in node.values)
    for node in ast.walk(tree):
        if id(node) in inner:
            continue
        text = _text(node)
        if text is not None and SQL_STATEMENT.match(text) and isinstance(node, ast.expr):
            found[(node.lineno, " ".join(text.split())[:60])] = None
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in SQL_METHODS and node.args):
            query = _text(node.args[0])
            if query is not None:
                found[(node.lineno, " ".join(query.split())[:60])] = None
    return sorted(found)


def _modules() -> list[Path]:
    return sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py")
                  if STORE not in path.parents)


@pytest.mark.parametrize("text", [
    "SELECT * FROM bars WHERE ts_close <= ?",
    "\n    SELECT count(*)\n    FROM trades",
    "INSERT INTO trade_journal VALUES (?)",
    "INSERT OR REPLACE INTO events SELECT * FROM _in",
    "DELETE FROM level_anchors WHERE user_id = ?",
    "UPDATE replay_runs SET status = ?",
    "CREATE TABLE t (a INT)",
    "CREATE OR REPLACE TEMP VIEW v AS SELECT 1",
    "WITH last AS (SELECT max(ts) AS ts FROM bars) SELECT * FROM last",
])
def test_the_detector_finds_sql(text: str) -> None:
    assert sql_strings(f"x = {text!r}\n") == [(1, " ".join(text.split())[:60])]


@pytest.mark.parametrize("source", [
    "x = 'Select the rows from the table'\n",
    "x = 'Update the view and set the widgets'\n",
    "x = 'rollback'\n",
    "x = 'Copy the form into the widgets (without feeding changes back)'\n",
    "x = 'With a stop as wide as the ATR'\n",
    "frame.query('a > 1')\n",
])
def test_the_detector_leaves_prose_and_other_strings(source: str) -> None:
    assert sql_strings(source) == []


def test_the_detector_finds_sql_in_f_strings_and_execute_calls() -> None:
    source = ("where = ''\n"
              "a = f'SELECT * FROM bars {where} ORDER BY ts'\n"
              "con.execute('pragma version')\n")
    assert [line for line, _ in sql_strings(source)] == [2, 3]


def test_no_sql_outside_buddy_store() -> None:
    modules = _modules()
    assert len(modules) > 100  # the scan sees the packages, not an empty folder
    offences = [f"{path.relative_to(ROOT)}:{line}: {text}"
                for path in modules if str(path.relative_to(ROOT)) not in ALLOWED
                for line, text in sql_strings(path.read_text(encoding="utf-8"))]
    assert not offences, ("SQL outside buddy/store (move it to a table-family module there):\n"
                          + "\n".join(offences))
