"""The trades view without a browser: set widget values, click, check what is shown and
written. The store holds a slice of the demo trader (AAPL 1d and EURUSD 1h) taken through the
real import and grouping."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from buddy.api import Buddy
from buddy.store import Store
from buddy.store import trades as trade_store
from buddy.trades.demo_history import MT5_SERVER_TZ, broker_files, simulate_history
from buddy.trades.importer import import_fills
from buddy.trades.service import rebuild_trades
from buddy.widgets import WorkbenchApp
from buddy.widgets.trades_view import TradesView, trade_figures

USER = "demo"


@pytest.fixture(scope="module")
def db(sample_store: Store, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a copy of the sample store holding the demo trader's AAPL and EURUSD trades."""
    folder = tmp_path_factory.mktemp("trades_view")
    path = folder / "buddy.duckdb"
    shutil.copy(sample_store.path, path)
    store = Store(path)
    history = simulate_history(store, user_id=USER,
                               series=(("AAPL", "1d"), ("EURUSD", "1h")))
    tickers = store.tickers()
    files = broker_files(history, folder, dict(zip(tickers["symbol"], tickers["exchange"],
                                                   strict=True)))
    import_fills(store, files["ibkr-csv"], user_id=USER, fmt="ibkr-csv")
    import_fills(store, files["mt5"], user_id=USER, fmt="mt5", tz=MT5_SERVER_TZ)
    rebuild_trades(store, USER)
    return path


def _trades(db: Path) -> pd.DataFrame:
    return trade_store.read_trades(Store(db), USER)


def _pick(view: TradesView, symbol: str, status: str = "closed") -> str:
    view.symbol.value = symbol
    view.status_filter.value = status
    trade_id = view.list.options[0][1]
    view.list.value = trade_id
    return trade_id


def test_the_list_holds_the_users_trades_and_the_filters_narrow_it(db: Path) -> None:
    trades = _trades(db)
    view = TradesView(Store(db), USER)
    assert len(view.list.options) == len(trades) > 100
    assert list(view.symbol.options) == ["all", "AAPL", "EURUSD"]
    assert {v for _, v in view.list.options} == set(trades["trade_id"])
    newest = trades.sort_values("open_ts").iloc[-1]
    assert view.list.options[0][1] == newest["trade_id"]
    view.symbol.value = "EURUSD"
    assert len(view.list.options) == (trades["symbol"] == "EURUSD").sum()
    assert all("EURUSD" in label for label, _ in view.list.options)
    view.status_filter.value = "open"
    assert len(view.list.options) == ((trades["symbol"] == "EURUSD")
                                      & (trades["status"] == "open")).sum()
    view.set_user("nobody")
    assert view.list.options == () and "0 of 0" in view.count.value


@pytest.mark.parametrize(("symbol", "timeframe"), [("AAPL", "1d"), ("EURUSD", "1h")])
def test_a_selected_trade_shows_its_chart_with_every_fill(db: Path, symbol: str,
                                                          timeframe: str) -> None:
    view = TradesView(Store(db), USER)
    trade_id = _pick(view, symbol)
    fills = trade_store.read_trade_fills(Store(db), USER, [trade_id])
    trade = _trades(db).set_index("trade_id").loc[trade_id]
    svg = view.chart.value
    assert svg.startswith("<svg") and f"{symbol} {timeframe}" in svg
    marked = [float(p) for p in re.findall(r"class='tb-fill' data-side='\w+' "
                                           r"data-price='([^']+)'", svg)]
    assert sorted(marked) == sorted(fills["price"].astype(float))
    sides = re.findall(r"class='tb-fill' data-side='(\w+)'", svg)
    assert sides[0] == ("buy" if trade["side"] == "long" else "sell")
    entry = re.search(r"class='tb-trade-entry' data-price='([^']+)'", svg)
    assert entry is not None and float(entry.group(1)) == pytest.approx(trade["avg_entry"])
    stop = re.search(r"class='tb-trade-stop' data-price='([^']+)'", svg)
    if pd.notna(trade["initial_stop"]):
        assert stop is not None and float(stop.group(1)) == pytest.approx(trade["initial_stop"])
    assert f"{timeframe} bars" in view.chart_note.value
    assert "not reviewed yet" in view.figures.value


