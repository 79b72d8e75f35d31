"""Shared by the fills import tests: the fixtures folder and the tickers the fixtures trade."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

FIXTURES = Path(__file__).parent / "fixtures"
MT5_TZ = "Europe/Athens"  # a GMT+2/+3 server clock
GENERIC_MAP = {"date": "Time", "symbol": "Sym", "side": "Side", "qty": "Qty", "price": "Px",
               "commission": "Comm", "account": "Acct", "currency": "Cur"}


def sample_tickers() -> pd.DataFrame:
    """Return tickers rows of the bundled sample universe the fixtures trade."""
    rows = [(s, "equity", "XNYS", 0.01, 1.0, "America/New_York") for s in ("AAPL", "MSFT")]
    rows.append(("EURUSD", "fx", "OTC", 0.00001, 1000.0, "America/New_York"))
    return pd.DataFrame([{"symbol": s, "name": s, "asset_class": a, "exchange": x,
                          "currency": "USD", "sector": None, "tick_size": t, "lot_size": lot,
                          "contract_multiplier": 1.0, "trading_calendar": "XNYS",
                          "benchmark": None, "timezone": z, "source": "tests",
                          "licence": "n/a"} for s, a, x, t, lot, z in rows])
