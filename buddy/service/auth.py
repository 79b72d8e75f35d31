"""Per-user API keys: random tokens, stored as SHA-256 hashes, compared in constant time.

A key is ``tb_`` followed by 43 URL-safe characters (32 random bytes from ``secrets``). The
database holds its SHA-256 only; the key is shown once, when created. A request names its
key in the header ``X-API-Key`` or as ``Authorization: Bearer <key>``; without one, or with
one that is unknown or revoked, the answer is 401.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from buddy.errors import FieldError, FieldErrors
from buddy.store import Store
from buddy.store.api_keys import active_key_hashes, insert_key, list_keys, revoke_key

__all__ = ["KEY_PREFIX", "ApiKeyError", "CreatedKey", "create_key", "hash_key", "keys",
           "revoke", "user_for_key"]

#: Every key starts with this, so a leaked one is recognisable in logs and scanners.
KEY_PREFIX = "tb_"
#: How many leading characters of a key are stored in clear to tell keys apart.
SHOWN_PREFIX = 8


class ApiKeyError(FieldErrors):
    """A key command got bad input; nothing was written."""

    what = "API key request"


@dataclass(frozen=True, slots=True)
class CreatedKey:
    """A key just made: ``key`` is shown once and never stored."""

    key_id: str
    user_id: str
    key: str
    prefix: str


def hash_key(key: str) -> str:
    """Return the SHA-256 of ``key`` in hex (what the database stores)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_key(store: Store, user_id: str, *, label: str | None = None,
               now: datetime | None = None) -> CreatedKey:
    """Make a new key for ``user_id``, store its hash and return it (the only time the key
    itself is seen)."""
    user = user_id.strip() if isinstance(user_id, str) else user_id
    if not isinstance(user, str) or not user:
        raise ApiKeyError([FieldError("user", "must be a non-empty user id", user_id)])
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    key_id = uuid.uuid4().hex[:12]
    insert_key(store, key_id=key_id, user_id=user, key_sha256=hash_key(key),
               prefix=key[:SHOWN_PREFIX], label=label, created_at=now or datetime.now(UTC))
    return CreatedKey(key_id=key_id, user_id=user, key=key, prefix=key[:SHOWN_PREFIX])


def user_for_key(store: Store, key: str | None) -> str | None:
    """Return the user the active ``key`` belongs to, None for a missing, unknown or revoked
    key. Every stored hash is compared with ``hmac.compare_digest`` (no early exit), so the
    time taken does not depend on how much of a hash matched."""
    if not key:
        return None
    presented = hash_key(key)
    found: str | None = None
    for stored, user_id, _key_id in active_key_hashes(store):
        if hmac.compare_digest(stored, presented):
            found = user_id
    return found


def keys(store: Store, user_id: str | None = None) -> list[dict[str, object]]:
    """Return the keys of ``user_id`` (every user's when None): id, user, prefix, label,
    created and revoked times; never a key or its hash."""
    return list_keys(store, user_id)


def revoke(store: Store, key_id: str, *, now: datetime | None = None) -> None:
    """Revoke the key ``key_id``; raise ApiKeyError when no active key has that id."""
    if not revoke_key(store, key_id, now or datetime.now(UTC)):
        raise ApiKeyError([FieldError("key_id", "is not an active key", key_id)])
