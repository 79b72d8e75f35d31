"""Small hand-made trader histories for the behaviour detector tests (no store needed)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from buddy.behavior.history import INTENT_COLUMNS, TRADE_COLUMNS, TraderHistory, session_day

T0 = pd.Timestamp("2021-03-01T14:00Z")
ONE_DAY = pd.Timedelta(days=1)
CLASSES = {"AAPL": "equity", "MSFT": "equity", "EURUSD": "fx", "GBPUSD": "fx"}


def trade(k: int, *, open_ts: pd.Timestamp, hours: float = 2.0, symbol: str = "AAPL",
          side: str = "long", risk: float | None = 1000.0, pnl_r: float | None = 0.5,
          timeframe: str = "1d", closed: bool = True, **extra: Any) -> dict[str, Any]:
    """Return one trade row (TRADE_COLUMNS): entry 100, a stop 1 below (long), qty from risk."""
    sign = 1.0 if side == "long" else -1.0
    qty = (risk if risk is not None else 1000.0) / 1.0
    row: dict[str, Any] = {
        "trade_id": f"T{k:03d}", "symbol": symbol, "asset_class": CLASSES[symbol],
        "side": side, "sign": sign, "timeframe": timeframe,
        "intraday": timeframe not in ("1d", "1w"), "open_ts": open_ts,
        "close_ts": open_ts + pd.Timedelta(hours=hours) if closed else pd.NaT,
        "entry": 100.0, "qty": qty, "multiplier": 1.0,
        "initial_stop": 100.0 - sign if risk is not None else np.nan,
        "risk_amount": risk if risk is not None else np.nan, "notional": 100.0 * qty,
        "pnl": (pnl_r if pnl_r is not None else 0.0) * (risk or 1000.0) if closed else np.nan,
        "pnl_r": pnl_r if closed and risk is not None and pnl_r is not None else np.nan,
        "linked_intent_id": None, "extension_atr": np.nan, "process_score": np.nan,
        "stop_touch_ts": pd.NaT, "stop_touch_open": np.nan, "stop_checked": False}
    row.update(extra)
    return row


def history(rows: Sequence[dict[str, Any]], *, user_id: str = "u1",
            equity: float | None = None) -> TraderHistory:
    """Return a TraderHistory of ``rows`` (trade dicts), by open time."""
    frame = pd.DataFrame(list(rows), columns=list(TRADE_COLUMNS))
    for column in ("open_ts", "close_ts", "stop_touch_ts"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    frame["session_day"] = session_day(frame["open_ts"]).to_numpy()
    for column in ("stop_checked", "intraday"):
        frame[column] = frame[column].astype(bool)
    frame = frame.sort_values("open_ts", kind="stable").reset_index(drop=True)
    return TraderHistory(user_id=user_id, as_of=None, trades=frame,
                         intents=pd.DataFrame(columns=list(INTENT_COLUMNS)),
                         equity=equity, equity_since=None if equity is None else
                         pd.Timestamp("2000-01-01", tz="UTC"), asset_classes=CLASSES)


def intent(as_of: pd.Timestamp, *, symbol: str = "AAPL", risk: float | None = 1000.0,
           timeframe: str = "1d", intent_id: str = "I1", **extra: Any) -> pd.DataFrame:
    """Return a one-row intents frame: entry 100, stop 99, size from ``risk`` (None: no
    stop)."""
    row = {"intent_id": intent_id, "symbol": symbol, "side": "long", "as_of": as_of,
           "timeframe": timeframe, "proposed_entry": 100.0,
           "proposed_stop": 99.0 if risk is not None else np.nan,
           "proposed_size": risk if risk is not None else 1000.0}
    row.update(extra)
    return pd.DataFrame([row])


def steady(n: int = 12, *, symbol: str = "AAPL", start: pd.Timestamp = T0,
           every: pd.Timedelta = ONE_DAY) -> list[dict[str, Any]]:
    """Return ``n`` winning trades of risk 1000, one per ``every`` from ``start``."""
    return [trade(k, open_ts=start + k * every, symbol=symbol) for k in range(n)]
