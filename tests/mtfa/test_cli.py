"""``context-mtfa``: prints the stack read at as_of, or why it is not available."""

from __future__ import annotations

from click.testing import CliRunner

from buddy.mtfa.cli import context_mtfa
from buddy.store import Store


class _Obj:
    def __init__(self, store: Store) -> None:
        self._store = store

    def store(self) -> Store:
        return self._store


def test_prints_the_stack_score_and_conflicts(sample_store: Store) -> None:
    result = CliRunner().invoke(context_mtfa, ["ibm", "--tf", "1d", "--as-of",
                                               "2012-06-06T21:00Z"], obj=_Obj(sample_store))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == ("IBM at 2012-06-06T21:00:00+00:00  stack 1w/1d  trading 1d")
    assert lines[1].startswith("  1w  bar 2012-05-29 13:30  up")  # last week's closed bar
    assert lines[2].startswith(" *1d  bar 2012-06-06 13:30")
    assert lines[3].startswith("alignment ")
    assert lines[4] == "conflicts: 1w trend up vs 1d trend down"


def test_a_date_means_the_end_of_that_exchange_day(sample_store: Store) -> None:
    result = CliRunner().invoke(context_mtfa, ["EURUSD", "--tf", "1h", "--as-of",
                                               "2017-06-15"], obj=_Obj(sample_store))
    assert result.exit_code == 0, result.output
    assert "stack 1d/4h/1h" in result.output
    assert " *1h " in result.output


def test_incomplete_stack_and_bad_input(sample_store: Store) -> None:
    early = CliRunner().invoke(context_mtfa, ["GOOG", "--tf", "1d", "--as-of",
                                              "2004-10-01"], obj=_Obj(sample_store))
    assert early.exit_code == 1
    assert "not available: MTFA stack 1w/1d of GOOG incomplete" in early.output
    unknown = CliRunner().invoke(context_mtfa, ["NOPE", "--tf", "1d"], obj=_Obj(sample_store))
    assert unknown.exit_code == 2
    bad = CliRunner().invoke(context_mtfa, ["IBM", "--tf", "1d", "--as-of", "June"],
                             obj=_Obj(sample_store))
    assert bad.exit_code == 2 and "as_of" in bad.output
