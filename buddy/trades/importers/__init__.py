"""Broker files to canonical fills: one parser per export format, all pure (no database).

``parse_file(path, user_id=..., fmt=...)`` returns ParsedFills (the canonical frame of
``buddy.trades.fills`` and the problems noticed but not refused) or raises FillsFileError
naming every row, column, rule and value when the file is bad: a bad file is refused whole.

Times: each format's naive times follow its documented convention (``Format.times``);
``tz`` (``--tz``) overrides it. ``instruments`` (the tickers table, or symbol -> Instrument)
supplies exchange time zones (IBKR), currencies where the file has none, and asset classes
(MetaTrader lots to units); ``buddy.trades.importer.import_fills`` passes the store's.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from buddy.errors import FieldError
from buddy.trades.fills import FillsFileError
from buddy.trades.importers.generic import parse_generic
from buddy.trades.importers.ibkr import parse_ibkr_csv, parse_ibkr_xml
from buddy.trades.importers.mt5 import parse_mt5
from buddy.trades.importers.sheet import Instrument, ParsedFills, Problem, instruments_from
from buddy.trades.importers.thinkorswim import parse_thinkorswim
from buddy.trades.importers.tradovate import parse_tradovate

__all__ = ["FORMATS", "Format", "Instrument", "ParsedFills", "Problem", "parse_file"]

Parser = Callable[..., ParsedFills]


@dataclass(frozen=True, slots=True)
class Format:
    """One export format: its name, what it is, how its naive times are read, its parser."""

    name: str
    description: str
    times: str
    parse: Parser


FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("ibkr-csv", "Interactive Brokers Flex query, trades section, CSV",
           "exchange-local (the instrument's zone in tickers)", parse_ibkr_csv),
    Format("ibkr-xml", "Interactive Brokers Flex query XML (read with ibflex)",
           "exchange-local (the instrument's zone in tickers)", parse_ibkr_xml),
    Format("thinkorswim", "thinkorswim / Schwab account statement CSV, Account Trade "
           "History section", "platform time, US Eastern by default", parse_thinkorswim),
    Format("tradovate", "Tradovate Fills export CSV",
           "offset in the file, else --tz required", parse_tradovate),
    Format("mt5", "MetaTrader 5 Deals report (HTML or CSV export)",
           "broker server time: --tz required", parse_mt5),
    Format("generic", "any CSV of executions, columns named with --map",
           "offset in the file, else --tz required", parse_generic),
)}

#: Other names accepted for a format.
FORMAT_ALIASES: dict[str, str] = {"ibkr": "ibkr-auto", "tos": "thinkorswim",
                                  "schwab": "thinkorswim", "metatrader5": "mt5",
                                  "csv": "generic"}


def _resolve_format(fmt: str, path: Path) -> Format:
    name = FORMAT_ALIASES.get(fmt.strip().lower(), fmt.strip().lower())
    if name == "ibkr-auto":
        with open(path, "rb") as handle:
            head = handle.read(64).lstrip(b"\xef\xbb\xbf \r\n\t")
        name = "ibkr-xml" if head.startswith(b"<") else "ibkr-csv"
    if name not in FORMATS:
        raise FillsFileError([FieldError("--format", f"unknown format (one of "
                                         f"{', '.join(FORMATS)})", fmt)])
    return FORMATS[name]


def parse_file(path: str | os.PathLike[str], *, user_id: str, fmt: str, tz: str | None = None,
               column_map: Mapping[str, str] | None = None,
               instruments: pd.DataFrame | Mapping[str, Instrument] | None = None
               ) -> ParsedFills:
    """Read a broker file into canonical fills; refuse a bad file whole (FillsFileError).

    ``tz`` overrides the format's convention for times without an offset; ``column_map``
    (canonical field -> column) is for the generic format; ``instruments`` is the tickers
    table (or symbol -> Instrument) giving exchange zones, currencies and asset classes.
    """
    path = Path(path)
    if not user_id or not str(user_id).strip():
        raise FillsFileError([FieldError("--user", "required, empty", user_id)])
    if not path.is_file():
        raise FillsFileError([FieldError("FILE", "no such file", str(path))])
    form = _resolve_format(fmt, path)
    if column_map and form.name != "generic":
        raise FillsFileError([FieldError("--map", f"only the generic format takes a column "
                                         f"map ({form.name} has fixed columns)",
                                         dict(column_map))])
    known = instruments_from(instruments)
    kwargs: dict[str, object] = {"user_id": user_id, "tz": tz, "instruments": known}
    if form.name == "generic":
        kwargs["column_map"] = column_map
    return form.parse(path, **kwargs)
