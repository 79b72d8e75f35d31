"""Strategy profiles job: build each user's profile from their entry facts and store it.

The profile as of t reads only the entry facts of trades closed by t
(``read_entry_facts(..., closed_by=t)``). Without ``as_of`` the profile is as of the user's
newest close (so drift compares the trader's last weeks, not weeks after the history ends).
Each run writes one strategy_profiles row per user (version + 1), with the overall n, win
rate and mean R and their intervals as baseline_stats_json.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pandas as pd

from buddy.store.strategy import entry_facts_users, read_entry_facts, write_profile
from buddy.strategy.profile import StrategyProfile, build_profile

if TYPE_CHECKING:
    from buddy.store import Store


@dataclass(frozen=True, slots=True, kw_only=True)
class ProfileJobRow:
    """One user's stored profile."""

    user_id: str
    version: int
    as_of: datetime
    n_trades: int
    enough: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ProfileJobResult:
    """What a profiles run wrote, user by user."""

    profiles: tuple[ProfileJobRow, ...]


def profile_as_of(store: Store, user_id: str, as_of: datetime | None = None
                  ) -> StrategyProfile:
    """Return ``user_id``'s profile from the trades closed by ``as_of`` (None: as of the
    newest close; with no closed trade, as of now)."""
    if as_of is not None:
        return build_profile(read_entry_facts(store, user_id, closed_by=as_of),
                             user_id=user_id, as_of=as_of)
    facts = read_entry_facts(store, user_id)
    closes = pd.to_datetime(facts["close_ts"], utc=True).dropna() if len(facts) else None
    newest = (closes.max().to_pydatetime() if closes is not None and len(closes)
              else datetime.now(UTC))  # the job is an edge: the wall clock is its "now"
    return build_profile(facts, user_id=user_id, as_of=newest)


def run_profile_job(store: Store, user_id: str | None = None, *,
                    as_of: datetime | None = None) -> ProfileJobResult:
    """Build and store the profile of ``user_id`` (None: every user with entry facts) as of
    ``as_of`` (None: each user's newest close)."""
    users = [user_id] if user_id is not None else entry_facts_users(store)
    rows = []
    for user in users:
        profile = profile_as_of(store, user, as_of)
        version = write_profile(store, user, profile.to_dict(), profile.baseline_stats(),
                                datetime.now(UTC))
        rows.append(ProfileJobRow(user_id=user, version=version, as_of=profile.as_of,
                                  n_trades=profile.n_trades, enough=profile.enough))
    return ProfileJobResult(profiles=tuple(rows))
