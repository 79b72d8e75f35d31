"""Importing an events CSV: validated whole, nothing written on error, idempotent, and
announced_at defaulted so a file imported today never leaks into a replay of the past."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from buddy.events.cli import events_import
from buddy.events.store import EventImportError, import_events
from buddy.store import Store

NOW = pd.Timestamp("2024-01-02T12:00Z")
TICKERS = pd.DataFrame([{
    "symbol": s, "name": s, "asset_class": "equity", "exchange": "XNYS", "currency": "USD",
    "sector": None, "tick_size": 0.01, "lot_size": 1.0, "contract_multiplier": 1.0,
    "trading_calendar": "XNYS", "benchmark": None, "timezone": "America/New_York",
    "source": "tests", "licence": "none"} for s in ("AAPL", "IBM")])

GOOD = """kind,ts,title,symbol,announced_at
earnings,2012-07-24T20:30Z,AAPL Q3 FY12 earnings,AAPL,2012-06-26T12:00Z
earnings,2012-07-18T20:05Z,IBM Q2 2012 earnings,ibm,
macro,2012-07-06T12:30Z,US nonfarm payrolls (June),,2012-06-01T00:00Z
"""


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated store holding two tickers, built once and copied per test."""
    store = Store(tmp_path_factory.mktemp("events") / "template.duckdb")
    store.write_market_data(tickers=TICKERS)
    return store.path


@pytest.fixture
def store(template: Path, tmp_path: Path) -> Store:
    path = tmp_path / "events.duckdb"
    shutil.copy(template, path)
    return Store(path)


def _csv(tmp_path: Path, text: str, name: str = "events.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _events(store: Store) -> pd.DataFrame:
    return store.query("SELECT * FROM events ORDER BY ts")


def test_a_valid_file_is_imported_with_defaults(store: Store, tmp_path: Path) -> None:
    stamp = store.context_stamp()
    summary = import_events(store, _csv(tmp_path, GOOD), now=NOW.to_pydatetime())
    assert (summary.rows, summary.replaced, summary.by_kind) == (3, 0, {"earnings": 2,
                                                                        "macro": 1})
    assert summary.hidden_from_replays == 1  # IBM's date, announced "now", is already past
    assert "1 were already past when announced" in str(summary)
    rows = _events(store)
    assert list(rows["symbol"].fillna("-")) == ["-", "IBM", "AAPL"]  # upper-cased; NULL macro
    ibm = rows[rows["symbol"] == "IBM"].iloc[0]
    assert ibm["announced_at"] == NOW  # no announced_at: the import time
    assert (rows["imported_at"] == NOW).all()
    assert set(rows["source"]) == {"import:events.csv"}
    assert rows["event_id"].str.startswith("ev-").all()
    assert store.context_stamp() != stamp  # cached packs are invalidated


def test_reimport_replaces_rows_and_keeps_the_first_announcement(store: Store,
                                                                tmp_path: Path) -> None:
    path = _csv(tmp_path, GOOD)
    import_events(store, path, now=NOW.to_pydatetime())
    later = NOW + pd.Timedelta(days=30)
    summary = import_events(store, path, now=later.to_pydatetime())
    assert (summary.rows, summary.replaced) == (3, 3)
    rows = _events(store)
    assert len(rows) == 3
    assert rows.loc[rows["symbol"] == "IBM", "announced_at"].iloc[0] == NOW
    assert (rows["imported_at"] == later).all()


def test_the_import_option_sets_announced_at_for_rows_without_one(store: Store,
                                                                  tmp_path: Path) -> None:
    import_events(store, _csv(tmp_path, GOOD), announced_at="2012-07-01T00:00Z",
                  now=NOW.to_pydatetime())
    rows = _events(store).set_index("title")
    assert rows.loc["IBM Q2 2012 earnings", "announced_at"] == pd.Timestamp("2012-07-01T00:00Z")
    assert rows.loc["AAPL Q3 FY12 earnings", "announced_at"] == pd.Timestamp(
        "2012-06-26T12:00Z")  # the column wins


def test_every_problem_is_named_and_nothing_is_written(store: Store, tmp_path: Path) -> None:
    bad = """kind,ts,title,symbol,announced_at,event_id
earnings,2012-07-24T20:30Z,AAPL Q3,AAPL,2012-06-26T12:00Z,a
dividend,2012-07-24T20:30Z,AAPL dividend,AAPL,,b
earnings,2012-07-24,IBM Q2,IBM,,c
earnings,2012-07-24T20:30Z,,IBM,,d
earnings,2012-07-24T20:30Z,MSFT Q4,MSFT,,e
earnings,2012-07-24T20:30Z,IBM Q2,IBM,2012-08-01T00:00Z,f
macro,2012-07-06T12:30Z,NFP,,soon,g
macro,2012-07-06T12:30Z,NFP again,,,a
"""
    with pytest.raises(EventImportError) as info:
        import_events(store, _csv(tmp_path, bad), now=NOW.to_pydatetime())
    assert set(info.value.fields) == {
        "row 3.kind", "row 4.ts", "row 5.title", "row 6.symbol", "row 7.announced_at",
        "row 8.announced_at", "row 9.event_id"}
    text = str(info.value)
    assert "must be one of earnings, macro, holiday, early_close, other" in text
    assert "must not be after ts" in text
    assert "repeats row 2" in text
    assert _events(store).empty


def test_unknown_and_missing_columns(store: Store, tmp_path: Path) -> None:
    with pytest.raises(EventImportError) as info:
        import_events(store, _csv(tmp_path, "kind,timestamp,title,symbl\nmacro,x,y,z\n"))
    text = str(info.value)
    assert "column timestamp" in text and "column ts: is required" in text
    assert "did you mean 'symbol'?" in text
    with pytest.raises(EventImportError, match="has no rows"):
        import_events(store, _csv(tmp_path, "kind,ts,title\n", "empty.csv"))
    with pytest.raises(EventImportError, match="readable CSV"):
        import_events(store, tmp_path / "absent.csv")
    assert _events(store).empty


def test_cli_imports_and_reports_errors(store: Store, tmp_path: Path) -> None:
    class Obj:
        def store(self) -> Store:
            return store

    runner = CliRunner()
    ok = runner.invoke(events_import, [str(_csv(tmp_path, GOOD)), "--announced-at",
                                       "2012-06-01T00:00Z"], obj=Obj())
    assert ok.exit_code == 0, ok.output
    assert "imported 3 events" in ok.output
    bad = runner.invoke(events_import, [str(_csv(tmp_path, "kind,ts,title\nfoo,x,\n", "b.csv"))],
                        obj=Obj())
    assert bad.exit_code == 2
    assert "row 2.kind" in bad.output
    assert len(_events(store)) == 3
