"""The ContextPack's ``account`` piece: the user's account, current rules and opt-outs.

The piece reads no market data, so it has no bar to be "as of": it is the account as it
stands when the pack is built (equity snapshot, the rules version in force, preferences),
whatever the request's as_of. Rules versions are stamped with wall-clock ``created_at``,
not market time, so a replay of past intents evaluates them under the replay user's
current account and rules (and logs which rules version it used).

``AccountProvider`` (the instance ``account_provider``) implements
``buddy.context.providers.PieceProvider``; its batch form reads each distinct user once per
process while the file's context is unchanged and gives all of that user's rows the same
AccountContext object (or the same reason).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from buddy.context.providers import BatchPieceRequest, BatchPieces, PieceRequest
from buddy.store.tables import cached
from buddy.users.model import AccountContext
from buddy.users.store import get_account_context

if TYPE_CHECKING:
    from buddy.store import Store


@dataclass(frozen=True, slots=True)
class AccountProvider:
    """The ``account`` piece's provider: the user's account, current rules and opt-outs."""

    def __call__(self, request: PieceRequest) -> tuple[AccountContext | None, str | None]:
        """Return the account context of ``request.user_id``, or None and why it is missing."""
        return account_of(request.store, request.user_id)

    def batch(self, request: BatchPieceRequest) -> BatchPieces:
        """Return (pieces, reasons) per row: ``account_batch``."""
        return account_batch(request)


def account_of(store: Store, user_id: str) -> tuple[AccountContext | None, str | None]:
    """Return the account context of ``user_id``, or None and why it is missing."""
    context = get_account_context(store, user_id)
    if context is None:
        return None, (f"user {user_id} has no account; run "
                      f"`buddy user set --user {user_id} ...`")
    return context, None


def _account_of(user_id: str, store: Store) -> tuple[AccountContext | None, str | None]:
    return account_of(store, user_id)


def account_batch(request: BatchPieceRequest) -> BatchPieces:
    """Batch form of ``account_provider``: (pieces, reasons) per row, one read per user and
    process while the file's context is unchanged."""
    codes, users = pd.factorize(request.intents["user_id"].astype(str).to_numpy(object))
    shared_pieces = np.empty(len(users), dtype=object)
    shared_reasons = np.empty(len(users), dtype=object)
    for u, user_id in enumerate(users):
        # kept per process while the file's context is unchanged: every user write moves
        # the context stamp (buddy.store.tables)
        shared_pieces[u], shared_reasons[u] = cached(
            request.store, f"account:{user_id}", partial(_account_of, str(user_id)))
    return shared_pieces[codes], shared_reasons[codes]


account_provider = AccountProvider()
