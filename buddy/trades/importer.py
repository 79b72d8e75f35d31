"""Import a broker file into ``broker_fills``: parse, then write the new fills in ONE
transaction, idempotent by (user_id, exec_id).

- A bad file raises FillsFileError from the parser before any connection opens: nothing is
  written.
- Fills already stored (same user and execution id, or the same content key: the same file
  imported again) are counted as duplicates and left alone.
- Fills whose symbol is not in ``tickers`` are stored like the others and listed, with their
  rows, in ``ImportSummary.unknown_symbols``: the broker's record is kept whole, and nothing
  is dropped silently. Which stored fills are unknown is a join with ``tickers``
  (``buddy.store.fills.unknown_symbol_fills``), so adding the ticker later resolves them.
- ``on_written(con, user_id, symbols)`` runs inside the same transaction after the insert
  (the trades grouping rebuilds the touched symbols there), so fills and what is derived from
  them commit together or not at all.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from buddy.store import fills as fills_store
from buddy.trades.importers import FORMATS, Problem, parse_file

if TYPE_CHECKING:
    from duckdb import DuckDBPyConnection

    from buddy.store import Store

OnWritten = Callable[["DuckDBPyConnection", str, list[str]], Any]


@dataclass(frozen=True, slots=True)
class SymbolCounts:
    """Fills of one symbol in one import."""

    parsed: int
    new: int
    duplicates: int
    known: bool


@dataclass(frozen=True, slots=True)
class ImportSummary:
    """What an import read and wrote (or, in a dry run, would write)."""

    path: str
    fmt: str
    user_id: str
    parsed: int
    new: int
    duplicates: int
    unknown_symbols: dict[str, tuple[int, ...]]
    per_symbol: dict[str, SymbolCounts]
    problems: list[Problem] = field(default_factory=list)
    dry_run: bool = False

    def __str__(self) -> str:
        verb = "would write" if self.dry_run else "wrote"
        lines = [f"{self.path} ({self.fmt}, user {self.user_id}): {self.parsed} fills read, "
                 f"{verb} {self.new} new, {self.duplicates} already stored"]
        for symbol, c in self.per_symbol.items():
            flag = "" if c.known else "  (not in tickers)"
            lines.append(f"  {symbol:<24} {c.parsed:>7} read {c.new:>7} new "
                         f"{c.duplicates:>7} already stored{flag}")
        for symbol, rows in self.unknown_symbols.items():
            shown = ", ".join(map(str, rows[:20])) + (" ..." if len(rows) > 20 else "")
            lines.append(f"  unknown symbol {symbol}: not in tickers, stored and flagged "
                         f"(rows {shown})")
        lines.extend(f"  note: {p}" for p in self.problems[:50])
        if len(self.problems) > 50:
            lines.append(f"  note: {len(self.problems) - 50} more not listed")
        return "\n".join(lines)


def import_fills(store: Store, path: str | os.PathLike[str], *, user_id: str, fmt: str,
                 tz: str | None = None, column_map: Mapping[str, str] | None = None,
                 dry_run: bool = False, on_written: OnWritten | None = None
                 ) -> ImportSummary:
    """Parse a broker file and write its new fills in one transaction; return the summary.

    Raises FillsFileError (nothing written) when the file is bad. ``dry_run`` reads and
    counts without writing. ``on_written(con, user_id, symbols)`` runs in the same
    transaction after new fills were written.
    """
    tickers = store.tickers()
    parsed = parse_file(path, user_id=user_id, fmt=fmt, tz=tz, column_map=column_map,
                        instruments=tickers)
    fills = parsed.fills
    known = set(tickers["symbol"])
    if dry_run:
        with store.connect(read_only=True) as con:
            stored = fills_store.existing_exec_ids(con, fills)
        fresh = fills[~fills["exec_id"].isin(stored)]
    else:
        with store.transaction() as con:
            stored = fills_store.existing_exec_ids(con, fills)
            fresh = fills[~fills["exec_id"].isin(stored)]
            written = fills_store.insert_fills(con, fresh)
            if written and on_written is not None:
                on_written(con, user_id, sorted(set(fresh["symbol"])))
        if len(fresh):
            store.touch_context_stamp()
    per_symbol: dict[str, SymbolCounts] = {}
    new_counts = fresh["symbol"].value_counts()
    for symbol, group in fills.groupby("symbol", sort=True):
        new = int(new_counts.get(symbol, 0))
        per_symbol[str(symbol)] = SymbolCounts(parsed=len(group), new=new,
                                               duplicates=len(group) - new,
                                               known=symbol in known)
    unknown = {str(s): tuple(g["source_row"].tolist())
               for s, g in fills[~fills["symbol"].isin(known)].groupby("symbol", sort=True)}
    name = FORMATS[fills["source"].iloc[0]].name if len(fills) else fmt
    return ImportSummary(path=str(Path(path)), fmt=name, user_id=user_id, parsed=len(fills),
                         new=len(fresh), duplicates=len(fills) - len(fresh),
                         unknown_symbols=unknown, per_symbol=per_symbol,
                         problems=parsed.problems, dry_run=dry_run)
