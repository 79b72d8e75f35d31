"""What every importer shares: a file's data rows as text cells, converters that collect every
broken rule with its row and column, time zones, and the assembly of the canonical frame.

An importer reads its format into a ``Sheet`` (text cells, each row's 1-based data row number
and, where the file has lines, its line), converts columns through a ``Reader`` (which records
each bad cell instead of stopping at the first) and hands the converted columns to
``Reader.finish``. ``finish`` raises FillsFileError naming every row, column, rule and value
when anything was wrong, so a bad file is refused whole.
"""

from __future__ import annotations

import csv
import re
import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from buddy.errors import FieldError
from buddy.trades.fills import (
    TS_DTYPE,
    FillsFileError,
    canonical,
    capped,
    content_keys,
    empty_fills,
    fill_errors,
)

#: Time zone conventions of naive times: the instrument's exchange zone from ``tickers``.
EXCHANGE_TZ = "exchange"

_OFFSET = re.compile(r"(?:Z|[+-]\d{2}:?\d{2})$")


@dataclass(frozen=True, slots=True)
class Problem:
    """A row the import noticed but did not refuse (an ignored attribute, an unknown symbol)."""

    row: int | None
    column: str | None
    rule: str
    value: Any

    def __str__(self) -> str:
        where = ", ".join(p for p in (f"row {self.row}" if self.row is not None else None,
                                      self.column) if p)
        return f"{where or '(file)'}: {self.rule} (got {self.value!r})"


@dataclass(frozen=True, slots=True)
class ParsedFills:
    """A broker file read into canonical fills, with what was noticed but not refused."""

    fills: pd.DataFrame
    problems: list[Problem] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Instrument:
    """What an importer needs to know about a symbol from ``tickers``."""

    symbol: str
    timezone: str
    asset_class: str
    currency: str | None = None
    contract_multiplier: float = 1.0


def instruments_from(tickers: pd.DataFrame | Mapping[str, Instrument] | None
                     ) -> dict[str, Instrument]:
    """Return symbol -> Instrument from a tickers frame (or pass a mapping through)."""
    if tickers is None:
        return {}
    if isinstance(tickers, Mapping):
        return dict(tickers)
    return {str(r.symbol): Instrument(symbol=str(r.symbol), timezone=str(r.timezone),
                                      asset_class=str(r.asset_class),
                                      currency=str(r.currency),
                                      contract_multiplier=float(r.contract_multiplier))
            for r in tickers.itertuples(index=False)}


def read_csv_lines(path: Path) -> list[list[str]]:
    """Return the rows of a CSV file as lists of cells (refused whole when unreadable)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            return list(csv.reader(handle))
    except UnicodeDecodeError as exc:
        raise FillsFileError([FieldError("(file)", "not a readable CSV file", str(exc))]
                             ) from exc


def read_csv_cells(path: Path) -> pd.DataFrame:
    """Return a CSV's cells as text (empty cells as ''), header from the first line.

    Read with Arrow's CSV reader (about ten times faster than pandas' here), every column
    as text so nothing is converted before the rules are checked.
    """
    import pyarrow as pa
    import pyarrow.csv as pcsv

    parse = pcsv.ParseOptions(newlines_in_values=True)
    try:
        with pcsv.open_csv(path, parse_options=parse) as head:
            names = head.schema.names
        table = pcsv.read_csv(
            path, parse_options=parse,
            convert_options=pcsv.ConvertOptions(column_types={n: pa.string() for n in names},
                                                strings_can_be_null=False,
                                                quoted_strings_can_be_null=False))
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise FillsFileError([FieldError("(file)", "not a readable CSV file",
                                         str(exc).strip())]) from exc
    cells = table.to_pandas()
    cells.columns = [str(c).strip() for c in cells.columns]
    return cells


@dataclass
class Sheet:
    """A file's data rows as text cells; ``rows`` are 1-based data rows, ``lines`` file
    lines (None where the file has no lines, as in XML)."""

    cells: pd.DataFrame
    rows: np.ndarray
    lines: np.ndarray | None = None

    @classmethod
    def from_csv(cls, cells: pd.DataFrame, *, first_line: int = 2) -> Sheet:
        """Wrap a CSV's cells whose first data row is file line ``first_line``."""
        cells = cells.reset_index(drop=True)
        n = len(cells)
        return cls(cells, np.arange(1, n + 1), np.arange(first_line, first_line + n))

    def __len__(self) -> int:
        return len(self.cells)

    def take(self, keep: np.ndarray) -> Sheet:
        """Return the rows where ``keep`` is True."""
        return Sheet(self.cells[keep].reset_index(drop=True), self.rows[keep],
                     None if self.lines is None else self.lines[keep])


