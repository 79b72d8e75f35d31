"""Generic CSV: any one-execution-per-row CSV, its columns named with ``--map``.

``--map ts=Time,price=Px,qty=Qty,side=Side,symbol=Sym`` maps canonical fields to the file's
column names (``date`` is accepted for ``ts``). Without a mapping, columns named like the
canonical fields (case-insensitive) are used.

- required: ``ts``, ``symbol``, ``qty``, ``price``, and ``side`` unless ``qty`` is signed
  (negative = sell)
- optional: ``time`` (a separate time-of-day column joined to ``ts``), ``commission``,
  ``fees`` (absolute values: a cost either sign), ``currency`` (else the instrument's from
  tickers), ``account``, ``exec_id``, ``order_id``, ``open_close``, ``venue``
- times: ISO-8601; with an offset as given, without one in ``--tz`` (required then)
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from buddy.errors import FieldError
from buddy.trades.fills import FillsFileError
from buddy.trades.importers.sheet import Instrument, ParsedFills, Reader, Sheet, read_csv_cells

REQUIRED_FIELDS: tuple[str, ...] = ("ts", "symbol", "qty", "price")
OPTIONAL_FIELDS: tuple[str, ...] = ("side", "time", "commission", "fees", "currency",
                                    "account", "exec_id", "order_id", "open_close", "venue")
ALIASES: dict[str, str] = {"date": "ts", "datetime": "ts", "quantity": "qty"}

SIDE_WORDS: dict[str, str] = {"buy": "buy", "b": "buy", "bot": "buy", "bought": "buy",
                              "long": "buy", "sell": "sell", "s": "sell", "sld": "sell",
                              "sold": "sell", "short": "sell"}


def resolve_map(column_map: Mapping[str, str] | None, columns: list[str]) -> dict[str, str]:
    """Return canonical field -> file column, refusing unknown fields, missing columns and
    unmapped required fields together (each named, with the closest valid name)."""
    known = (*REQUIRED_FIELDS, *OPTIONAL_FIELDS)
    errors: list[FieldError] = []
    mapping: dict[str, str] = {}
    for key, column in (column_map or {}).items():
        name = ALIASES.get(key.strip().lower(), key.strip().lower())
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            errors.append(FieldError(f"--map {key}", f"not a fill field ({', '.join(known)})"
                                     f"{hint}", column))
            continue
        if column not in columns:
            errors.append(FieldError(f"--map {key}", f"column not in the file (it has: "
                                     f"{', '.join(columns)})", column))
            continue
        mapping[name] = column
    by_lower = {c.strip().lower(): c for c in columns}
    for name in known:
        if name not in mapping and name in by_lower and not column_map:
            mapping[name] = by_lower[name]
    for name in REQUIRED_FIELDS:
        if name not in mapping and not any(f.field == f"--map {name}" for f in errors):
            errors.append(FieldError(name, f"required field not mapped: add --map "
                                     f"{name}=<column> (the file has: {', '.join(columns)})",
                                     None))
    if errors:
        raise FillsFileError(errors)
    return mapping


def parse_generic(path: Path, *, user_id: str, tz: str | None,
                  column_map: Mapping[str, str] | None,
                  instruments: Mapping[str, Instrument]) -> ParsedFills:
    """Read a generic CSV of executions through its column mapping."""
    cells = read_csv_cells(path)
    mapping = resolve_map(column_map, [str(c) for c in cells.columns])
    sheet = Sheet.from_csv(cells)
    r = Reader(sheet, fmt="generic", path=path, user_id=user_id, tz=tz,
               instruments=instruments)

    def text(name: str, required: bool = False) -> np.ndarray:
        if name not in mapping:
            return np.full(len(sheet), None, dtype=object)
        return r.text(mapping[name], required=required)

    raw_symbols = pd.Series(text("symbol", True), dtype=object)
    symbols = raw_symbols.where(raw_symbols.isna(), raw_symbols.astype(str).str.upper()
                                ).to_numpy(dtype=object)
    qty = r.numbers(mapping["qty"])
    if "side" in mapping:
        side = r.sides(text("side", True), mapping["side"], SIDE_WORDS)
    else:
        side = np.full(len(qty), None, dtype=object)
        side[qty < 0], side[qty > 0] = "sell", "buy"
        r.flag(qty == 0, mapping["qty"], "must not be 0 (the sign gives the side when no "
               "side column is mapped)", qty)
    stamp = text("ts", True)
    if "time" in mapping:
        clock = text("time", True)
        stamp = np.array([f"{d} {t}" if d is not None and t is not None else None
                          for d, t in zip(stamp, clock, strict=True)], dtype=object)
    ts = r.aware_or_local(stamp, mapping["ts"], symbols, convention=None,
                          why="the time has no UTC offset and a generic CSV has no zone")
    commission = (np.abs(r.numbers(mapping["commission"], required=False, default=0.0))
                  if "commission" in mapping else 0.0)
    fees = (np.abs(r.numbers(mapping["fees"], required=False, default=0.0))
            if "fees" in mapping else 0.0)
    r.names = dict(mapping)
    return r.finish(
        account=text("account"), symbol=symbols, ts=ts, side=side, qty=np.abs(qty),
        price=r.numbers(mapping["price"]), commission=commission, fees=fees,
        currency=r.currencies(text("currency"), symbols), exec_id=text("exec_id"),
        open_close=text("open_close"), order_id=text("order_id"), venue=text("venue"))
