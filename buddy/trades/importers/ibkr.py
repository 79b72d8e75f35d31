"""Interactive Brokers Flex query trades, CSV and XML.

Both read into the same text cells and go through one conversion:

- times are exchange-local without an offset (``DateTime`` 'YYYYMMDD;HHMMSS', or
  ``TradeDate`` + ``TradeTime``): converted with the instrument's exchange zone from tickers,
  or ``--tz``; a symbol not in tickers without ``--tz`` is refused (its zone is unknown)
- ``Quantity`` is signed (sells negative) and must agree with ``Buy/Sell``
- ``IBCommission`` and ``Taxes`` are reported negative (a cost): stored positive in
  ``commission`` and ``fees``; a positive commission (a rebate) or a commission in another
  currency than the trade is refused rather than stored wrong
- ``OpenCloseIndicator`` is kept as given ('O', 'C', 'C;O': one fill closing and reversing)
- cancels (``TransactionType`` TradeCancel, ``Buy/Sell`` 'BUY (Ca.)'/'SELL (Ca.)') are netted
  against the trade they cancel (``OrigTradeID``, else the same account, symbol, date, size
  and price) and both rows are left out; a cancel whose trade is not in the file is refused
- rows other than executions (``LevelOfDetail`` ORDER, SYMBOL_SUMMARY, CLOSED_LOT) are skipped
- cash (FX) symbols 'EUR.USD' become 'EURUSD'

The XML is read with ``ibflex`` element by element, so a bad attribute names its Trade. ibflex
1.1 skips attributes it does not know (IB adds some every year) with a warning: they are
listed once each in ``problems``, never fatal.
"""

from __future__ import annotations

import warnings
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from datetime import date, datetime, time
from decimal import Decimal
from enum import Enum
from pathlib import Path

import numpy as np
import pandas as pd

from buddy.errors import FieldError
from buddy.trades.fills import FillsFileError
from buddy.trades.importers.sheet import (
    EXCHANGE_TZ,
    Instrument,
    ParsedFills,
    Reader,
    Sheet,
    read_csv_lines,
)

#: Field -> accepted CSV headers (Flex CSV uses the display names), first present wins.
CSV_HEADERS: dict[str, tuple[str, ...]] = {
    "account": ("ClientAccountID", "AccountID"),
    "symbol": ("Symbol",),
    "asset": ("AssetClass", "AssetCategory"),
    "buysell": ("Buy/Sell", "BuySell"),
    "quantity": ("Quantity",),
    "price": ("TradePrice", "Price"),
    "commission": ("IBCommission", "Commission"),
    "commission_ccy": ("IBCommissionCurrency",),
    "taxes": ("Taxes",),
    "openclose": ("OpenCloseIndicator", "Open/CloseIndicator", "Open/Close"),
    "datetime": ("DateTime", "Date/Time"),
    "date": ("TradeDate",),
    "time": ("TradeTime",),
    "execid": ("IBExecID",),
    "orderid": ("IBOrderID", "OrderID"),
    "exchange": ("Exchange",),
    "currency": ("CurrencyPrimary", "Currency"),
    "txntype": ("TransactionType",),
    "tradeid": ("TradeID",),
    "origtradeid": ("OrigTradeID",),
    "detail": ("LevelOfDetail",),
}

#: Field -> ibflex Trade attribute (also the XML attribute name).
XML_ATTRIBUTES: dict[str, str] = {
    "account": "accountId", "symbol": "symbol", "asset": "assetCategory",
    "buysell": "buySell", "quantity": "quantity", "price": "tradePrice",
    "commission": "ibCommission", "commission_ccy": "ibCommissionCurrency", "taxes": "taxes",
    "openclose": "openCloseIndicator", "datetime": "dateTime", "date": "tradeDate",
    "time": "tradeTime", "execid": "ibExecID", "orderid": "ibOrderID", "exchange": "exchange",
    "currency": "currency", "txntype": "transactionType", "tradeid": "tradeID",
    "origtradeid": "origTradeID", "detail": "levelOfDetail",
}

DATETIME_FORMATS = ("%Y%m%d;%H%M%S", "%Y%m%d,%H%M%S", "%Y%m%d %H%M%S", "%Y-%m-%d;%H:%M:%S",
                    "%Y-%m-%d, %H:%M:%S", "%Y-%m-%d,%H:%M:%S", "%Y-%m-%d %H:%M:%S",
                    "%m/%d/%Y;%H:%M:%S", "%m/%d/%Y %H:%M:%S")
TIME_WHY = "IBKR Flex times are exchange-local without an offset"
SIDE_WORDS = {"BUY": "buy", "SELL": "sell", "BUY (Ca.)": "buy", "SELL (Ca.)": "sell"}
SKIPPED_DETAIL = ("ORDER", "SYMBOL_SUMMARY", "CLOSED_LOT", "ASSET_SUMMARY")
_FLEX_RECORDS = ("BOF", "BOA", "BOS", "HEADER", "DATA", "EOS", "EOA", "EOF")