class Reader:
    """Convert a Sheet's text columns, recording every bad cell as a FieldError."""

    def __init__(self, sheet: Sheet, *, fmt: str, path: Path, user_id: str,
                 tz: str | None = None, instruments: Mapping[str, Instrument] | None = None
                 ) -> None:
        self.sheet = sheet
        self.fmt = fmt
        self.path = path
        self.user_id = user_id
        self.tz = tz
        self.instruments = dict(instruments or {})
        self.errors: list[FieldError] = []
        self.problems: list[Problem] = []
        #: canonical column -> the file's column, so messages name what the user sees
        self.names: dict[str, str] = {}
        if tz is not None:
            try:
                zoneinfo.ZoneInfo(tz)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                self.errors.append(FieldError("--tz", "unknown time zone (IANA name, e.g. "
                                              "America/New_York)", tz))

    # ------------------------------------------------------------------ errors
    def label(self, i: int) -> str:
        """Return how messages name row ``i``: 'row 3 (line 4)'."""
        row = self.sheet.rows[i]
        lines = self.sheet.lines
        return f"row {row}" if lines is None else f"row {row} (line {lines[i]})"

    def flag(self, mask: np.ndarray, column: str, rule: str,
             values: Sequence[Any] | np.ndarray) -> None:
        """Record ``rule`` as broken by ``column`` on every row where ``mask`` is True."""
        for i in np.flatnonzero(mask):
            self.errors.append(FieldError(f"{self.label(int(i))}, {column}", rule, values[int(i)]))

    def restrict(self, keep: np.ndarray) -> None:
        """Keep only the rows where ``keep`` is True (arrays converted before must be cut the
        same way by the caller)."""
        self.sheet = self.sheet.take(keep)

    def fail_now(self) -> None:
        """Raise what was recorded so far, if anything (a missing column makes the rest moot)."""
        if self.errors:
            raise FillsFileError(capped(self.errors))

    # ------------------------------------------------------------------ columns
    def require(self, *columns: str) -> None:
        """Refuse the file at once when any of ``columns`` is absent, naming what is there."""
        present = list(self.sheet.cells.columns)
        for column in columns:
            if column not in present:
                self.errors.append(FieldError(column, f"required column missing (the file "
                                              f"has: {', '.join(map(str, present))})", None))
        self.fail_now()

    def text(self, column: str, *, required: bool = True) -> np.ndarray:
        """Return a column's stripped text; None where empty (an error if ``required``)."""
        if column not in self.sheet.cells.columns:
            if required:
                self.require(column)
            return np.full(len(self.sheet), None, dtype=object)
        stripped = self.sheet.cells[column].astype(str).str.strip()
        raw = stripped.to_numpy(dtype=object)
        empty = (stripped == "").to_numpy(dtype=bool)
        if required:
            self.flag(empty, column, "required, empty", raw)
        out = raw.copy()
        out[empty] = None
        return out

    def numbers(self, column: str, *, required: bool = True, default: float = np.nan,
                values: np.ndarray | None = None) -> np.ndarray:
        """Return a column as float64: thousands separators, currency signs and accounting
        parentheses are read; an unreadable cell is an error; an empty one is ``default``
        (an error when ``required``)."""
        text = self.text(column, required=required) if values is None else values
        series = pd.Series(text, dtype=object)
        out = _plain_numbers(self.sheet.cells[column]) if values is None else None
        if out is None:
            out = pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", copy=True)
        empty = series.isna().to_numpy()
        # only cells plain parsing missed go through the slower clean-up
        retry = np.flatnonzero(np.isnan(out) & ~empty)
        if len(retry):
            cells = series.iloc[retry].astype(str)
            negative = cells.str.match(r"^\(.*\)$").to_numpy()
            cleaned = cells.str.replace(r"[,$()\s]", "", regex=True)
            again = pd.to_numeric(cleaned.where(cleaned != "", None), errors="coerce"
                                  ).to_numpy(dtype="float64")
            out[retry] = np.where(negative, -again, again)
        self.flag(np.isnan(out) & ~empty, column, "not a number", text)
        out[empty] = default
        return out

    def times(self, values: np.ndarray, column: str, formats: Sequence[str]) -> np.ndarray:
        """Parse text times with the first of ``formats`` that reads each cell; return
        datetime64[us] (naive) with NaT where unreadable (an error) or empty."""
        series = pd.Series(values, dtype=object)
        out = pd.Series(pd.NaT, index=series.index, dtype="datetime64[us]")
        todo = series.notna()
        for fmt in formats:
            if not todo.any():
                break
            parsed = pd.to_datetime(series[todo], format=fmt, errors="coerce")
            if isinstance(parsed.dtype, pd.DatetimeTZDtype):
                parsed = parsed.dt.tz_localize(None)
            ok = parsed.notna()
            out.loc[ok[ok].index] = parsed[ok].astype("datetime64[us]")
            todo.loc[ok[ok].index] = False
        self.flag(todo.to_numpy(), column,
                  f"not a date/time in the format {' or '.join(formats)}", values)
        return out.to_numpy()

    def local_to_utc(self, naive: np.ndarray, symbols: np.ndarray, column: str, *,
                     convention: str | None, why: str) -> pd.api.extensions.ExtensionArray:
        """Convert exchange- or platform-local naive times to UTC (a tz-aware array: a numpy
        array of aware times would be Python objects).

        The zone is ``--tz`` when given, else the instrument's exchange zone (convention
        ``EXCHANGE_TZ``), else the convention's fixed zone; without one the row is refused
        (``why`` says where the format's times come from).
        """
        n = len(naive)
        zones = np.full(n, None, dtype=object)
        if self.tz is not None:
            zones[:] = self.tz
        elif convention == EXCHANGE_TZ:
            for i, symbol in enumerate(symbols):
                inst = self.instruments.get(symbol) if symbol is not None else None
                zones[i] = inst.timezone if inst is not None else None
        elif convention is not None:
            zones[:] = convention
        present = ~pd.isna(naive)
        if convention == EXCHANGE_TZ and self.tz is None:
            rule = (f"{why}: the symbol is not in tickers, so its exchange time zone is "
                    "unknown; add the symbol or pass --tz")
            self.flag(present & pd.isna(zones), column, rule, symbols)
        else:
            self.flag(present & pd.isna(zones), column, f"{why}: pass --tz", naive)
        out = pd.Series(pd.NaT, index=range(n), dtype=TS_DTYPE)
        if self.errors and any(e.field == "--tz" for e in self.errors):
            return out.array
        for zone in {z for z in zones if z is not None}:
            at = np.flatnonzero((zones == zone) & present)
            if not len(at):
                continue
            local = pd.DatetimeIndex(naive[at]).tz_localize(zone, ambiguous="NaT",
                                                            nonexistent="NaT")
            lost = np.asarray(local.isna())
            for i in at[lost]:
                self.errors.append(FieldError(
                    f"{self.label(int(i))}, {column}",
                    f"local time is skipped or repeated by a daylight-saving change in {zone}",
                    str(naive[i])))
            out.iloc[at] = local.tz_convert("UTC").astype(TS_DTYPE)
        return out.array

    def aware_or_local(self, values: np.ndarray, column: str, symbols: np.ndarray, *,
                       convention: str | None, why: str) -> pd.api.extensions.ExtensionArray:
        """Parse ISO-8601 times: those with an offset as given, naive ones via local_to_utc."""
        series = pd.Series(values, dtype=object)
        has_offset = series.fillna("").astype("string[pyarrow]").str.contains(
            _OFFSET.pattern).to_numpy(dtype=bool)
        out = pd.Series(pd.NaT, index=series.index, dtype=TS_DTYPE)
        if has_offset.any():
            aware = pd.to_datetime(series[has_offset], format="ISO8601", utc=True,
                                   errors="coerce")
            out[has_offset] = aware.astype(TS_DTYPE)
            self.flag(has_offset & out.isna().to_numpy(), column,
                      "not an ISO-8601 date/time", values)
        naive_text = np.array(values, dtype=object)
        naive_text[has_offset] = None
        naive = self.times(naive_text, column, ["ISO8601"])
        local = self.local_to_utc(naive, symbols, column, convention=convention, why=why)
        out[~has_offset] = pd.Series(local, dtype=TS_DTYPE)[~has_offset]
        return out.array

    # ------------------------------------------------------------------ sides, symbols
    def sides(self, values: np.ndarray, column: str, mapping: Mapping[str, str]) -> np.ndarray:
        """Map the broker's side words (case-insensitive) to 'buy'/'sell'; others are errors."""
        lower = {k.lower(): v for k, v in mapping.items()}
        # a side column holds a handful of distinct words: map those, not every cell
        codes, words = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=True)
        mapped = np.array([lower.get(str(w).strip().lower()) for w in words] + [None],
                          dtype=object)
        out = mapped[codes]  # code -1 (an empty cell) picks the trailing None
        bad = pd.isna(out) & ~pd.isna(values)
        self.flag(bad, column, f"not a side ({', '.join(sorted(mapping))})", values)
        return out

    def currencies(self, given: np.ndarray, symbols: np.ndarray) -> np.ndarray:
        """Return the file's currency per row, else the instrument's from tickers (None when
        neither is known: the row is then refused as missing its currency)."""
        out = given.copy()
        for i in np.flatnonzero(pd.isna(out)):
            inst = self.instruments.get(symbols[i]) if symbols[i] is not None else None
            out[i] = inst.currency if inst is not None else None
        return out

    def note(self, row: int | None, column: str | None, rule: str, value: Any) -> None:
        """Record something noticed but not refused."""
        self.problems.append(Problem(row, column, rule, value))

    # ------------------------------------------------------------------ assembly
    def finish(self, **columns: Any) -> ParsedFills:
        """Assemble the canonical frame from converted columns, check every rule, and raise
        FillsFileError (everything wrong, each with its row) or return ParsedFills.

        ``columns`` are canonical fill columns as arrays or scalars; ``exec_id`` may hold
        None where the broker gives none (a content key is used).
        """
        self.fail_now()
        n = len(self.sheet)
        if n == 0:
            return ParsedFills(empty_fills(), self.problems)
        frame = pd.DataFrame({
            "user_id": self.user_id, "account": None, "currency": None, "commission": 0.0,
            "fees": 0.0, "open_close": None, "order_id": None, "venue": None,
            "exec_id": None, **columns,
            "source": self.fmt, "source_file": str(self.path), "source_row": self.sheet.rows,
            "imported_at": pd.Timestamp.now(tz="UTC").floor("us"),
        }, index=range(n))
        labels = _Labels(self)
        # a missing execution id is allowed here: the content key below fills it
        self.errors.extend(fill_errors(frame.assign(exec_id=frame["exec_id"].fillna("-")),
                                       rows=labels, names=self.names))
        self.fail_now()
        missing = frame["exec_id"].isna().to_numpy()
        if missing.any():
            part = frame[missing]
            frame.loc[missing, "exec_id"] = content_keys(
                self.fmt, part["account"], part["symbol"], part["ts"], part["side"],
                part["qty"], part["price"], part["source_row"])
        frame["exec_id"] = frame["exec_id"].astype(str)
        fills = canonical(_drop_repeats(frame, labels, self))
        self.fail_now()
        return ParsedFills(fills, self.problems)


