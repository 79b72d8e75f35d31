"""A user's anchors for anchored VWAPs (an earnings release, a product launch, a gap day).

Stored per user in ``level_anchors``; the key-levels provider adds each anchor's VWAP to the
snapshot of that user only (the shared ``key_levels`` rows never hold user data).
"""

from __future__ import annotations

import re
from datetime import datetime

import pandas as pd

from buddy.errors import FieldError, FieldErrors
from buddy.levels.compute import LevelAnchor
from buddy.store import Store
from buddy.store.levels import delete_anchor, replace_anchor, user_anchors

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,39}$")


def save_level_anchor(store: Store, user_id: str, symbol: str, name: str,
                      anchor_ts: datetime | str) -> LevelAnchor:
    """Save (or move) ``user_id``'s anchor ``name`` on ``symbol``; return it.

    ``name`` is 1-40 lower-case letters, digits, '_', '.' or '-'; ``anchor_ts`` a
    timezone-aware time (the VWAP starts at the first bar closing after it).
    """
    errors = []
    if not _NAME.match(name or ""):
        errors.append(FieldError("name", "must be 1-40 lower-case letters, digits, '_', '.' "
                                 "or '-'", name))
    stamp = pd.Timestamp(anchor_ts)
    if stamp.tzinfo is None:
        errors.append(FieldError("anchor_ts", "must carry a time zone", anchor_ts))
    if errors:
        raise FieldErrors(errors)
    anchor = LevelAnchor(name, stamp.tz_convert("UTC").to_pydatetime())
    replace_anchor(store, user_id, symbol.upper(), name, anchor.anchor_ts)
    store.touch_context_stamp()
    return anchor


def delete_level_anchor(store: Store, user_id: str, symbol: str, name: str) -> bool:
    """Delete ``user_id``'s anchor ``name`` on ``symbol``; return whether it existed."""
    found = delete_anchor(store, user_id, symbol.upper(), name)
    if found:
        store.touch_context_stamp()
    return found


def level_anchors(store: Store, user_id: str, symbol: str) -> tuple[LevelAnchor, ...]:
    """Return ``user_id``'s anchors on ``symbol``, by name."""
    frame = user_anchors(store, user_id, symbol.upper())
    return tuple(LevelAnchor(r.name, pd.Timestamp(r.anchor_ts).to_pydatetime())
                 for r in frame.itertuples())
