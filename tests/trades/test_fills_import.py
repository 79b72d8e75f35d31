"""Broker files into a real DuckDB file: one transaction, idempotent, unknown symbols reported,
bad files write nothing, the regrouping hook commits with the fills, and the CLI."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pytest
from click.testing import CliRunner

from buddy.cli import cli
from buddy.store import Store
from buddy.store.fills import count_fills, read_fills, unknown_symbol_fills
from buddy.trades.fills import FillsFileError
from buddy.trades.importer import import_fills
from tests.trades.fills_support import FIXTURES, GENERIC_MAP, MT5_TZ, sample_tickers

IMPORTS = [
    ("ibkr_flex_trades.csv", "ibkr-csv", {}),
    ("thinkorswim_statement.csv", "thinkorswim", {}),
    ("tradovate_fills.csv", "tradovate", {}),
    ("mt5_deals_report.html", "mt5", {"tz": MT5_TZ}),
    ("generic_fills.csv", "generic", {"column_map": GENERIC_MAP}),
]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store(tmp_path / "buddy.duckdb")
    store.write_market_data(tickers=sample_tickers())
    return store


def table(store: Store) -> pd.DataFrame:
    return store.query("SELECT * FROM broker_fills ORDER BY user_id, exec_id")


def test_every_fixture_imports_and_a_second_import_changes_nothing(store) -> None:
    for name, fmt, kw in IMPORTS:
        first = import_fills(store, FIXTURES / name, user_id="u1", fmt=fmt, **kw)
        assert first.new == first.parsed > 0 and first.duplicates == 0, name
    before = table(store)
    assert len(before) == 5 + 5 + 3 + 3 + 5 and before["exec_id"].is_unique
    # the Flex XML holds the same executions as the Flex CSV: same IBExecIDs, nothing new
    xml = import_fills(store, FIXTURES / "ibkr_flex_trades.xml", user_id="u1", fmt="ibkr-xml")
    assert (xml.parsed, xml.new) == (5, 0)
    for name, fmt, kw in IMPORTS:
        again = import_fills(store, FIXTURES / name, user_id="u1", fmt=fmt, **kw)
        assert (again.new, again.duplicates) == (0, again.parsed), name
    pd.testing.assert_frame_equal(table(store), before)


def test_the_same_executions_of_another_user_are_their_own(store) -> None:
    import_fills(store, FIXTURES / "ibkr_flex_trades.csv", user_id="u1", fmt="ibkr-csv")
    other = import_fills(store, FIXTURES / "ibkr_flex_trades.csv", user_id="u2",
                         fmt="ibkr-csv")
    assert other.new == 5
    assert count_fills(store, "u1") == count_fills(store, "u2") == 5
    assert set(read_fills(store, "u2")["user_id"]) == {"u2"}


def test_identical_fills_in_one_file_are_both_stored(store) -> None:
    summary = import_fills(store, FIXTURES / "generic_fills.csv", user_id="u1", fmt="generic",
                           column_map=GENERIC_MAP)
    aapl = read_fills(store, "u1", ["AAPL"])
    assert summary.per_symbol["AAPL"].new == 3
    assert len(aapl[(aapl["side"] == "buy") & (aapl["price"] == 561.0)]) == 2


def test_unknown_symbols_are_stored_flagged_and_reported_with_rows(store) -> None:
    summary = import_fills(store, FIXTURES / "generic_fills.csv", user_id="u1", fmt="generic",
                           column_map=GENERIC_MAP)
    assert summary.unknown_symbols == {"ZZZQ": (4, 5)}
    assert summary.per_symbol["ZZZQ"].known is False and summary.per_symbol["AAPL"].known
    assert "unknown symbol ZZZQ" in str(summary) and "rows 4, 5" in str(summary)
    assert unknown_symbol_fills(store, "u1")["source_row"].tolist() == [4, 5]


@pytest.mark.parametrize(("old", "new", "where"), [
    ('"562.10"', '"56x.10"', "row 3 (line 4), TradePrice"),         # bad number
    ('"20120601;154501"', '"20120631;154501"', "row 4 (line 5), DateTime"),  # bad date
    ('"559.80"', '"-559.80"', "row 4 (line 5), TradePrice"),        # negative price
    ('"IBExecID"', '"ExecIdentifier"', None),                       # (a column renamed)
    ('"Quantity"', '"Qty"', "Quantity"),                            # missing column
])
def test_a_malformed_file_is_refused_whole_and_nothing_is_written(store, tmp_path, old, new,
                                                                  where) -> None:
    import_fills(store, FIXTURES / "generic_fills.csv", user_id="u1", fmt="generic",
                 column_map=GENERIC_MAP)
    before = table(store)
    text = (FIXTURES / "ibkr_flex_trades.csv").read_text()
    assert old in text
    bad = tmp_path / "bad.csv"
    bad.write_text(text.replace(old, new))
    if where is None:  # without IBExecID the content key is used: a good file, not refused
        assert import_fills(store, bad, user_id="u1", fmt="ibkr-csv").new == 5
        return
    with pytest.raises(FillsFileError) as excinfo:
        import_fills(store, bad, user_id="u1", fmt="ibkr-csv")
    assert where in excinfo.value.fields
    pd.testing.assert_frame_equal(table(store), before)


def test_on_written_runs_in_the_same_transaction_and_its_failure_writes_nothing(store
                                                                                ) -> None:
    seen: list[tuple[str, list[str], int]] = []

    def regroup(con: duckdb.DuckDBPyConnection, user_id: str, symbols: list[str]) -> None:
        # the new fills are visible here, before the commit
        seen.append((user_id, symbols, con.execute(
            "SELECT count(*) FROM broker_fills WHERE user_id = ?", [user_id]).fetchone()[0]))

    import_fills(store, FIXTURES / "ibkr_flex_trades.csv", user_id="u1", fmt="ibkr-csv",
                 on_written=regroup)
    assert seen == [("u1", ["AAPL", "EURUSD", "MSFT"], 5)]
    import_fills(store, FIXTURES / "ibkr_flex_trades.csv", user_id="u1", fmt="ibkr-csv",
                 on_written=regroup)
    assert len(seen) == 1  # nothing new: nothing to regroup

    def broken(con: duckdb.DuckDBPyConnection, user_id: str, symbols: list[str]) -> None:
        raise RuntimeError("grouping failed")

    with pytest.raises(RuntimeError, match="grouping failed"):
        import_fills(store, FIXTURES / "tradovate_fills.csv", user_id="u1", fmt="tradovate",
                     on_written=broken)
    assert count_fills(store, "u1") == 5


def test_dry_run_counts_without_writing(store) -> None:
    summary = import_fills(store, FIXTURES / "ibkr_flex_trades.xml", user_id="u1",
                           fmt="ibkr-xml", dry_run=True)
    assert (summary.parsed, summary.new, summary.dry_run) == (5, 5, True)
    assert "would write 5 new" in str(summary)
    assert count_fills(store) == 0


def test_broker_fills_refuses_a_second_row_with_the_same_key(store) -> None:
    import_fills(store, FIXTURES / "tradovate_fills.csv", user_id="u1", fmt="tradovate")
    with store.connect() as con, pytest.raises(duckdb.ConstraintException):
        con.execute("INSERT INTO broker_fills SELECT * FROM broker_fills LIMIT 1")


def test_cli_imports_prints_the_summary_and_refuses_bad_files(store, tmp_path) -> None:
    runner = CliRunner()
    args = ["--db", str(store.path), "trades", "import", str(FIXTURES / "generic_fills.csv"),
            "--user", "u1", "--format", "generic", "--map",
            ",".join(f"{k}={v}" for k, v in GENERIC_MAP.items())]
    dry = runner.invoke(cli, [*args, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would write 5 new" in dry.output and count_fills(store) == 0
    done = runner.invoke(cli, args)
    assert done.exit_code == 0, done.output
    assert "wrote 5 new" in done.output and "unknown symbol ZZZQ" in done.output
    assert count_fills(store, "u1") == 5
    bad = tmp_path / "bad.csv"
    bad.write_text((FIXTURES / "generic_fills.csv").read_text().replace("561.00", "5x1"))
    refused = runner.invoke(cli, [*args[:4], str(bad), *args[5:]])
    assert refused.exit_code == 2
    assert "error:" in refused.output and "row 1 (line 2), Px: not a number" in refused.output
    mapped_wrong = runner.invoke(cli, [*args[:-1], "date=Time,price"])
    assert mapped_wrong.exit_code == 2 and "--map" in mapped_wrong.output
    assert count_fills(store, "u1") == 5