def _plain_numbers(cells: pd.Series) -> np.ndarray | None:
    """Return a text column as float64 (NaN where empty) when every cell is a plain number,
    else None (the caller's cell-by-cell path then names the bad ones)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        text = pc.utf8_trim_whitespace(pa.array(cells, type=pa.string()))
        values = pc.cast(pc.if_else(pc.equal(text, ""), None, text), pa.float64())
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None
    return values.to_numpy(zero_copy_only=False).astype("float64", copy=True)


class _Labels(Sequence[str]):
    """Row labels made on demand (most files have no error to label)."""

    def __init__(self, reader: Reader) -> None:
        self._reader = reader

    def __len__(self) -> int:
        return len(self._reader.sheet)

    def __getitem__(self, i: Any) -> Any:
        return self._reader.label(int(i))


def _drop_repeats(frame: pd.DataFrame, labels: Sequence[str], reader: Reader
                  ) -> pd.DataFrame:
    """Keep the first of rows repeating an execution id with the same content (a statement
    listing one execution twice); refuse an execution id with two different contents."""
    repeated = frame["exec_id"].duplicated(keep=False).to_numpy()
    if not repeated.any():
        return frame
    content = ["account", "symbol", "ts", "side", "qty", "price"]
    keep = np.ones(len(frame), dtype=bool)
    for _, group in frame[repeated].groupby("exec_id", sort=False):
        first = group.index[0]
        for i in group.index[1:]:
            same = all(frame.at[first, c] == frame.at[i, c] for c in content)
            if same:
                keep[i] = False
                reader.note(int(frame.at[i, "source_row"]), "exec_id",
                            f"repeats {labels[first]} exactly; counted once",
                            frame.at[i, "exec_id"])
            else:
                reader.errors.append(FieldError(
                    f"{labels[i]}, exec_id",
                    f"execution id also on {labels[first]} with different content",
                    frame.at[i, "exec_id"]))
    return frame[keep]


def strip_suffix_symbols(symbols: np.ndarray, known: Mapping[str, Instrument]) -> np.ndarray:
    """Return symbols upper-cased; a broker suffix after '.' (EURUSD.m) is dropped when the
    bare symbol is in tickers and the full one is not."""
    out = np.empty(len(symbols), dtype=object)
    for i, s in enumerate(symbols):
        if s is None:
            out[i] = None
            continue
        sym = str(s).strip().upper()
        if sym not in known and "." in sym and sym.split(".")[0] in known:
            sym = sym.split(".")[0]
        out[i] = sym
    return out
