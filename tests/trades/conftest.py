"""Helpers for trade-history tests: canonical fills, written straight into broker_fills."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pytest

from buddy.jobs.reviews import run_reviews_job
from buddy.store import Store
from buddy.trades.service import rebuild_trades
from buddy.users.store import set_user

T0 = pd.Timestamp("2012-06-04T14:30Z")
HOUR_BEFORE = T0 - pd.Timedelta(hours=1)


def fill_rows(rows: Sequence[tuple], *, user: str = "u1", symbol: str = "AAPL",
              start: pd.Timestamp = T0, prefix: str | None = None) -> pd.DataFrame:
    """Return canonical fills from (minutes after start, side, qty, price[, commission])."""
    out = []
    for n, row in enumerate(rows):
        minutes, side, qty, price, *rest = row
        out.append({"user_id": user, "account": "U1", "symbol": symbol,
                    "ts": start + pd.Timedelta(minutes=minutes), "side": side,
                    "qty": float(qty), "price": float(price),
                    "commission": float(rest[0]) if rest else 0.0, "fees": 0.0,
                    "currency": "USD", "exec_id": f"{prefix or symbol}-{n}", "source": "test",
                    "source_file": "test.csv", "source_row": n + 1, "open_close": None,
                    "order_id": None, "venue": "XNAS", "imported_at": T0})
    frame = pd.DataFrame(out)
    frame["ts"] = frame["ts"].astype("datetime64[us, UTC]")
    frame["imported_at"] = frame["imported_at"].astype("datetime64[us, UTC]")
    return frame


def write_fills(store: Store, fills: pd.DataFrame) -> None:
    """Insert canonical fills into broker_fills (what the importer writes)."""
    with store.transaction() as con:
        con.register("_fills", fills)
        con.execute("INSERT INTO broker_fills BY NAME SELECT * FROM _fills")
        con.unregister("_fills")


def log_intent(store: Store, intent_id: str, *, user: str = "u1", symbol: str = "AAPL",
               side: str = "long", entry: float = 100.0, stop: float | None = 98.0,
               target: float | None = 104.0, size: float = 100.0,
               as_of: pd.Timestamp = HOUR_BEFORE, timeframe: str = "1h",
               exit_template: str | None = None,
               items: Sequence[tuple[str, str, str]] = ()) -> None:
    """Log an intent and one evaluation of it with (code, severity, action) items."""
    intent = {"intent_id": intent_id, "user_id": user, "symbol": symbol, "side": side,
              "timeframe": timeframe, "proposed_entry": entry, "proposed_stop": stop,
              "proposed_target": target, "proposed_size": size, "order_type": "limit",
              "exit_template": exit_template, "as_of": as_of, "status": "evaluated"}
    evaluation = {"eval_id": f"E-{intent_id}", "intent_id": intent_id, "user_id": user,
                  "symbol": symbol, "timeframe": timeframe, "eval_ts": as_of,
                  "overall_score": 70.0, "overall_severity": "medium",
                  "modules_run_json": "{}", "summary_json": "{}"}
    rows = [{"eval_item_id": f"E-{intent_id}-{n}", "eval_id": f"E-{intent_id}",
             "module_name": "risk", "issue_code": code, "severity": severity,
             "evidence_json": "[]", "recommendation_json": f'{{"action": "{action}"}}'}
            for n, (code, severity, action) in enumerate(items)]
    store.log_evaluation(intent, evaluation, rows)


# 1h bars from 14:30 (one session): (high, low)
AAPL_BARS = [(101, 99.5), (102, 98.5), (104, 100), (103.5, 101), (105, 102), (106, 96),
             (110, 103)]
MSFT_BARS = [(51, 49.6), (50.5, 48.95), (49.5, 48.9), (50, 49)]


def _ticker(symbol: str) -> dict:
    return {"symbol": symbol, "name": symbol, "asset_class": "equity", "exchange": "XNAS",
            "currency": "USD", "tick_size": 0.01, "lot_size": 1.0, "contract_multiplier": 1.0,
            "trading_calendar": "XNYS", "timezone": "America/New_York"}


def bars_1h(symbol: str, highs_lows: list[tuple[float, float]]) -> pd.DataFrame:
    """Return 1h bars from T0 in one session from (high, low) pairs."""
    ts = pd.date_range(T0, periods=len(highs_lows), freq="1h")
    return pd.DataFrame({"symbol": symbol, "timeframe": "1h", "ts": ts,
                         "ts_close": ts + pd.Timedelta(hours=1), "session": T0.date(),
                         "open": [lo for _, lo in highs_lows],
                         "high": [h for h, _ in highs_lows], "low": [lo for _, lo in highs_lows],
                         "close": [h for h, _ in highs_lows], "volume": 1000.0})


@pytest.fixture(scope="session")
def reviewed_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """Return a store with three reviewed trades of u1 (see build_reviewed_store)."""
    return build_reviewed_store(Path(tmp_path_factory.mktemp("review")) / "buddy.duckdb")


def build_reviewed_store(path: Path) -> Store:
    """Build a store with 1h bars of AAPL and MSFT and three reviewed trades of u1."""
    store = Store(path)
    store.write_market_data(tickers=pd.DataFrame([_ticker("AAPL"), _ticker("MSFT")]),
                            bars=pd.concat([bars_1h("AAPL", AAPL_BARS),
                                            bars_1h("MSFT", MSFT_BARS)], ignore_index=True))
    set_user(store, "u1", equity=100_000.0, rules={"max_risk_per_trade_pct": 1.0})
    write_fills(store, pd.concat([
        # planned long, exited at 1.5 R before the 2 R target; the size cut asked for not made
        fill_rows([(0, "buy", 100, 100.0), (200, "sell", 100, 103.0)]),
        # unplanned, inside one 1h bar: no stop, no excursions
        fill_rows([(365, "buy", 10, 104.0), (380, "sell", 10, 105.0)], prefix="late"),
        # planned long stopped out at its stop: good process, bad outcome
        fill_rows([(0, "buy", 100, 50.0), (135, "sell", 100, 49.0)], symbol="MSFT"),
    ], ignore_index=True))
    log_intent(store, "i-aapl", entry=100.0, stop=98.0, target=104.0, size=100,
               items=[("RISK_ABOVE_BUDGET", "high", "REDUCE_SIZE"),
                      ("ENTRY_MID_BAR", "low", "WAIT_FOR_BAR_CLOSE")])
    log_intent(store, "i-msft", symbol="MSFT", entry=50.0, stop=49.0, target=52.0, size=100)
    rebuild_trades(store, "u1")
    run_reviews_job(store, "u1")
    return store  # read-only by convention: tests that write build their own
