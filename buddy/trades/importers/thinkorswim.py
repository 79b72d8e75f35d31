"""thinkorswim / Schwab account statement CSV ("Account Statement" export).

The file holds several sections (Cash Balance, Account Order History, Account Trade History,
Equities, Options, Profits and Losses, ...), each a title line, a header line and rows up to a
blank line. Executions are the "Account Trade History" rows: ``Exec Time`` (platform time,
US Eastern unless ``--tz`` says otherwise), ``Spread``, ``Side``, signed ``Qty``, ``Pos Effect``
(TO OPEN / TO CLOSE, kept as ``open_close``), ``Symbol``, ``Exp``, ``Strike``, ``Type``,
``Price``, ``Net Price``, ``Order Type``. The legs of a multi-leg spread after the first leave
``Exec Time`` empty: they share the first leg's time.

Option legs become symbols 'AAPL 21 JUN 24 190 CALL' (not in tickers, so reported). The trade
history has no commissions: they are taken from the Cash Balance row of the same execution
(TYPE TRD, description 'BOT +100 AAPL @172.50' at the same date and time), split between the
rows it covers by quantity; an execution without one stores 0 and is listed in ``problems``.
Accounts are US accounts: the currency is the instrument's, else USD. No execution ids: the
content key is used.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from buddy.errors import FieldError
from buddy.trades.fills import FillsFileError
from buddy.trades.importers.sheet import Instrument, ParsedFills, Reader, Sheet, read_csv_lines

TRADES_SECTION = "Account Trade History"
CASH_SECTION = "Cash Balance"
PLATFORM_TZ = "America/New_York"
TIME_FORMATS = ("%m/%d/%y %H:%M:%S", "%m/%d/%Y %H:%M:%S", "%m/%d/%y %H:%M", "%Y-%m-%d %H:%M:%S")
SIDE_WORDS = {"BUY": "buy", "SELL": "sell"}
_TRD = re.compile(r"^(BOT|SOLD)\s+([+-]?[\d,.]+)\s+(\S+)\s+(?:.*\s)?@\s*([\d,.]+)")


def _sections(path: Path) -> dict[str, list[tuple[int, list[str]]]]:
    """Return title -> [(line, cells)] with the header first, for every section."""
    lines = read_csv_lines(path)
    sections: dict[str, list[tuple[int, list[str]]]] = {}
    current: list[tuple[int, list[str]]] | None = None
    for number, row in enumerate(lines, start=1):
        cells = [c.strip() for c in row]
        if not any(cells):
            current = None
            continue
        filled = [c for c in cells if c]
        if current is None and len(filled) == 1:
            current = sections.setdefault(filled[0], [])
            continue
        if current is not None:
            current.append((number, cells))
    return sections


def _frame(rows: list[tuple[int, list[str]]]) -> tuple[pd.DataFrame, np.ndarray]:
    header = rows[0][1]
    body = [(n, (cells + [""] * len(header))[:len(header)]) for n, cells in rows[1:]]
    names = [h if h else f"_blank{i}" for i, h in enumerate(header)]
    return (pd.DataFrame([c for _, c in body], columns=names, dtype=object),
            np.array([n for n, _ in body], dtype=int))


def parse_thinkorswim(path: Path, *, user_id: str, tz: str | None,
                      instruments: Mapping[str, Instrument]) -> ParsedFills:
    """Read the Account Trade History of a thinkorswim account statement."""
    sections = _sections(path)
    if TRADES_SECTION not in sections or len(sections[TRADES_SECTION]) < 1:
        raise FillsFileError([FieldError("(file)", f"no '{TRADES_SECTION}' section (the "
                                         f"file has: {', '.join(sections) or 'none'})",
                                         str(path))])
    cells, lines = _frame(sections[TRADES_SECTION])
    sheet = Sheet(cells, np.arange(1, len(cells) + 1), lines)
    r = Reader(sheet, fmt="thinkorswim", path=path, user_id=user_id, tz=tz,
               instruments=instruments)
    r.require("Exec Time", "Side", "Qty", "Pos Effect", "Symbol", "Type", "Price")
    # later legs of a spread leave Exec Time empty: they share the first leg's time
    exec_time = pd.Series(r.text("Exec Time", required=False)).ffill().to_numpy(dtype=object)
    r.flag(pd.isna(exec_time), "Exec Time", "required, empty (and no leg above it)",
           exec_time)
    naive = r.times(exec_time, "Exec Time", TIME_FORMATS)
    kind = np.array([(t or "").upper() for t in r.text("Type")], dtype=object)
    underlying = np.array([(s or "").upper() for s in r.text("Symbol")], dtype=object)
    exp, strike = r.text("Exp", required=False), r.text("Strike", required=False)
    is_option = np.isin(kind, ("CALL", "PUT"))
    symbols = np.array([f"{u} {e} {s} {k}" if opt else u for u, e, s, k, opt in
                        zip(underlying, exp, strike, kind, is_option, strict=True)],
                       dtype=object)
    qty = r.numbers("Qty")
    side = r.sides(r.text("Side"), "Side", SIDE_WORDS)
    r.flag(~np.isnan(qty) & (qty != 0) & (np.sign(qty) != np.where(side == "sell", -1, 1)),
           "Qty", "sign disagrees with Side (sells are negative)", qty)
    price = r.numbers("Price")
    ts = r.local_to_utc(naive, symbols, "Exec Time", convention=PLATFORM_TZ,
                        why="thinkorswim times are platform-local")
    commission = _commissions(r, sections.get(CASH_SECTION), naive, side, np.abs(qty),
                              symbols)
    currency = r.currencies(np.full(len(sheet), None, dtype=object), symbols)
    currency[pd.isna(currency)] = "USD"
    r.names = {"symbol": "Symbol", "side": "Side", "qty": "Qty", "price": "Price"}
    return r.finish(symbol=symbols, ts=ts, side=side, qty=np.abs(qty), price=price,
                    commission=commission, currency=currency,
                    open_close=r.text("Pos Effect"),
                    order_id=None, venue=None)


def _commissions(r: Reader, cash: list[tuple[int, list[str]]] | None, naive: np.ndarray,
                 side: np.ndarray, qty: np.ndarray, symbols: np.ndarray) -> np.ndarray:
    """Return each row's commission and fees from its Cash Balance TRD row (0 and a note
    when there is none); one cash row covering several fills is split by quantity."""
    out = np.zeros(len(naive))
    found: dict[tuple[object, ...], float] = {}
    if cash and len(cash) > 1:
        frame, _ = _frame(cash)
        names = {c.upper(): c for c in frame.columns}
        need = ("DATE", "TIME", "TYPE", "DESCRIPTION")
        if all(n in names for n in need):
            for row in frame.itertuples(index=False):
                values = dict(zip(frame.columns, row, strict=True))
                if values[names["TYPE"]].upper() != "TRD":
                    continue
                match = _TRD.match(values[names["DESCRIPTION"]])
                stamp = pd.to_datetime(f"{values[names['DATE']]} {values[names['TIME']]}",
                                       format="mixed", errors="coerce")
                if match is None or pd.isna(stamp):
                    continue
                cost = sum(abs(float(values[names[c]].replace(",", "") or 0))
                           for c in ("MISC FEES", "COMMISSIONS & FEES") if c in names)
                side_word = "buy" if match.group(1) == "BOT" else "sell"
                key: tuple[object, ...] = (stamp.to_datetime64(), side_word,
                                           match.group(3).upper())
                found[key] = found.get(key, 0.0) + cost
    groups: dict[tuple[object, ...], list[int]] = {}
    for i in range(len(naive)):
        groups.setdefault((naive[i], side[i], str(symbols[i]).split(" ")[0]), []).append(i)
    for key, members in groups.items():
        if key in found:
            total = qty[members].sum()
            out[members] = found[key] * qty[members] / total if total > 0 else 0.0
        else:
            for i in members:
                r.note(int(r.sheet.rows[i]), "commission",
                       "no Cash Balance row for this execution: commission stored as 0",
                       str(naive[i]))
    return out
