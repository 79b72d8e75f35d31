"""The evaluation-log spool: evaluations whose logging could not get the file in time.

A logged evaluation waits a few seconds at most for the database (another process may be
writing: a replay's results, a data load). When it cannot get the file, its rows go here
instead, one JSON file per evaluation in a folder next to the database
(``<db>.pending/<eval_id>.json``), written atomically (temporary file, fsync, rename, fsync
of the folder), so a crash leaves either the whole entry or none. The next write to the
database moves the entries in (``Store.flush_pending``): each entry is inserted in a
transaction that first looks its evaluation id up, and its file is removed only after the
commit, so an entry is never lost and never logged twice (a crash between the commit and
the removal finds the id logged and only removes the file).

No SQL here: the store inserts the rows; this module only reads and writes the folder.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

#: Spool format version (written in every entry; an unknown one is left in place).
SPOOL_VERSION = 1

_SAFE_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")
_DATETIME = "__datetime__"
_DATE = "__date__"


@dataclass(frozen=True, slots=True, kw_only=True)
class PendingEntry:
    """One queued evaluation log: its rows as ``Store.log_evaluation`` takes them, and the
    wall-clock time it was made (the rows' ``created_at``)."""

    eval_id: str
    intent_row: dict[str, Any]
    evaluation_row: dict[str, Any]
    item_rows: list[dict[str, Any]]
    created_at: datetime
    path: Path | None = None  # the spool file it was read from


def spool_dir(db_path: Path) -> Path:
    """Return the spool folder of the database file ``db_path``."""
    return db_path.with_name(db_path.name + ".pending")


def has_entries(db_path: Path) -> bool:
    """Return True when the spool folder holds at least one entry (one directory read)."""
    try:
        with os.scandir(spool_dir(db_path)) as found:
            return any(_is_entry(e.name) for e in found)
    except FileNotFoundError:
        return False


def write_entry(db_path: Path, intent_row: Mapping[str, Any],
                evaluation_row: Mapping[str, Any], item_rows: Sequence[Mapping[str, Any]],
                created_at: datetime) -> Path:
    """Queue one evaluation's rows durably; return the entry's file.

    Durable when it returns: the bytes are fsynced before the rename makes them visible,
    and the folder is fsynced after it. Raises ValueError for an evaluation id that cannot
    be a file name, OSError when the disk refuses."""
    eval_id = str(evaluation_row["eval_id"])
    if not _SAFE_ID.match(eval_id):
        raise ValueError(f"eval_id: must be 1-200 letters, digits or _.:- to be queued "
                         f"(got {eval_id!r})")
    folder = spool_dir(db_path)
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"version": SPOOL_VERSION, "eval_id": eval_id,
                       "created_at": _encode(created_at),
                       "intent_row": {k: _encode(v) for k, v in intent_row.items()},
                       "evaluation_row": {k: _encode(v) for k, v in evaluation_row.items()},
                       "item_rows": [{k: _encode(v) for k, v in row.items()}
                                     for row in item_rows]})
    final = folder / f"{eval_id}.json"
    temporary = folder / f".{eval_id}.{os.getpid()}.tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, final)
    _fsync_dir(folder)
    return final


def read_entries(db_path: Path) -> Iterator[PendingEntry]:
    """Yield the queued entries, oldest file first (unreadable or unknown-version files are
    skipped and left in place: never deleted unread)."""
    folder = spool_dir(db_path)
    try:
        names = sorted((e.name for e in os.scandir(folder) if _is_entry(e.name)),
                       key=lambda n: _mtime(folder / n))
    except FileNotFoundError:
        return
    for name in names:
        path = folder / name
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # removed by another flusher meanwhile, or not ours to judge
        if not isinstance(data, dict) or data.get("version") != SPOOL_VERSION:
            continue
        yield PendingEntry(
            eval_id=str(data["eval_id"]),
            intent_row={k: _decode(v) for k, v in data["intent_row"].items()},
            evaluation_row={k: _decode(v) for k, v in data["evaluation_row"].items()},
            item_rows=[{k: _decode(v) for k, v in row.items()} for row in data["item_rows"]],
            created_at=_decode(data["created_at"]), path=path)


def remove_entry(entry: PendingEntry) -> None:
    """Delete a logged entry's file (gone already is fine) and make the removal durable."""
    if entry.path is None:
        return
    try:
        entry.path.unlink()
    except FileNotFoundError:
        return
    _fsync_dir(entry.path.parent)


def _is_entry(name: str) -> bool:
    return name.endswith(".json") and not name.startswith(".")


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _encode(value: Any) -> Any:
    """Return ``value`` as JSON-ready, tagging times so they come back as times."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"a queued time must carry its zone (got {value!r})")
        return {_DATETIME: value.isoformat()}
    if isinstance(value, date):
        return {_DATE: value.isoformat()}
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy scalars
        return value.item()
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1:
        if _DATETIME in value:
            return datetime.fromisoformat(value[_DATETIME])
        if _DATE in value:
            return date.fromisoformat(value[_DATE])
    return value