# ---------------------------------------------------------------------------- CSV
def _read_flex_csv(path: Path) -> Sheet:
    """Return the trades rows of a Flex CSV: plain (one header, repeated per account) or
    with HEADER/DATA record types (the trades section, code TRNT)."""
    lines = read_csv_lines(path)
    numbered = [(i + 1, row) for i, row in enumerate(lines) if any(c.strip() for c in row)]
    if not numbered:
        raise FillsFileError([FieldError("(file)", "empty file", str(path))])
    if numbered[0][1][0] in _FLEX_RECORDS:
        header = next((row[2:] for _, row in numbered
                       if row[0] == "HEADER" and row[1:2] == ["TRNT"]), None)
        if header is None:
            raise FillsFileError([FieldError("(file)", "no trades section (HEADER,TRNT) in "
                                             "this Flex CSV", str(path))])
        data = [(n, row[2:]) for n, row in numbered if row[0] == "DATA" and row[1] == "TRNT"]
    else:
        header = numbered[0][1]
        data = [(n, row) for n, row in numbered[1:] if row != header]
    width = len(header)
    bad = [(n, len(row)) for n, row in data if len(row) != width]
    if bad:
        raise FillsFileError([FieldError(f"line {n}", f"has {k} cells, the header {width}",
                                         k) for n, k in bad[:50]])
    cells = pd.DataFrame([row for _, row in data], columns=[h.strip() for h in header],
                         dtype=object)
    rows = np.arange(1, len(data) + 1)
    return Sheet(cells, rows, np.array([n for n, _ in data], dtype=int))


def parse_ibkr_csv(path: Path, *, user_id: str, tz: str | None,
                   instruments: Mapping[str, Instrument]) -> ParsedFills:
    """Read an IBKR Flex query trades CSV."""
    sheet = _read_flex_csv(path)
    lower = {str(c).lower(): str(c) for c in sheet.cells.columns}
    columns = {key: next((lower[h.lower()] for h in names if h.lower() in lower), names[0])
               for key, names in CSV_HEADERS.items()}
    reader = Reader(sheet, fmt="ibkr-csv", path=path, user_id=user_id, tz=tz,
                    instruments=instruments)
    return _convert(reader, columns)


# ---------------------------------------------------------------------------- XML
def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date | time):
        return value.strftime("%Y%m%d" if isinstance(value, date) else "%H%M%S")
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def parse_ibkr_xml(path: Path, *, user_id: str, tz: str | None,
                   instruments: Mapping[str, Instrument]) -> ParsedFills:
    """Read an IBKR Flex query XML (FlexQueryResponse/FlexStatements/FlexStatement/Trades)."""
    from ibflex import parser as flex

    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise FillsFileError([FieldError("(file)", "not well-formed XML", str(exc))]) from exc
    if root.tag != "FlexQueryResponse":
        raise FillsFileError([FieldError("(file)", "not a Flex query (root element must be "
                                         "FlexQueryResponse)", root.tag)])
    elements = root.findall("./FlexStatements/FlexStatement/Trades/Trade")
    errors: list[FieldError] = []
    ignored: dict[str, int] = {}
    records: list[dict[str, str]] = []
    for number, element in enumerate(elements, start=1):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                trade = flex.parse_data_element(element)
            except flex.FlexParserError as exc:
                errors.append(FieldError(f"Trade {number}", "ibflex could not read it",
                                         str(exc)))
                continue
        for warning in caught:
            text = str(warning.message)
            if "has no attribute" in text:
                name = text.split("'")[1]
                ignored.setdefault(name, number)
        records.append({attr: _cell(getattr(trade, attr, None))
                        for attr in XML_ATTRIBUTES.values()})
    if errors:
        raise FillsFileError(errors[:50])
    cells = pd.DataFrame(records, columns=list(XML_ATTRIBUTES.values()), dtype=object)
    sheet = Sheet(cells, np.arange(1, len(records) + 1), None)
    reader = Reader(sheet, fmt="ibkr-xml", path=path, user_id=user_id, tz=tz,
                    instruments=instruments)
    for name, first in ignored.items():
        reader.note(first, name, "attribute unknown to ibflex 1.1, ignored", None)
    return _convert(reader, XML_ATTRIBUTES)


