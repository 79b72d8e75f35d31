"""The HTTP service's API keys (migration 0021): all their SQL.

Only hashes are stored; ``buddy.service.auth`` makes the keys, hashes them and compares in
constant time. Reads take a Store or a held connection (``StoreOrCon``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from buddy.store.core import Store, StoreOrCon, reader

__all__ = ["active_key_hashes", "insert_key", "list_keys", "revoke_key"]

_COLUMNS = ("key_id", "user_id", "prefix", "label", "created_at", "revoked_at")


def insert_key(store: Store, *, key_id: str, user_id: str, key_sha256: str, prefix: str,
               label: str | None, created_at: datetime) -> None:
    """Insert one api_keys row (the key's SHA-256 in hex, never the key)."""
    with store.transaction() as con:
        con.execute("INSERT INTO api_keys (key_id, user_id, key_sha256, prefix, label, "
                    "created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    [key_id, user_id, key_sha256, prefix, label, created_at])


def active_key_hashes(source: StoreOrCon) -> list[tuple[str, str, str]]:
    """Return (key_sha256, user_id, key_id) of every key not revoked."""
    with reader(source) as con:
        rows = con.execute("SELECT key_sha256, user_id, key_id FROM api_keys "
                           "WHERE revoked_at IS NULL ORDER BY key_id").fetchall()
    return [(str(h), str(u), str(k)) for h, u, k in rows]


def list_keys(source: StoreOrCon, user_id: str | None = None) -> list[dict[str, Any]]:
    """Return the keys (no hashes) of ``user_id``, or of every user, oldest first."""
    where, params = ("WHERE user_id = ?", [user_id]) if user_id is not None else ("", [])
    with reader(source) as con:
        rows = con.execute(f"SELECT {', '.join(_COLUMNS)} FROM api_keys {where} "
                           "ORDER BY created_at, key_id", params).fetchall()
    return [dict(zip(_COLUMNS, row, strict=True)) for row in rows]


def revoke_key(store: Store, key_id: str, at: datetime) -> bool:
    """Mark the key ``key_id`` revoked at ``at``; return False when no active key has it."""
    with store.transaction() as con:
        found = con.execute("SELECT count(*) FROM api_keys WHERE key_id = ? "
                            "AND revoked_at IS NULL", [key_id]).fetchone()
        if found is None or not found[0]:
            return False
        con.execute("UPDATE api_keys SET revoked_at = ? WHERE key_id = ?", [at, key_id])
    return True
