"""Events in the store: import a CSV of earnings and macro dates, read them point-in-time.

Events are market data, shared by every user. An import validates the whole file first
(``EventImportError`` names each row, column, rule and value, and suggests the closest column
name for a typo); then it writes every row in ONE transaction and touches the store's
context stamp, so cached ContextPacks see the new events. A file with any error writes
nothing.

CSV columns
    required  ``kind`` (earnings, macro, holiday, early_close, other), ``ts`` (ISO timestamp
              with a zone, e.g. 2012-07-24T20:30Z), ``title``;
    optional  ``symbol`` (blank: market-wide; otherwise a symbol of the tickers table),
              ``announced_at`` (when the date became known; ISO with a zone, not after ts),
              ``source``, ``event_id`` (default: a hash of symbol, kind, ts and title, so
              re-importing a file replaces its rows instead of duplicating them).

A row without ``announced_at`` takes the ``announced_at`` given to the import, else the time of
its first import (a re-import keeps the earlier time). So a calendar of past earnings imported
today stays invisible to replays of the past unless the file or the import says when each
date was known; the summary counts such rows (``hidden_from_replays``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd

from buddy.config import did_you_mean
from buddy.errors import FieldError, FieldErrors
from buddy.events.model import EVENT_KINDS
from buddy.store import Store
from buddy.store.events import events_between, write_events

REQUIRED_COLUMNS: tuple[str, ...] = ("kind", "ts", "title")
OPTIONAL_COLUMNS: tuple[str, ...] = ("symbol", "announced_at", "source", "event_id")
TABLE_COLUMNS: tuple[str, ...] = ("event_id", "symbol", "kind", "ts", "title", "source",
                                  "announced_at", "imported_at")


class EventImportError(FieldErrors):
    """An events file broke a rule; nothing was written."""

    what = "events file"


@dataclass(frozen=True, slots=True)
class EventImportSummary:
    """What an import wrote."""

    path: str
    rows: int
    replaced: int
    by_kind: dict[str, int]
    hidden_from_replays: int  # events already past when announced: never seen as upcoming

    def __str__(self) -> str:
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(self.by_kind.items()))
        text = (f"imported {self.rows} events from {self.path} ({kinds}); "
                f"{self.replaced} replaced rows with the same event_id")
        if self.hidden_from_replays:
            text += (f"; {self.hidden_from_replays} were already past when announced, so no "
                     "replay sees them coming (give announced_at to use them in replays)")
        return text


def import_events(store: Store, path: str | Path, *, announced_at: datetime | str | None = None,
                  now: datetime | None = None) -> EventImportSummary:
    """Validate the events CSV at ``path`` whole and write it in one transaction.

    ``announced_at`` fills rows that give none (default: the import time, ``now``, which is
    the wall clock unless given).
    """
    path = Path(path)
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError
            ) as exc:
        raise EventImportError([FieldError("file", "must be a readable CSV with a header",
                                           f"{path}: {exc}")]) from None
    imported_at = pd.Timestamp(now) if now is not None else pd.Timestamp.now(tz="UTC")
    known = set(store.tickers()["symbol"])
    frame = validate_events(raw, known_symbols=known, source=f"import:{path.name}",
                            default_announced_at=announced_at, imported_at=imported_at)
    replaced, hidden = write_events(store, frame)
    store.touch_context_stamp()
    return EventImportSummary(path=str(path), rows=len(frame), replaced=int(replaced),
                              by_kind=frame["kind"].value_counts().sort_index().to_dict(),
                              hidden_from_replays=int(hidden))


def validate_events(raw: pd.DataFrame, *, known_symbols: set[str], source: str,
                    default_announced_at: datetime | str | None,
                    imported_at: pd.Timestamp) -> pd.DataFrame:
    """Return the rows of ``raw`` (strings) as events-table rows, or raise EventImportError
    naming every problem (row numbers count the header as row 1)."""
    errors: list[FieldError] = []
    columns = [str(c).strip() for c in raw.columns]
    allowed = list(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)
    for column in columns:
        if column not in allowed:
            errors.append(FieldError(f"column {column}", "is not an events column ("
                                     f"{did_you_mean(column, allowed)})", column))
    errors += [FieldError(f"column {c}", "is required", None) for c in REQUIRED_COLUMNS
               if c not in columns]
    if not len(raw) and not errors:
        errors.append(FieldError("file", "has no rows", 0))
    default_announced = None
    if default_announced_at is not None:
        default_announced = _timestamp(str(default_announced_at))
        if default_announced is None:
            errors.append(FieldError("announced_at", "must be an ISO timestamp with a zone",
                                     default_announced_at))
    if errors:
        raise EventImportError(errors)
    raw = raw.rename(columns=dict(zip(raw.columns, columns, strict=True)))
    rows = []
    for n, record in enumerate(raw.to_dict("records"), start=2):
        row, row_errors = _row(n, record, known_symbols, source,
                               default_announced or imported_at)
        errors += row_errors
        rows.append(row)
    seen: dict[object, int] = {}
    for n, row in enumerate(rows, start=2):
        if row["event_id"] in seen:
            errors.append(FieldError(f"row {n}.event_id", f"repeats row {seen[row['event_id']]}",
                                     row["event_id"]))
        seen.setdefault(row["event_id"], n)
    if errors:
        raise EventImportError(errors)
    frame = pd.DataFrame(rows)
    frame["symbol"] = frame["symbol"].astype("object")
    for column in ("ts", "announced_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    frame["imported_at"] = imported_at.tz_convert("UTC") if imported_at.tzinfo else (
        imported_at.tz_localize("UTC"))
    return frame[[*TABLE_COLUMNS, "announced_given"]]


def _row(n: int, record: dict[str, str], known_symbols: set[str], source: str,
         default_announced: pd.Timestamp) -> tuple[dict[str, object], list[FieldError]]:
    errors: list[FieldError] = []
    values = {k: str(v).strip() for k, v in record.items()}
    kind = values.get("kind", "").lower()
    if kind not in EVENT_KINDS:
        errors.append(FieldError(f"row {n}.kind", f"must be one of {', '.join(EVENT_KINDS)}",
                                 values.get("kind")))
    ts = _timestamp(values.get("ts", ""))
    if ts is None:
        errors.append(FieldError(f"row {n}.ts", "must be an ISO timestamp with a zone, e.g. "
                                 "2012-07-24T20:30Z", values.get("ts")))
    title = values.get("title", "")
    if not title:
        errors.append(FieldError(f"row {n}.title", "must not be empty", title))
    symbol = values.get("symbol", "").upper() or None
    if symbol is not None and symbol not in known_symbols:
        # a list of every ticker helps nobody: without a close one, say what to do
        hint = did_you_mean(symbol, sorted(known_symbols))
        hint = hint if hint.startswith("did you mean") else "load its bars first"
        errors.append(FieldError(f"row {n}.symbol", "is not in the tickers table (leave it "
                                 f"blank for a market-wide event; {hint})",
                                 values.get("symbol")))
    given = values.get("announced_at", "")
    announced = _timestamp(given) if given else default_announced
    if announced is None:
        errors.append(FieldError(f"row {n}.announced_at", "must be an ISO timestamp with a "
                                 "zone", given))
    elif given and ts is not None and announced > ts:
        errors.append(FieldError(f"row {n}.announced_at", f"must not be after ts ({ts})",
                                 given or str(announced)))
    event_id = values.get("event_id", "") or _event_id(symbol, kind, ts, title)
    return {"event_id": event_id, "symbol": symbol, "kind": kind, "ts": ts, "title": title,
            "source": values.get("source", "") or source, "announced_at": announced,
            "announced_given": bool(given)}, errors


def _timestamp(text: str) -> pd.Timestamp | None:
    if not text:
        return None
    try:
        ts = pd.Timestamp(text)
    except (ValueError, TypeError):
        return None
    if ts is pd.NaT or ts.tzinfo is None:
        return None
    return ts.tz_convert("UTC")


def _event_id(symbol: str | None, kind: str, ts: pd.Timestamp | None, title: str) -> str:
    key = f"{symbol or ''}|{kind}|{ts.isoformat() if ts is not None else ''}|{title}"
    return "ev-" + hashlib.sha256(key.encode()).hexdigest()[:16]


def known_events(store: Store, symbol: str, start: datetime, end: datetime,
                 as_of: datetime) -> tuple[pd.DataFrame, int]:
    """Return the events of ``symbol`` and market-wide ones in [start, end] announced by
    ``as_of`` (by time), and how many earnings dates of ``symbol`` were announced by then,
    past or future; read in one connection."""
    return events_between(store, symbol, start, end, as_of)
