"""``buddy nudges show|set``: the controls from the command line; a bad value is refused
naming the field, the rule and the value, with nothing written."""

from __future__ import annotations

import json
import re
from pathlib import Path

from click.testing import CliRunner

from buddy.behavior.settings import nudge_settings
from buddy.cli import cli
from buddy.store import Store


def run(db: Path, *args: str) -> tuple[int, str]:
    """Return (exit code, output) of ``buddy --db DB nudges ARGS``."""
    ran = CliRunner().invoke(cli, ["--db", str(db), "nudges", *args])
    return ran.exit_code, ran.output


def test_set_then_show(tmp_path: Path) -> None:
    db = tmp_path / "buddy.duckdb"
    Store(db)
    code, out = run(db, "show", "--user", "u1")
    assert code == 0 and re.search(r"^  fatigue +off \(off by default: failed its "
                                   r"validation.*precision 3/13.*--opt-in fatigue", out, re.M)
    code, out = run(db, "set", "--user", "u1", "--sensitivity", "revenge=high",
                    "--opt-out", "sizing", "--max-per-day", "1", "--json")
    assert code == 0, out
    shown = json.loads(out)
    assert shown["levels"]["revenge"] == "high" and shown["levels"]["sizing"] is None
    assert shown["levels"]["fatigue"] is None and "fatigue" in shown["off_by_default"]
    assert shown["levels"]["fomo"] is None and "fomo" in shown["off_by_default"]
    assert shown["max_per_day"] == 1
    code, out = run(db, "show", "--user", "u1")
    assert code == 0 and "revenge      high (set)" in out and "off (opted out)" in out
    assert nudge_settings(Store(db), "u1").opted_out == frozenset({"sizing"})
    code, out = run(db, "set", "--user", "u1", "--opt-in", "fatigue", "--json")
    assert code == 0 and json.loads(out)["levels"]["fatigue"] == "medium"
    assert nudge_settings(Store(db), "u1").opted_in == frozenset({"fatigue"})
    code, out = run(db, "show", "--user", "u1")
    assert re.search(r"^  fatigue +medium \(opted in; off by default", out, re.M)


def test_a_bad_value_is_refused_whole(tmp_path: Path) -> None:
    db = tmp_path / "buddy.duckdb"
    Store(db)
    code, out = run(db, "set", "--user", "u1", "--sensitivity", "revnge=high",
                    "--max-per-day", "2")
    assert code == 2 and "did you mean 'revenge'" in out and "revnge" in out
    code, out = run(db, "set", "--user", "u1", "--sensitivity", "revenge")
    assert code == 2 and "DETECTOR=LEVEL" in out
    assert nudge_settings(Store(db), "u1").max_per_day == 3  # nothing written
