"""The canonical fills frame: one row per broker execution, whatever the broker's format.

Columns (``FILL_COLUMNS``):

- ``user_id`` str; ``account`` str or None (the broker's account id)
- ``symbol`` str: our tickers symbol (fills of symbols missing from ``tickers`` are kept and
  reported by the import, never dropped)
- ``ts`` datetime64[us, UTC]: execution time
- ``side`` 'buy' | 'sell'; ``qty`` float > 0 in the instrument's trading units (shares,
  contracts, FX units: MetaTrader lots are converted); ``price`` float > 0 per unit
- ``commission`` float >= 0 and ``fees`` float >= 0, in ``currency``, positive = cost
  (IBKR reports commissions negative; the importers normalise the sign)
- ``exec_id`` str: the broker's execution id, else ``content_keys(...)``
- ``source`` (format name), ``source_file``, ``source_row`` (1-based data row in the file)
- ``open_close`` str or None: the broker's open/close indicator exactly as given ('O', 'C',
  'C;O', 'in', 'out', 'inout', 'TO OPEN', ...): 'C;O' and 'inout' mark one fill that closes
  and reverses a position, which the trades grouping splits at zero
- ``order_id``, ``venue`` str or None; ``imported_at`` datetime64[us, UTC]
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from buddy.errors import FieldError, FieldErrors

FILL_COLUMNS: tuple[str, ...] = (
    "user_id", "account", "symbol", "ts", "side", "qty", "price", "commission", "fees",
    "currency", "exec_id", "source", "source_file", "source_row", "open_close", "order_id",
    "venue", "imported_at",
)

#: Columns that may be None; every other column must hold a value on every row.
OPTIONAL_COLUMNS: frozenset[str] = frozenset({"account", "open_close", "order_id", "venue"})

SIDES: tuple[str, ...] = ("buy", "sell")

#: Length of a content key (hex characters of its SHA-256).
CONTENT_KEY_CHARS = 20

#: A bad file lists at most this many problems (then how many more there are).
MAX_LISTED_ERRORS = 50

TS_DTYPE = "datetime64[us, UTC]"


class FillsFileError(FieldErrors):
    """A broker file broke a rule; it was refused whole and nothing was written."""

    what = "broker file"


def capped(errors: Sequence[FieldError], limit: int = MAX_LISTED_ERRORS) -> list[FieldError]:
    """Return at most ``limit`` errors, plus one line saying how many were left out."""
    if len(errors) <= limit:
        return list(errors)
    rest = len(errors) - limit
    return [*errors[:limit], FieldError("(file)", f"{rest} more problems not listed", rest)]


def empty_fills() -> pd.DataFrame:
    """Return a canonical fills frame with no rows and the canonical dtypes."""
    return pd.DataFrame({
        "user_id": pd.Series([], dtype=object), "account": pd.Series([], dtype=object),
        "symbol": pd.Series([], dtype=object), "ts": pd.Series([], dtype=TS_DTYPE),
        "side": pd.Series([], dtype=object), "qty": pd.Series([], dtype="float64"),
        "price": pd.Series([], dtype="float64"), "commission": pd.Series([], dtype="float64"),
        "fees": pd.Series([], dtype="float64"), "currency": pd.Series([], dtype=object),
        "exec_id": pd.Series([], dtype=object), "source": pd.Series([], dtype=object),
        "source_file": pd.Series([], dtype=object),
        "source_row": pd.Series([], dtype="int64"),
        "open_close": pd.Series([], dtype=object), "order_id": pd.Series([], dtype=object),
        "venue": pd.Series([], dtype=object), "imported_at": pd.Series([], dtype=TS_DTYPE),
    })


def content_keys(source: str, account: Iterable[object], symbol: Iterable[object],
                 ts: pd.Series, side: Iterable[object], qty: Iterable[float],
                 price: Iterable[float], source_row: Iterable[int]) -> list[str]:
    """Return each row's content key: sha256 of (source, account, symbol, ts, side, qty,
    price, source_row), first 20 hex characters.

    The source row is part of the key because two identical fills in one file are legal
    (two executions at the same second and price); re-importing the same file gives the same
    rows, hence the same keys. ``ts`` is keyed in UTC ISO form (microseconds), quantities and
    prices by ``repr`` of the float, so the key does not depend on the file's formatting.
    """
    stamps = pd.to_datetime(ts, utc=True).dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    keys = []
    for acct, sym, stamp, sd, q, p, row in zip(account, symbol, stamps, side, qty, price,
                                               source_row, strict=True):
        text = "\x1f".join((source, "" if acct is None else str(acct), str(sym), stamp,
                            str(sd), repr(float(q)), repr(float(p)), str(int(row))))
        keys.append(hashlib.sha256(text.encode()).hexdigest()[:CONTENT_KEY_CHARS])
    return keys


def fill_errors(fills: pd.DataFrame, *, rows: Sequence[str] | None = None,
                names: Mapping[str, str] | None = None) -> list[FieldError]:
    """Return every broken rule of a canonical fills frame (empty list when valid).

    ``rows`` names each row in messages (default "row <source_row>"); ``names`` maps a
    canonical column to the file's column it came from, named in messages instead.
    """
    names = names or {}
    missing = [c for c in FILL_COLUMNS if c not in fills.columns]
    if missing:
        return [FieldError(c, "canonical fills column missing", None) for c in missing]
    source_rows = fills["source_row"].to_numpy()
    labels = rows if rows is not None else [f"row {r}" for r in source_rows]
    errors: list[FieldError] = []

    def flag(mask: np.ndarray, column: str, rule: str) -> None:
        if not mask.any():
            return
        values = fills[column].to_numpy()
        for i in np.flatnonzero(mask):
            errors.append(FieldError(f"{labels[int(i)]}, {names.get(column, column)}", rule,
                                     values[i]))

    for column in FILL_COLUMNS:
        if column in OPTIONAL_COLUMNS:
            continue
        flag(fills[column].isna().to_numpy(), column, "required, missing")
    side = fills["side"].to_numpy()
    flag(~np.isin(side, SIDES) & fills["side"].notna().to_numpy(), "side",
         "must be 'buy' or 'sell'")
    for column, rule in (("qty", "must be > 0"), ("price", "must be > 0")):
        values = pd.to_numeric(fills[column], errors="coerce").to_numpy(dtype="float64")
        flag(~(values > 0) & ~np.isnan(values), column, rule)
        flag(~np.isfinite(values) & ~np.isnan(values), column, "must be finite")
    for column in ("commission", "fees"):
        values = pd.to_numeric(fills[column], errors="coerce").to_numpy(dtype="float64")
        flag(values < 0, column, "must be >= 0 (a cost in currency)")
    symbol = fills["symbol"].to_numpy(dtype=object)
    flag(symbol == "", "symbol", "required, empty")
    return errors


def canonical(fills: pd.DataFrame) -> pd.DataFrame:
    """Return ``fills`` with exactly FILL_COLUMNS, in order, with the canonical dtypes."""
    out = fills.loc[:, list(FILL_COLUMNS)].reset_index(drop=True)
    for column in ("ts", "imported_at"):
        if str(out[column].dtype) != TS_DTYPE:  # converting an aware column costs a pass
            out[column] = pd.to_datetime(out[column], utc=True).astype(TS_DTYPE)
    for column in ("qty", "price", "commission", "fees"):
        out[column] = out[column].astype("float64")
    out["source_row"] = out["source_row"].astype("int64")
    for column in ("user_id", "account", "symbol", "side", "currency", "exec_id", "source",
                   "source_file", "open_close", "order_id", "venue"):
        values = out[column].astype(object)
        missing = values.isna()
        out[column] = values.where(~missing, None) if missing.any() else values
    return out