def test_the_review_figures_show_with_units_and_missing_ones_say_not_checked(db: Path
                                                                            ) -> None:
    store = Store(db)
    view = TradesView(store, USER)
    trade_id = _pick(view, "AAPL")
    review = {"review_id": f"r-{trade_id}", "trade_id": trade_id, "user_id": USER,
              "generated_at": pd.Timestamp("2024-01-02", tz="UTC"), "process_grade": "B",
              "key_lessons_json": json.dumps(["stop held at 1.0 R"]),
              "what_went_well_json": json.dumps([{"text": "size within the budget"}]),
              "what_to_improve_json": json.dumps([]), "version": "test-1",
              "outcome": "bad", "process_outcome": "good_process_bad_outcome",
              "process_score": 0.75, "mae_price": 3.21, "mfe_price": 1.5, "mae_r": -0.8,
              "mfe_r": 0.37, "mae_position": -802.5, "mfe_position": 375.0,
              "exit_efficiency": float("nan"), "bars_held": 4, "bars_timeframe": "1d",
              "review_json": json.dumps({"note": "no bar after the exit"})}
    trade_store.write_reviews(store, pd.DataFrame([review]))
    view.list.value = None
    view.list.value = trade_id
    figures = view.figures.value
    assert "-0.80 R" in figures and "+0.37 R" in figures and "-802.50 USD" in figures
    assert "4 bars of 1d" in figures and "good_process_bad_outcome" in figures
    assert "not checked: no bar after the exit" in figures  # exit efficiency
    assert "stop held at 1.0 R" in view.review.value
    assert "size within the budget" in view.review.value
    assert dict(trade_figures({"pnl": None, "pnl_r": None, "fees": 1.0}, None))[
        "P&L in R"] == "no stop known: not computed"


def test_a_journal_note_is_saved_on_the_selected_trade_and_bad_notes_write_nothing(
        db: Path) -> None:
    store = Store(db)
    view = TradesView(store, USER)
    before = len(trade_store.read_journal(store, USER))
    view.note.value = "no trade selected"
    view.save_button.click()
    assert "select a trade first" in view.note_status.value
    trade_id = _pick(view, "EURUSD")
    view.note.value = "   "
    view.save_button.click()
    assert "must not be empty" in view.note_status.value
    assert len(trade_store.read_journal(store, USER)) == before
    view.note.value = "Took it late in the session; tired."
    view.tags.value = "fatigue, late"
    view.save_button.click()
    notes = trade_store.read_journal(store, USER, trade_id=trade_id)
    assert list(notes["note_text"]) == ["Took it late in the session; tired."]
    assert json.loads(notes.iloc[0]["tags_json"]) == ["fatigue", "late"]
    assert "Took it late in the session" in view.journal.value
    assert "saved to the journal" in view.note_status.value and view.note.value == ""
    assert len(trade_store.read_journal(store, USER)) == before + 1


def test_the_workbench_has_a_trades_tab_that_follows_the_user_field(db: Path) -> None:
    app = WorkbenchApp(Buddy.open(db), user="someone-else")  # no piece providers: faster
    tabs = app.widget.children[-1]  # under the page's intro
    assert tabs.titles == ("Evaluate an idea", "Trades", "Profile", "Portfolio")
    assert tabs.children[1] is app.trades.widget
    assert tabs.children[2] is app.profile.widget
    assert tabs.children[3] is app.portfolio.widget
    assert app.trades.list.options == ()
    app.fields["user"].value = USER
    assert app.portfolio.model.user == USER
    assert len(app.trades.list.options) == len(_trades(db))