# ---------------------------------------------------------------------------- shared
def _convert(r: Reader, col: Mapping[str, str]) -> ParsedFills:
    present = set(r.sheet.cells.columns)
    has = {key: name in present and (r.sheet.cells[name].astype(str).str.strip() != "").any()
           for key, name in col.items()}
    when = ["datetime"] if has["datetime"] else ["date", "time"]
    r.require(*(col[k] for k in ("symbol", "buysell", "quantity", "price", "currency",
                                 *when)))
    if has["detail"]:
        detail = r.text(col["detail"], required=False)
        r.restrict(~np.isin(detail.astype(str), SKIPPED_DETAIL))

    def text(key: str, required: bool = False) -> np.ndarray:
        return r.text(col[key], required=required)

    raw_side = text("buysell", True)
    side = r.sides(raw_side, col["buysell"], SIDE_WORDS)
    quantity = r.numbers(col["quantity"])
    price = r.numbers(col["price"])
    txn = text("txntype")
    cancel = (np.isin(txn.astype(str), ("TradeCancel", "FracShareCancel"))
              | np.char.endswith(raw_side.astype(str), "(Ca.)"))
    # a sell is a negative quantity; a cancel reverses its trade, so its sign is reversed
    sign = np.where(side == "sell", -1.0, 1.0) * np.where(cancel, -1.0, 1.0)
    r.flag(~np.isnan(quantity) & (quantity != 0) & (np.sign(quantity) != sign),
           col["quantity"], f"sign disagrees with {col['buysell']} (sells are negative)",
           quantity)
    commission_raw = r.numbers(col["commission"], required=False, default=0.0)
    r.flag((commission_raw > 0) & ~cancel, col["commission"],
           "a positive IB commission is a rebate; rebates are not supported (costs are "
           "reported negative)", commission_raw)
    taxes = r.numbers(col["taxes"], required=False, default=0.0)
    currency = text("currency", True)
    commission_ccy = text("commission_ccy")
    r.flag(~pd.isna(commission_ccy) & (commission_ccy != currency) & (commission_raw != 0)
           & ~cancel,
           col["commission_ccy"], "commission in another currency than the trade; not "
           "converted, so refused", commission_ccy)

    asset = text("asset")
    symbols = np.array([
        None if s is None else (s.replace(".", "") if a == "CASH" else " ".join(s.split()))
        .upper() for s, a in zip(text("symbol", True), asset, strict=True)], dtype=object)
    if has["datetime"]:
        stamp = text("datetime", True)
    else:
        stamp = np.array([None if d is None or t is None else f"{d};{t.replace(':', '')}"
                          for d, t in zip(text("date", True), text("time", True),
                                          strict=True)], dtype=object)
    naive = r.times(stamp, col["datetime"] if has["datetime"] else col["time"],
                    DATETIME_FORMATS)
    date_part = pd.DatetimeIndex(naive).normalize().to_numpy()
    keep = _net_cancels(r, cancel, text("tradeid"), text("origtradeid"), text("account"),
                        symbols, np.abs(quantity), price, date_part)
    r.fail_now()
    arrays = {
        "account": text("account"), "symbol": symbols, "naive": naive, "side": side,
        "qty": np.abs(quantity), "price": price, "commission": -commission_raw,
        "fees": np.abs(taxes), "currency": currency, "exec_id": text("execid"),
        "open_close": text("openclose"), "order_id": text("orderid"),
        "venue": text("exchange"),
    }
    r.restrict(keep)
    cut = {k: v[keep] for k, v in arrays.items()}
    ts = r.local_to_utc(cut.pop("naive"), cut["symbol"], col["datetime"] if has["datetime"]
                        else col["time"], convention=EXCHANGE_TZ, why=TIME_WHY)
    r.names = {"symbol": col["symbol"], "side": col["buysell"], "qty": col["quantity"],
               "price": col["price"], "commission": col["commission"], "fees": col["taxes"],
               "currency": col["currency"]}
    return r.finish(ts=ts, **cut)


def _net_cancels(r: Reader, cancel: np.ndarray, trade_id: np.ndarray, orig_id: np.ndarray,
                 account: np.ndarray, symbol: np.ndarray, size: np.ndarray,
                 price: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Return which rows to keep once each cancel and the trade it cancels are left out."""
    keep = np.ones(len(cancel), dtype=bool)
    for i in np.flatnonzero(cancel):
        candidates = [j for j in range(len(cancel)) if keep[j] and not cancel[j] and j != i]
        match = None
        if orig_id[i] is not None:
            match = next((j for j in candidates if trade_id[j] == orig_id[i]), None)
        if match is None:
            match = next((j for j in candidates
                          if (account[j], symbol[j], size[j], price[j], day[j])
                          == (account[i], symbol[i], size[i], price[i], day[i])), None)
        if match is None:
            r.errors.append(FieldError(
                f"{r.label(int(i))}, TransactionType",
                "cancels a trade that is not in this file (by OrigTradeID, else account, "
                "symbol, date, size and price): import the statement holding both, or remove "
                "the cancel and its trade", orig_id[i] or trade_id[i]))
            continue
        keep[i] = keep[match] = False
        r.note(int(r.sheet.rows[i]), "TransactionType",
               f"cancel netted with {r.label(match)}; both left out", trade_id[match])
    return keep
