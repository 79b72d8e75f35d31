"""Real moves are not errors: splits are judged on the adjusted basis, and a named session
lets a real gap through (issue #16, section 3)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from buddy.cli import cli
from buddy.data.frames import TICKERS_COLUMNS
from buddy.data.validation import BarValidationError
from buddy.jobs.load import import_file_into
from buddy.store import Store
from tests.data_hygiene.conftest import import_options, write_csv

PRICES = ["Open", "High", "Low", "Close"]
EX_ROW = 40
Refused = Callable[[Callable[[], object]], Exception]


def split_table(clean: pd.DataFrame, ratio: float, *, adj_close: bool = False) -> pd.DataFrame:
    """Return the clean bars as traded through a ``ratio``:1 split at row EX_ROW."""
    table = clean.copy()
    after = table.index >= EX_ROW
    table.loc[after, PRICES] = table.loc[after, PRICES] / ratio
    table.loc[after, "Volume"] = table.loc[after, "Volume"] * ratio
    if adj_close:
        table["Adj Close"] = table["Close"].where(after, table["Close"] / ratio)
    return table


def ex_date(clean: pd.DataFrame) -> str:
    return str(clean.loc[EX_ROW, "Date"])


def test_an_unlisted_4_for_1_split_is_refused_at_its_ex_date(
        clean_table: pd.DataFrame, tmp_path: Path, store: Store,
        refused_leaves_store_unchanged: Refused) -> None:
    path = write_csv(split_table(clean_table, 4.0), tmp_path / "split.csv")
    error = refused_leaves_store_unchanged(lambda: import_file_into(
        store, path, **import_options()))  # type: ignore[arg-type]
    assert isinstance(error, BarValidationError)
    found = error.report.violations
    assert found[["row", "rule"]].astype(str).values.tolist() == [[str(EX_ROW), "PRICE_JUMP"]]
    assert "allow its date" in str(error)


def test_a_split_in_the_files_adjusted_close_is_judged_adjusted(clean_table: pd.DataFrame,
                                                                tmp_path: Path) -> None:
    path = write_csv(split_table(clean_table, 4.0, adj_close=True), tmp_path / "split.csv")
    store = Store(tmp_path / "adj.duckdb")
    summary = import_file_into(store, path, **import_options())  # type: ignore[arg-type]
    assert summary.written["bars"] >= len(clean_table)
    bars = store.bars("NEWCO", "1d")
    assert len(bars) == len(clean_table)


def test_a_split_the_store_lists_is_judged_adjusted(clean_table: pd.DataFrame,
                                                    tmp_path: Path) -> None:
    store = Store(tmp_path / "known.duckdb")
    ticker = dict(import_options(), name="NEWCO", exchange="XNYS", sector=None,
                  contract_multiplier=1.0, trading_calendar="XNYS", benchmark=None,
                  timezone="America/New_York", source="test", licence="test")
    actions = pd.DataFrame({"symbol": ["NEWCO"], "ex_date": [pd.Timestamp(ex_date(clean_table))],
                            "action": ["split"], "ratio": [4.0], "source": ["test"]})
    store.write_market_data(tickers=pd.DataFrame([ticker])[list(TICKERS_COLUMNS)],
                            corporate_actions=actions)
    path = write_csv(split_table(clean_table, 4.0), tmp_path / "split.csv")
    import_file_into(store, path, **import_options())  # type: ignore[arg-type]
    assert len(store.bars("NEWCO", "1d")) == len(clean_table)


def test_a_named_session_lets_a_real_gap_through(clean_table: pd.DataFrame,
                                                 tmp_path: Path) -> None:
    path = write_csv(split_table(clean_table, 4.0), tmp_path / "gap.csv")
    store = Store(tmp_path / "gap.duckdb")
    import_file_into(store, path, **import_options(  # type: ignore[arg-type]
        allow_jumps=[ex_date(clean_table)]))
    assert len(store.bars("NEWCO", "1d")) == len(clean_table)


def test_naming_one_session_lets_only_that_one_through(
        clean_table: pd.DataFrame, tmp_path: Path, store: Store,
        refused_leaves_store_unchanged: Refused) -> None:
    table = split_table(clean_table, 4.0)
    table.loc[70, PRICES] = table.loc[70, PRICES] * 100
    path = write_csv(table, tmp_path / "gap_and_error.csv")
    error = refused_leaves_store_unchanged(lambda: import_file_into(
        store, path, **import_options(allow_jumps=[ex_date(clean_table)])))  # type: ignore[arg-type]
    rows = set(error.report.violations["row"].astype(int))  # type: ignore[attr-defined]
    assert rows == {70}


def test_a_reverse_split_starts_a_new_reference_once_named(
        clean_table: pd.DataFrame, tmp_path: Path, store: Store,
        refused_leaves_store_unchanged: Refused) -> None:
    # 1:20: every later bar is 20x the median close before it until the window has moved on
    path = write_csv(split_table(clean_table, 1 / 20), tmp_path / "reverse.csv")
    error = refused_leaves_store_unchanged(lambda: import_file_into(
        store, path, **import_options()))  # type: ignore[arg-type]
    counts = error.report.rule_counts  # type: ignore[attr-defined]
    assert counts["PRICE_JUMP"] == 1 and counts["PRICE_FAR_FROM_SERIES"] >= 10
    fresh = Store(tmp_path / "reverse.duckdb")
    import_file_into(fresh, path, **import_options(  # type: ignore[arg-type]
        allow_jumps=[ex_date(clean_table)]))
    assert len(fresh.bars("NEWCO", "1d")) == len(clean_table)


def test_the_cli_names_real_gaps_with_allow_jump(clean_table: pd.DataFrame,
                                                 tmp_path: Path) -> None:
    path = write_csv(split_table(clean_table, 4.0), tmp_path / "gap.csv")
    db = tmp_path / "cli.duckdb"
    base = ["--db", str(db), "data", "import", str(path), "--symbol", "NEWCO",
            "--timeframe", "1d"]
    refused = CliRunner().invoke(cli, base)
    assert refused.exit_code == 2
    assert f"row {EX_ROW} ts=" in refused.output and "PRICE_JUMP" in refused.output
    accepted = CliRunner().invoke(cli, [*base, "--allow-jump", ex_date(clean_table)])
    assert accepted.exit_code == 0, accepted.output
    assert len(Store(db).bars("NEWCO", "1d")) == len(clean_table)


@pytest.mark.parametrize("value", ["tomorrow", "2005-02-30"])
def test_an_allow_date_that_is_no_date_is_refused(value: str, clean_table: pd.DataFrame,
                                                  tmp_path: Path) -> None:
    path = write_csv(clean_table, tmp_path / "clean.csv")
    with pytest.raises(ValueError, match=f"allow: not a date \\(got '{value}'\\)"):
        import_file_into(Store(tmp_path / "x.duckdb"), path,
                         **import_options(allow_jumps=[value]))  # type: ignore[arg-type]


def _continuation(rows: slice) -> pd.DataFrame:
    from buddy.data.sample import load_sample

    bars = load_sample().bars
    ibm = bars[(bars["symbol"] == "IBM") & (bars["session"] >= pd.Timestamp("2005-02-01"))]
    part = ibm.iloc[rows]
    return pd.DataFrame({
        "Date": pd.DatetimeIndex(part["session"]).strftime("%Y-%m-%d"),
        "Open": part["open"].to_numpy(), "High": part["high"].to_numpy(),
        "Low": part["low"].to_numpy(), "Close": part["close"].to_numpy(),
        "Volume": part["volume"].to_numpy()})


def test_a_file_that_continues_a_stored_series_is_judged_against_it(
        tmp_path: Path, store: Store, refused_leaves_store_unchanged: Refused) -> None:
    # the next 30 IBM sessions after BASE's 100, keyed in cents: consistent among themselves,
    # 100x the stored series they continue
    keyed = _continuation(slice(100, 130))
    keyed[PRICES] = keyed[PRICES] * 100
    path = write_csv(keyed, tmp_path / "cents.csv")
    error = refused_leaves_store_unchanged(lambda: import_file_into(
        store, path, **import_options(symbol="BASE")))  # type: ignore[arg-type]
    found = error.report.violations  # type: ignore[attr-defined]
    assert set(found["rule"]) == {"PRICE_JUMP", "PRICE_FAR_FROM_SERIES"}
    assert int(found["row"].min()) == 0  # numbered in the file, not after the stored bars
    assert error.report.n_rows == 30  # type: ignore[attr-defined]


def test_a_clean_continuation_is_accepted(clean_table: pd.DataFrame, tmp_path: Path) -> None:
    fresh = Store(tmp_path / "continued.duckdb")
    import_file_into(fresh, write_csv(clean_table, tmp_path / "first.csv"),
                     **import_options())  # type: ignore[arg-type]
    import_file_into(fresh, write_csv(_continuation(slice(100, 130)), tmp_path / "next.csv"),
                     **import_options())  # type: ignore[arg-type]
    assert len(fresh.bars("NEWCO", "1d")) == 130
