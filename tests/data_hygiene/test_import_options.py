"""Symbols, tick and lot sizes, empty files and unreadable dates at import: refused with the
field, the rule and the value, nothing written (issue #16, section 3)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from buddy.cli import cli
from buddy.data.importer import BarFileError
from buddy.jobs.load import import_file_into
from buddy.store import Store
from buddy.validation import checked_symbol, symbol_errors
from tests.data_hygiene.conftest import (
    assert_unchanged,
    import_options,
    table_contents,
    write_csv,
)

Refused = Callable[[Callable[[], object]], Exception]


@pytest.fixture(scope="module")
def clean_csv(clean_table: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_csv(clean_table, tmp_path_factory.mktemp("options") / "clean.csv")


INVALID_SYMBOLS = ["   ", "", "<svg/onload=alert(1)>", "AAPL; DROP TABLE", "A" * 25, "../etc",
                   "EUR USD", "'IBM'", "-X"]


def test_invalid_symbols_are_refused(clean_csv: Path, store: Store) -> None:
    before = table_contents(store)
    for symbol in INVALID_SYMBOLS:
        with pytest.raises(BarFileError) as caught:
            import_file_into(store, clean_csv,
                             **import_options(symbol=symbol))  # type: ignore[arg-type]
        assert caught.value.fields == ("symbol",), symbol
        assert repr(symbol) in str(caught.value)
    assert_unchanged(before, table_contents(store))


@pytest.mark.parametrize("symbol", ["IBM", "brk.b", "BTC-USD", "EUR/USD", "^GSPC", "ES=F",
                                    "7203:JP", "  msft  "])
def test_real_symbol_forms_are_accepted(symbol: str) -> None:
    assert symbol_errors(symbol) == []
    assert checked_symbol(symbol) == symbol.strip().upper()


BAD_SIZES = [("tick_size", 0.0), ("tick_size", -0.01), ("tick_size", math.nan),
             ("tick_size", math.inf), ("lot_size", 0.0), ("lot_size", -1.0),
             ("lot_size", math.nan), ("lot_size", math.inf)]


def test_tick_and_lot_sizes_must_be_finite_and_positive(clean_csv: Path, store: Store) -> None:
    before = table_contents(store)
    for field, value in BAD_SIZES:
        with pytest.raises(BarFileError) as caught:
            import_file_into(store, clean_csv,
                             **import_options(**{field: value}))  # type: ignore[arg-type]
        assert caught.value.fields == (field,)
        assert f"{field}: must be a finite number above 0 (got {value!r})" in str(caught.value)
    assert_unchanged(before, table_contents(store))


def test_a_header_only_file_is_refused(clean_table: pd.DataFrame, tmp_path: Path,
                                       store: Store, refused_leaves_store_unchanged: Refused
                                       ) -> None:
    path = write_csv(clean_table.head(0), tmp_path / "header.csv")
    error = refused_leaves_store_unchanged(lambda: import_file_into(
        store, path, **import_options()))  # type: ignore[arg-type]
    assert isinstance(error, BarFileError)
    assert error.fields == ("path",)
    assert "holds no bars" in str(error)
    assert store.instrument("NEWCO") is None


def test_a_symbol_column_that_disagrees_is_an_error(
        clean_table: pd.DataFrame, tmp_path: Path, store: Store,
        refused_leaves_store_unchanged: Refused) -> None:
    table = clean_table.assign(Symbol="NEWCO")
    table.loc[17, "Symbol"] = "OTHER"
    path = write_csv(table, tmp_path / "mixed.csv")
    error = refused_leaves_store_unchanged(lambda: import_file_into(
        store, path, **import_options()))  # type: ignore[arg-type]
    assert isinstance(error, BarFileError)
    assert error.fields == ("column 'Symbol' row 17",)
    assert "(got 'OTHER')" in str(error)
    every_row = write_csv(clean_table.assign(Ticker="IBM"), tmp_path / "ibm.csv")
    error = refused_leaves_store_unchanged(lambda: import_file_into(
        store, every_row, **import_options()))  # type: ignore[arg-type]
    assert error.fields[:5] == tuple(f"column 'Ticker' row {i}" for i in range(5))
    assert "in 95 more row(s)" in str(error)


def test_a_symbol_column_that_agrees_is_accepted(clean_table: pd.DataFrame,
                                                 tmp_path: Path) -> None:
    path = write_csv(clean_table.assign(symbol=" newco "), tmp_path / "own.csv")
    store = Store(tmp_path / "own.duckdb")
    before = table_contents(store)["tables"].set_index("name")
    import_file_into(store, path, **import_options())  # type: ignore[arg-type]
    assert store.instrument("NEWCO") is not None
    # the comparison the refusal tests rest on sees a write
    after = table_contents(store)["tables"].set_index("name")
    changed = set(after.index[after["digest"] != before["digest"]])
    assert {"tickers", "bars"} <= changed


def test_a_garbage_date_names_its_own_row_and_value(
        clean_table: pd.DataFrame, tmp_path: Path, store: Store,
        refused_leaves_store_unchanged: Refused) -> None:
    table = clean_table.copy()
    table.loc[14, "Date"] = "2005-13-45"
    path = write_csv(table, tmp_path / "garbage.csv")
    error = refused_leaves_store_unchanged(lambda: import_file_into(
        store, path, **import_options()))  # type: ignore[arg-type]
    text = str(error)
    assert "row 14 (got '2005-13-45')" in text
    assert repr(clean_table.loc[0, "Date"]) not in text
    table.loc[20, "Date"] = "soon"
    write_csv(table, path)
    error = refused_leaves_store_unchanged(lambda: import_file_into(
        store, path, **import_options()))  # type: ignore[arg-type]
    assert "row 14 (got '2005-13-45') and 1 more row(s)" in str(error)


@pytest.mark.parametrize(("args", "expected"), [
    (["--symbol", "   "], "symbol: must not be blank (got '   ')"),
    (["--symbol", "<svg/onload=alert(1)>"], "(got '<svg/onload=alert(1)>')"),
    (["--symbol", "NEWCO", "--tick-size", "inf"],
     "tick_size: must be a finite number above 0 (got inf)"),
    (["--symbol", "NEWCO", "--lot-size", "0"],
     "lot_size: must be a finite number above 0 (got 0.0)"),
])
def test_the_cli_refuses_bad_options_with_a_clear_error(args: list[str], expected: str,
                                                        clean_csv: Path, store: Store) -> None:
    before = table_contents(store)
    result = CliRunner().invoke(cli, ["--db", str(store.path), "data", "import",
                                      str(clean_csv), "--timeframe", "1d", *args])
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert "Traceback" not in result.output
    assert_unchanged(before, table_contents(store))
