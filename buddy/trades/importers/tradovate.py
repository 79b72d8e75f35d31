"""Tradovate Fills export CSV (Account Reports > Fills).

The export carries the API fields (``_id``, ``_orderId``, ``_timestamp`` in UTC ISO-8601,
``_action``, ``_qty``, ``_price``) next to display columns (``Fill ID``, ``Order ID``,
``Timestamp`` as 'MM/DD/YYYY HH:MM:SS' without an offset, ``B/S`` with a leading space,
``Quantity``, ``Price``, ``Contract`` 'ESM4', ``Product`` 'ES', ``commission``). Display
columns are preferred for the values and ``_timestamp`` for the time (it has an offset);
without it, naive ``Timestamp`` needs ``--tz``. The symbol is the contract ('ESM4': each
expiry is its own instrument). Commissions are a positive cost; the currency is the
instrument's, else USD (Tradovate clears US futures). Fills are positions-only: no open/close.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from buddy.trades.importers.sheet import (
    Instrument,
    ParsedFills,
    Reader,
    Sheet,
    read_csv_cells,
)

SIDE_WORDS = {"buy": "buy", "sell": "sell", "b": "buy", "s": "sell", "0": "buy", "1": "sell"}
DISPLAY_TIME_FORMATS = ("%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S")


def _pick(columns: list[str], *names: str) -> str:
    return next((n for n in names if n in columns), names[0])


def parse_tradovate(path: Path, *, user_id: str, tz: str | None,
                    instruments: Mapping[str, Instrument]) -> ParsedFills:
    """Read a Tradovate Fills CSV."""
    cells = read_csv_cells(path)
    cells.columns = [str(c).strip() for c in cells.columns]
    sheet = Sheet.from_csv(cells)
    r = Reader(sheet, fmt="tradovate", path=path, user_id=user_id, tz=tz,
               instruments=instruments)
    cols = list(cells.columns)
    fill_id = _pick(cols, "Fill ID", "_id", "id")
    side_col = _pick(cols, "B/S", "_action")
    qty_col = _pick(cols, "Quantity", "_qty", "qty")
    price_col = _pick(cols, "Price", "_price", "price")
    symbol_col = _pick(cols, "Contract", "Symbol")
    time_col = _pick(cols, "_timestamp", "Timestamp")
    r.require(fill_id, side_col, qty_col, price_col, symbol_col, time_col)
    symbols = np.array([s.upper() if s else None for s in r.text(symbol_col)], dtype=object)
    if time_col == "_timestamp":
        ts = r.aware_or_local(r.text(time_col), time_col, symbols, convention=None,
                              why="the time has no UTC offset")
    else:
        naive = r.times(r.text(time_col), time_col, DISPLAY_TIME_FORMATS)
        ts = r.local_to_utc(naive, symbols, time_col, convention=None,
                            why="Tradovate's Timestamp column has no UTC offset")
    qty = r.numbers(qty_col)
    commission_col = _pick(cols, "commission", "Commission", "Fees")
    commission = (np.abs(r.numbers(commission_col, required=False, default=0.0))
                  if commission_col in cols else 0.0)
    currency = r.currencies(np.full(len(sheet), None, dtype=object), symbols)
    currency[pd.isna(currency)] = "USD"
    order_col = _pick(cols, "Order ID", "_orderId")
    r.names = {"symbol": symbol_col, "side": side_col, "qty": qty_col, "price": price_col,
               "exec_id": fill_id}
    return r.finish(
        symbol=symbols, ts=ts, side=r.sides(r.text(side_col), side_col, SIDE_WORDS),
        qty=np.abs(qty), price=r.numbers(price_col), commission=commission,
        currency=currency, exec_id=r.text(fill_id),
        order_id=r.text(order_col, required=False) if order_col in cols else None,
        account=r.text("Account", required=False) if "Account" in cols else None)
