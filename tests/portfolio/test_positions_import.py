"""Positions statements (``buddy positions import``): validated whole with errors naming the
field, the rule and the value; nothing written on an error; idempotent; read as of t."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from buddy.cli import cli
from buddy.portfolio.positions import PositionsImportError, import_positions
from buddy.portfolio.state import portfolio_state, portfolio_state_with_reason
from buddy.store import Store
from buddy.store.bars import bars_closed_by
from buddy.store.portfolio import latest_statement
from buddy.store.trades import read_positions

GOOD = """symbol,qty,avg_price,stop,equity,as_of
AAPL,100,570.0,550.0,50000,2012-06-01T20:00:00Z
MSFT,-200,29.0,,50000,2012-06-01T20:00:00Z
"""


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_a_statement_is_imported_once_and_read_as_of_t(sample_db: Path, tmp_path: Path
                                                        ) -> None:
    store = Store(sample_db)
    path = _write(tmp_path, "statement.csv", GOOD)
    first = import_positions(store, path, user_id="s1")
    again = import_positions(store, path, user_id="s1")
    assert (first.rows, first.statements, first.equity_rows, first.current) == (2, 1, 1, True)
    assert again.rows == 2
    stated = latest_statement(store, "s1", pd.Timestamp("2012-06-02T00:00Z").to_pydatetime())
    assert len(stated) == 2  # the second import replaced the first: no duplicates
    assert sorted(read_positions(store, "s1")["symbol"]) == ["AAPL", "MSFT"]

    before, reason = portfolio_state_with_reason(store, "s1", "2012-05-31T00:00Z")
    assert before is None and reason is not None and "statement" in reason
    t = pd.Timestamp("2012-06-05T21:00Z")
    state = portfolio_state(store, "s1", t)
    assert state is not None and state.source == "statement"
    assert state.statement_as_of == pd.Timestamp("2012-06-01T20:00Z")
    assert state.equity == 50_000.0 and "statement.csv" in state.equity_source
    pos = state.positions.set_index("symbol")
    aapl_mark = float(bars_closed_by(store, "AAPL", "1d", t).iloc[-1]["close"])
    assert pos.loc["AAPL", "mark"] == pytest.approx(aapl_mark)
    assert pos.loc["AAPL", "open_risk"] == pytest.approx(max(aapl_mark - 550.0, 0) * 100)
    assert pos.loc["MSFT", "qty"] == -200 and pos.loc["MSFT", "weight_pct"] < 0
    assert math.isnan(pos.loc["MSFT", "open_risk"])  # no stop stated: unknown, not 0
    assert state.unknown_risk_symbols == ("MSFT",)
    assert state.heat_pct == pytest.approx(pos.loc["AAPL", "open_risk"] / 50_000 * 100)


def test_a_bad_statement_names_every_problem_and_writes_nothing(sample_db: Path,
                                                                tmp_path: Path) -> None:
    store = Store(sample_db)
    bad = _write(tmp_path, "bad.csv", "symbol,qty,avg_price,stop,as_of\n"
                                      "AAPL,abc,570,,2012-06-01T20:00:00Z\n"
                                      "NOPE,10,5,,2012-06-01T20:00:00Z\n"
                                      "MSFT,10,-1,0,2012-06-01\n"
                                      "AAPL,5,570,,2012-06-01T20:00:00Z\n")
    with pytest.raises(PositionsImportError) as caught:
        import_positions(store, bad, user_id="s2")
    problems = {(e.field, e.value) for e in caught.value.errors}
    assert ("row 1: qty", "abc") in problems
    assert ("row 2: symbol", "NOPE") in problems
    assert ("row 3: avg_price", "-1") in problems
    assert ("row 3: stop", "0") in problems
    assert ("row 3: as_of", "2012-06-01") in problems  # no offset: refused, not assumed UTC
    assert latest_statement(store, "s2", pd.Timestamp("2030-01-01T00:00Z").to_pydatetime()
                            ).empty
    assert read_positions(store, "s2").empty

    dupes = _write(tmp_path, "dupes.csv", "symbol,qty,avg_price,as_of\n"
                                          "AAPL,1,570,2012-06-01T20:00:00Z\n"
                                          "AAPL,2,570,2012-06-01T20:00:00Z\n")
    with pytest.raises(PositionsImportError, match="appears twice"):
        import_positions(store, dupes, user_id="s2")
    columns = _write(tmp_path, "columns.csv", "symbol,quantity,avg_price,as_of\n")
    with pytest.raises(PositionsImportError, match="must include"):
        import_positions(store, columns, user_id="s2")


def test_the_import_command(sample_db: Path, tmp_path: Path) -> None:
    path = _write(tmp_path, "statement.csv", GOOD)
    runner = CliRunner()
    ok = runner.invoke(cli, ["--db", str(sample_db), "positions", "import", str(path),
                             "--user", "s3"])
    assert ok.exit_code == 0, ok.output
    assert "2 positions in 1 statement(s)" in ok.output
    bad = _write(tmp_path, "bad.csv", "symbol,qty,avg_price,as_of\nAAPL,0,570,"
                                      "2012-06-01T20:00:00Z\n")
    refused = runner.invoke(cli, ["--db", str(sample_db), "positions", "import", str(bad),
                                  "--user", "s3"])
    assert refused.exit_code == 2 and "row 1: qty" in refused.output
