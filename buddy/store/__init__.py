"""The embedded DuckDB store: the only place in the library that imports duckdb.

One file (default ``data/buddy.duckdb``; ``BUDDY_DB`` or ``--db`` override it). Connections
are short-lived and opened per operation: DuckDB lets one process hold a read-write handle
and then blocks every other process, so holding one would lock out a notebook, a papermill
run or the CLI. Opens retry briefly when another process holds the file.

Writes are bulk: a DataFrame goes in with one ``INSERT ... SELECT`` inside one transaction,
and a failed write rolls back whole.
"""

from __future__ import annotations

from buddy.store.core import DEFAULT_DB_PATH, Store, resolve_db_path

__all__ = ["DEFAULT_DB_PATH", "Store", "resolve_db_path"]
