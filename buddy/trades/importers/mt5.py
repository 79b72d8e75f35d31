"""MetaTrader 5 Deals report: the "Deals" table of the trade history report (HTML, as the
terminal saves it, usually UTF-16) or a CSV export of the same columns.

Columns: ``Time`` ('YYYY.MM.DD HH:MM:SS', the broker's server clock, so ``--tz`` is required:
for a GMT+2/+3 server with US daylight saving pass e.g. ``--tz Europe/Athens``), ``Deal``
(the execution id), ``Symbol``, ``Type`` (buy/sell; balance, credit and other cash rows are
skipped), ``Direction`` (in, out, inout, out by: kept as ``open_close``; 'inout' is one deal
that closes and reverses, which the trades grouping splits at zero), ``Volume`` in lots,
``Price``, ``Order``, ``Commission`` and ``Fee`` (negative = cost, stored positive), ``Swap``
(financing, not an execution cost: not stored, noted), ``Profit``, ``Balance``, ``Comment``.

Lots become units through the contract size of the instrument's asset class
(``CONTRACT_SIZE``: fx 100,000 units a lot, equities 1 share): a symbol not in tickers, or of
another asset class, is refused, since its contract size is unknown. A broker suffix
('EURUSD.m') is dropped when the bare symbol is in tickers.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd

from buddy.errors import FieldError
from buddy.trades.fills import FillsFileError
from buddy.trades.importers.sheet import (
    Instrument,
    ParsedFills,
    Reader,
    Sheet,
    strip_suffix_symbols,
)

#: Units per lot by tickers.asset_class (MetaTrader's standard contract sizes).
CONTRACT_SIZE: dict[str, float] = {"fx": 100_000.0, "equity": 1.0}
COLUMNS = ("Time", "Deal", "Symbol", "Type", "Direction", "Volume", "Price", "Order",
           "Commission", "Fee", "Swap", "Profit", "Balance", "Comment")
TIME_FORMATS = ("%Y.%m.%d %H:%M:%S", "%Y.%m.%d %H:%M", "%Y-%m-%d %H:%M:%S")
TRADE_TYPES = {"buy": "buy", "sell": "sell"}


def _decode(path: Path) -> str:
    raw = path.read_bytes()
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FillsFileError([FieldError("(file)", "not UTF-8 or UTF-16 text", str(exc))]
                             ) from exc


class _Rows(HTMLParser):
    """Collect every table row's cell texts, with the line each row starts on."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[tuple[int, list[str]]] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self._row = []
            self._line = self.getpos()[0]
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append((self._line, self._row))
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _deals_rows(text: str) -> list[tuple[int, list[str]]]:
    """Return the Deals table: its header row first, then its rows, with their lines."""
    if "<tr" in text.lower():
        parser = _Rows()
        parser.feed(text)
        rows = parser.rows
        start = next((i for i, (_, cells) in enumerate(rows)
                      if [c for c in cells if c] == ["Deals"]), None)
        if start is None:
            raise FillsFileError([FieldError("(file)", "no 'Deals' table in this MetaTrader "
                                             "report", None)])
        out: list[tuple[int, list[str]]] = []
        for line, cells in rows[start + 1:]:
            filled = [c for c in cells if c]
            if len(filled) <= 1 and out:  # the next section's title or a spacer row
                break
            if filled:
                out.append((line, cells))
        return out
    dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    return [(n, row) for n, row in enumerate(csv.reader(io.StringIO(text), dialect), start=1)
            if any(c.strip() for c in row)]


def parse_mt5(path: Path, *, user_id: str, tz: str | None,
              instruments: Mapping[str, Instrument]) -> ParsedFills:
    """Read a MetaTrader 5 Deals report (HTML or CSV)."""
    rows = _deals_rows(_decode(path))
    if not rows:
        raise FillsFileError([FieldError("(file)", "the Deals table is empty", None)])
    header = [h.strip() for h in rows[0][1]]
    # the totals row under the table spans columns (fewer cells) and has no time
    body = [(n, ([c.strip() for c in cells] + [""] * len(header))[:len(header)])
            for n, cells in rows[1:] if len(cells) >= len(header) or cells[0].strip()]
    cells = pd.DataFrame([c for _, c in body], columns=header, dtype=object)
    sheet = Sheet(cells, np.arange(1, len(body) + 1), np.array([n for n, _ in body], int))
    r = Reader(sheet, fmt="mt5", path=path, user_id=user_id, tz=tz, instruments=instruments)
    r.require("Time", "Deal", "Symbol", "Type", "Direction", "Volume", "Price")
    kind = np.array([(t or "").lower() for t in r.text("Type", required=False)], dtype=object)
    skipped = ~np.isin(kind, tuple(TRADE_TYPES))
    for i in np.flatnonzero(skipped):
        r.note(int(sheet.rows[i]), "Type", "not a trade (cash or balance row): skipped",
               kind[i])
    r.restrict(~skipped)
    symbols = strip_suffix_symbols(r.text("Symbol"), instruments)
    lots = r.numbers("Volume")
    size = np.array([CONTRACT_SIZE.get(instruments[s].asset_class, np.nan)
                     if s in instruments else np.nan for s in symbols])
    r.flag(np.isnan(size) & ~pd.isna(symbols), "Symbol",
           "lots need the contract size: the symbol is not in tickers, or its asset class "
           f"has no known contract size ({', '.join(CONTRACT_SIZE)})", symbols)
    commission_raw = r.numbers("Commission", required=False, default=0.0) \
        if "Commission" in cells.columns else np.zeros(len(r.sheet))
    r.flag(commission_raw > 0, "Commission", "a positive commission is a rebate; rebates "
           "are not supported (costs are reported negative)", commission_raw)
    fee = r.numbers("Fee", required=False, default=0.0) if "Fee" in cells.columns else 0.0
    if "Swap" in cells.columns:
        swap = r.numbers("Swap", required=False, default=0.0)
        if np.any(swap != 0):
            r.note(None, "Swap", "swap is financing, not an execution cost: not stored",
                   float(np.nansum(swap)))
    naive = r.times(r.text("Time"), "Time", TIME_FORMATS)
    ts = r.local_to_utc(naive, symbols, "Time", convention=None,
                        why="MetaTrader times are the broker server's clock")
    r.names = {"symbol": "Symbol", "side": "Type", "qty": "Volume", "price": "Price",
               "commission": "Commission", "fees": "Fee", "exec_id": "Deal"}
    return r.finish(
        symbol=symbols, ts=ts, side=r.sides(r.text("Type"), "Type", TRADE_TYPES),
        qty=lots * size, price=r.numbers("Price"), commission=-commission_raw,
        fees=np.abs(fee), currency=r.currencies(np.full(len(r.sheet), None, dtype=object),
                                                symbols),
        exec_id=r.text("Deal"), open_close=r.text("Direction"),
        order_id=r.text("Order", required=False) if "Order" in cells.columns else None)
