"""The ContextPack's ``account`` piece: the user's account, current rules and opt-outs."""

from __future__ import annotations

from buddy.context.builder import PieceRequest
from buddy.users.model import AccountContext
from buddy.users.store import get_account_context


def account_provider(request: PieceRequest) -> tuple[AccountContext | None, str | None]:
    """Return the account context of ``request.user_id``, or None and why it is missing."""
    context = get_account_context(request.store, request.user_id)
    if context is None:
        return None, (f"user {request.user_id} has no account; run "
                      f"`buddy user set --user {request.user_id} ...`")
    return context, None
