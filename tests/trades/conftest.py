"""Helpers for trade-history tests: canonical fills, written straight into broker_fills."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from buddy.store import Store

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
